// Package sla answers latency questions over any time range from the
// mergeable histograms (measurement mail_latency_hist) in the central
// database: quantiles, the share within thresholds, counts, per DC and
// direction or in total. It is `mailtick sla`.
//
// A range is split into whole months, weeks, days, hours and minutes
// (latency.Cover), the bucket counts of those windows are summed in
// InfluxDB, and the quantiles are read from the sums: within 1% of the
// exact nearest-rank quantiles of the events of the range.
package sla

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/mailtick/mailtick/internal/influxq"
	"github.com/mailtick/mailtick/internal/latency"
	"github.com/mailtick/mailtick/internal/report"
)

// Quantiles are the quantiles every answer has.
var Quantiles = []float64{0.5, 0.9, 0.95, 0.99, 0.999}

// Source is where the histograms are.
type Source struct {
	Querier     influxq.Querier
	Database    string // e.g. mail_central
	Measurement string // default mail_latency_hist, mail_stage_hist with By stage
	// Location is the zone the tasks' days, weeks and months are in
	// (their var tz); the histograms carry it as tag tz.
	Location *time.Location
}

// Filter selects and groups the histograms.
type Filter struct {
	DCs, Directions []string // empty: all
	By              []string // tags that split the answer (dc, direction, customer, stage); empty: one total
}

// Result is the answer for one range and group.
type Result struct {
	Range     string             `json:"range"`
	From      time.Time          `json:"from"`
	To        time.Time          `json:"to"`
	Group     map[string]string  `json:"group"`
	Count     int64              `json:"count"`
	Quantiles map[string]float64 `json:"quantiles_ms"` // "p50"... ; absent when Count is 0
	Within    map[string]float64 `json:"within"`       // threshold -> share; absent when Count is 0
	hist      *latency.Histogram
}

// Histogram is the merged histogram behind the result.
func (r Result) Histogram() *latency.Histogram { return r.hist }

// QuantileName is the column name of q: p50, p99, p99.9.
func QuantileName(q float64) string {
	return "p" + strings.TrimSuffix(strings.TrimRight(fmt.Sprintf("%.3f", q*100), "0"), ".")
}

// Answer computes the results of every range, group by group, with the
// share of latencies within each threshold.
func (s Source) Answer(ranges []report.Range, f Filter, within []time.Duration) ([]Result, error) {
	for _, b := range f.By {
		if b != "dc" && b != "direction" && b != "customer" && b != "stage" {
			return nil, fmt.Errorf("invalid --by %q: want dc, direction, customer or stage", b)
		}
	}
	var out []Result
	err := report.EachGroup(ranges, func(r report.Range) (map[string]*latency.Histogram, error) {
		return s.Histograms(r.From, r.To, f)
	}, func() *latency.Histogram { return &latency.Histogram{} }, func(r report.Range, key string, h *latency.Histogram) {
		out = append(out, result(r, f.By, key, h, within))
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

func result(r report.Range, by []string, key string, h *latency.Histogram, within []time.Duration) Result {
	res := Result{Range: r.Name, From: r.From, To: r.To, Group: report.GroupOf(by, key), Count: h.Count(), hist: h}
	if h.Count() == 0 {
		return res
	}
	res.Quantiles, res.Within = map[string]float64{}, map[string]float64{}
	for _, q := range Quantiles {
		res.Quantiles[QuantileName(q)] = h.Quantile(q)
	}
	for _, w := range within {
		res.Within[w.String()] = h.ShareWithin(float64(w) / float64(time.Millisecond))
	}
	return res
}

// Histograms sums the bucket counts of [from, to), keyed by the values of
// f.By joined by NUL ("" when f.By is empty).
func (s Source) Histograms(from, to time.Time, f Filter) (map[string]*latency.Histogram, error) {
	loc := s.Location
	if loc == nil {
		loc = time.UTC
	}
	m := s.Measurement
	switch {
	case m != "":
	case slices.Contains(f.By, "stage"):
		// Where the time goes: Postfix's delays by stage
		// (tasks.toml's mail_stage_hist tasks), apart from the totals.
		m = "mail_stage_hist"
	default:
		m = "mail_latency_hist"
	}
	where := influxq.AnyOf("dc", f.DCs) + influxq.AnyOf("direction", f.Directions)
	group := []string{`"bucket"`}
	for _, b := range f.By {
		group = append(group, `"`+b+`"`)
	}
	var stmts []string
	for _, sp := range latency.Cover(from, to, loc) {
		stmts = append(stmts, fmt.Sprintf(`SELECT sum("count") FROM %q WHERE "window" = '%s' AND "tz" = %s AND time >= %d AND time < %d%s GROUP BY %s`,
			m, sp.Level, influxq.String(loc.String()), sp.From.UnixNano(), sp.To.UnixNano(), where, strings.Join(group, ", ")))
	}
	out := map[string]*latency.Histogram{}
	if len(stmts) == 0 {
		return out, nil
	}
	series, err := s.Querier.Query(s.Database, strings.Join(stmts, "; "))
	if err != nil {
		return nil, err
	}
	for _, se := range series {
		key := report.KeyOf(f.By, se.Tags)
		h := out[key]
		if h == nil {
			h = &latency.Histogram{}
			out[key] = h
		}
		for _, row := range se.Values {
			n, ok := row[1].(json.Number)
			if !ok {
				continue // no counts in this window
			}
			c, err := n.Int64()
			if err != nil {
				return nil, fmt.Errorf("bucket %q: count %v: %w", se.Tags["bucket"], n, err)
			}
			if err := h.Add(se.Tags["bucket"], c); err != nil {
				return nil, err
			}
		}
	}
	return out, nil
}
