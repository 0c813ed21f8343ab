// Package deliv answers deliverability questions over any time range
// from the deliverability counts (measurement mail_deliv, by dc,
// direction, customer, sender_domain, event, reason and rcpt_provider)
// in the central database: how much was sent, what share was delivered,
// bounced, deferred or complained about, and why mail did not arrive. It
// is `mailtick deliverability`.
//
// A range is split into whole days, hours and minutes (UTC, as the
// counts are), and the counts of those windows are summed in InfluxDB:
// the answer is exactly the events of the range.
package deliv

import (
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/mailtick/mailtick/internal/influxq"
	"github.com/mailtick/mailtick/internal/latency"
	"github.com/mailtick/mailtick/internal/report"
)

// Source is where the counts are.
type Source struct {
	Querier     influxq.Querier
	Database    string // e.g. mail_central
	Measurement string // default: mail_deliv_dc when no customer or sender_domain is asked for, else mail_deliv
}

// Filter selects and groups the counts.
type Filter struct {
	// Only these values of the tag (dc, direction, customer,
	// sender_domain, rcpt_provider); absent or empty: all.
	Only map[string][]string
	By   []string // tags that split the answer; empty: one total
	Top  int      // reasons listed per answer (0: 5)
}

// Groupable are the tags an answer may be split or filtered by.
var Groupable = []string{"dc", "direction", "customer", "sender_domain", "rcpt_provider"}

// Result is the answer for one range and group.
//
// Sent is the mail that reached an end: Delivered + Bounced + Expired.
// The rates: DeliveredRate and BounceRate (bounced and expired) of Sent;
// ComplaintRate of Delivered (spam reports per delivered mail, as Gmail
// and SES count them); DeferralRate, the deferred attempts among all
// attempts (Deferred + Sent). Absent where the denominator is 0.
type Result struct {
	Range         string             `json:"range"`
	From          time.Time          `json:"from"`
	To            time.Time          `json:"to"`
	Group         map[string]string  `json:"group"`
	Events        map[string]int64   `json:"events"` // by event
	Sent          int64              `json:"sent"`
	Rates         map[string]float64 `json:"rates"`       // delivered, bounce, complaint, deferral
	Reasons       []ReasonCount      `json:"top_reasons"` // of the events that did not deliver
	Unclassified  int64              `json:"unclassified"`
	FailedEvents  int64              `json:"failed_events"` // events with a reason
	reasonsByName map[string]int64
}

// ReasonCount is one reason and its events.
type ReasonCount struct {
	Reason string `json:"reason"`
	Events int64  `json:"events"`
}

// The rates, by name, in the order they are reported.
var rateNames = []string{"delivered", "bounce", "complaint", "deferral"}

// Answer computes the results of every range, group by group.
func (s Source) Answer(ranges []report.Range, f Filter) ([]Result, error) {
	for _, b := range f.By {
		if !slices.Contains(Groupable, b) {
			return nil, fmt.Errorf("invalid --by %q: want %s", b, strings.Join(Groupable, ", "))
		}
	}
	for tag := range f.Only {
		if !slices.Contains(Groupable, tag) {
			return nil, fmt.Errorf("invalid filter on %q: want one of %s", tag, strings.Join(Groupable, ", "))
		}
	}
	if f.Top <= 0 {
		f.Top = 5
	}
	var out []Result
	err := report.EachGroup(ranges, func(r report.Range) (map[string]*Result, error) {
		return s.counts(r.From, r.To, f)
	}, newResult, func(r report.Range, key string, res *Result) {
		res.Range, res.From, res.To, res.Group = r.Name, r.From, r.To, report.GroupOf(f.By, key)
		res.finish(f.Top)
		out = append(out, *res)
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

func newResult() *Result {
	return &Result{Events: map[string]int64{}, reasonsByName: map[string]int64{}}
}

// unclassified are the reasons that say no rule applied
// (plugins/common/bounce).
var unclassified = map[string]bool{"onhold": true, "undefined": true}

func (r *Result) finish(top int) {
	e := r.Events
	r.Sent = e["delivered"] + e["bounced"] + e["expired"]
	r.Rates = map[string]float64{}
	if r.Sent > 0 {
		r.Rates["delivered"] = float64(e["delivered"]) / float64(r.Sent)
		r.Rates["bounce"] = float64(e["bounced"]+e["expired"]) / float64(r.Sent)
		r.Rates["deferral"] = float64(e["deferred"]) / float64(e["deferred"]+r.Sent)
	}
	if e["delivered"] > 0 {
		r.Rates["complaint"] = float64(e["complained"]) / float64(e["delivered"])
	}
	r.Reasons = nil
	for reason, n := range r.reasonsByName {
		r.FailedEvents += n
		if unclassified[reason] {
			r.Unclassified += n
		}
		r.Reasons = append(r.Reasons, ReasonCount{reason, n})
	}
	sort.Slice(r.Reasons, func(i, j int) bool {
		a, b := r.Reasons[i], r.Reasons[j]
		return a.Events > b.Events || a.Events == b.Events && a.Reason < b.Reason
	})
	if len(r.Reasons) > top {
		r.Reasons = r.Reasons[:top]
	}
}

// measurementFor is the smallest rollup holding the tags f splits and
// filters by: mail_deliv_dc (no customer, no sender domain: a few
// thousand series per DC) unless f needs those, then mail_deliv (a series
// per customer's tag set: read whole, it costs InfluxDB time in
// proportion; filtered by customer, its index picks that customer's).
func measurementFor(f Filter) string {
	for _, tag := range []string{"customer", "sender_domain"} {
		if slices.Contains(f.By, tag) || len(f.Only[tag]) > 0 {
			return "mail_deliv"
		}
	}
	return "mail_deliv_dc"
}

// customersPerQuery bounds the customers one query over mail_deliv reads
// when the answer is split by customer or sending domain across every
// customer: InfluxDB 1.x holds an iterator per series a query reads, and
// a month of a 20,000-customer DC in one query (614k series) took 23 GB
// before the kernel killed it (mailtick-dev bench --deliv-customers).
const customersPerQuery = 500

// counts sums the counts of [from, to) by event and reason, per group
// (the values of f.By joined by NUL).
func (s Source) counts(from, to time.Time, f Filter) (map[string]*Result, error) {
	m := s.Measurement
	if m == "" {
		m = measurementFor(f)
	}
	where := ""
	for _, tag := range Groupable {
		if tag != "customer" {
			where += influxq.AnyOf(tag, f.Only[tag])
		}
	}
	group := []string{`"event"`, `"reason"`}
	for _, b := range f.By {
		group = append(group, `"`+b+`"`)
	}
	// The customers, a slice at a time when every customer is read by
	// customer or domain; else as asked (none: all at once).
	chunks := [][]string{f.Only["customer"]}
	if m != "mail_deliv_dc" && len(f.Only["customer"]) == 0 && (slices.Contains(f.By, "customer") || slices.Contains(f.By, "sender_domain")) {
		all, err := s.customers(m)
		if err != nil {
			return nil, err
		}
		chunks = nil
		for len(all) > 0 {
			n := min(customersPerQuery, len(all))
			chunks, all = append(chunks, all[:n]), all[n:]
		}
	}
	out := map[string]*Result{}
	spans := latency.CoverDays(from, to, time.UTC)
	for _, customers := range chunks {
		var stmts []string
		for _, sp := range spans {
			stmts = append(stmts, fmt.Sprintf(`SELECT sum("count") FROM %q WHERE "window" = '%s' AND time >= %d AND time < %d%s%s GROUP BY %s`,
				m, sp.Level, sp.From.UnixNano(), sp.To.UnixNano(), where, influxq.AnyOf("customer", customers), strings.Join(group, ", ")))
		}
		if len(stmts) == 0 {
			return out, nil
		}
		series, err := s.Querier.Query(s.Database, strings.Join(stmts, "; "))
		if err != nil {
			return nil, err
		}
		for _, se := range series {
			key := report.KeyOf(f.By, se.Tags)
			res := out[key]
			if res == nil {
				res = newResult()
				out[key] = res
			}
			for _, row := range se.Values {
				n, ok := row[1].(json.Number)
				if !ok {
					continue // no counts in this window
				}
				x, err := n.Float64()
				if err != nil || x < 0 || x != math.Trunc(x) {
					return nil, fmt.Errorf("event %q: count %v is not a count", se.Tags["event"], n)
				}
				res.Events[se.Tags["event"]] += int64(x)
				if r := se.Tags["reason"]; r != "" {
					res.reasonsByName[r] += int64(x)
				}
			}
		}
	}
	return out, nil
}

// customers are the customers measurement m holds: the tag's values in
// InfluxDB's index, whatever the time (a customer with nothing in the
// range adds nothing).
func (s Source) customers(m string) ([]string, error) {
	series, err := s.Querier.Query(s.Database, fmt.Sprintf(`SHOW TAG VALUES FROM %q WITH KEY = "customer"`, m))
	if err != nil {
		return nil, err
	}
	var out []string
	for _, se := range series {
		for _, row := range se.Values {
			if v, ok := row[1].(string); ok {
				out = append(out, v)
			}
		}
	}
	return out, nil
}

// Table is the results as a report table.
func Table(results []Result) report.Table {
	t := report.Table{Columns: []report.Column{{Name: "sent", Kind: report.Count}}}
	for _, r := range rateNames {
		t.Columns = append(t.Columns, report.Column{Name: r, Kind: report.Share})
	}
	t.Columns = append(t.Columns,
		report.Column{Name: "deferred", Kind: report.Count},
		report.Column{Name: "complained", Kind: report.Count},
		report.Column{Name: "unclassified", Kind: report.Share},
		report.Column{Name: "top reasons", Kind: report.Text})
	for _, r := range results {
		row := report.Row{Range: r.Range, From: r.From, To: r.To, Group: r.Group,
			Values: map[string]float64{"sent": float64(r.Sent), "deferred": float64(r.Events["deferred"]), "complained": float64(r.Events["complained"])},
			Texts:  map[string]string{}}
		for name, v := range r.Rates {
			row.Values[name] = v
		}
		if r.FailedEvents > 0 {
			row.Values["unclassified"] = float64(r.Unclassified) / float64(r.FailedEvents)
		}
		var reasons []string
		for _, rc := range r.Reasons {
			reasons = append(reasons, rc.Reason+" "+strconv.FormatInt(rc.Events, 10))
		}
		row.Texts["top reasons"] = strings.Join(reasons, ", ")
		t.Rows = append(t.Rows, row)
	}
	return t
}
