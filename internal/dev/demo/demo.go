// Package demo runs the whole system on loopback: three DCs, each with its
// DC InfluxDB, Kapacitor and agent (the repository's telegraf.conf and
// TICKscripts), and a central InfluxDB. dc1 and dc2 get generated mail
// traffic through their nsqd, with a spam burst from one sender in dc1;
// dc3 runs a real Postfix, whose log its agent follows (inputs.maillog).
// Then a report of what reached the central database, the alerts that
// fired, the agents' counters, this month's latency SLA per DC, a check
// that nothing personal reached the centre, and an HTML page of charts.
package demo

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/smtp"
	"os"
	"os/exec"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	client "github.com/influxdata/kapacitor/client/v1"

	"github.com/mailtick/mailtick/internal/deliv"
	"github.com/mailtick/mailtick/internal/dev/dc"
	"github.com/mailtick/mailtick/internal/gen"
	"github.com/mailtick/mailtick/internal/latency"
	"github.com/mailtick/mailtick/internal/report"
	"github.com/mailtick/mailtick/internal/sla"
	"github.com/mailtick/mailtick/internal/testutil/stack"
	"github.com/mailtick/mailtick/plugins/common/maillog"
)

// Options size the demo.
type Options struct {
	Events int     // messages per DC
	Rate   float64 // per second, per DC
	Bad    float64 // fraction of bad messages
	Dir    string  // where servers keep their data; kept if set
	HTML   string  // where the HTML report goes
}

// Run starts the system, sends the traffic, waits until the central
// counts are complete, prints the report to w, and stops everything.
func Run(ctx context.Context, opt Options, w io.Writer) error {
	dir := opt.Dir
	if dir == "" {
		d, err := os.MkdirTemp("", "mailtick-demo-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(d)
		dir = d
	}
	step := func(format string, args ...any) { fmt.Fprintf(w, "==> "+format+"\n", args...) }

	step("starting the central InfluxDB %s (data in %s)", stack.InfluxDBVersion, dir)
	// The per-minute rollups on the shipped schedule (every minute, on the
	// minute): a run every second would cut the oldest minute of its 5m
	// period and write its tail over the minute's count, which the
	// dashboards' check, minutes later, would find short.
	sys, err := dc.StartSystem(dir, 2, dc.Options{MinuteEvery: "1m"}, func(name string) {
		step("starting %s: nsqlookupd, nsqd %s, InfluxDB, bin/telegraf (telegraf.conf), Kapacitor %s (tickscripts/, tasks.toml)",
			name, stack.NSQVersion, stack.KapacitorVersion)
	})
	if err != nil {
		return err
	}
	defer sys.Stop()
	step("starting dc3: the same, and a real Postfix %s (Debian's) relaying to a test sink; the agent follows its log (inputs.maillog)", postfixVersion())
	mta, err := sys.AddPostfixDC(dir, "dc3")
	if err != nil {
		return err
	}
	central, dcs := sys.Central, sys.DCs

	// Event times: opt.Rate per second, ending a minute ago: within the
	// per-minute tasks' period (5m) at the default rate, so Kapacitor rolls
	// them up at its next minute. Older events (a lower --rate) are the reconciler's
	// (inputs.mailrollups), once their minutes pass its first check age.
	span := time.Duration(float64(opt.Events) / max(opt.Rate, 1) * float64(time.Second))
	start := time.Now().UTC().Add(-span - time.Minute).Truncate(time.Minute)
	stored, published := map[string]int64{}, map[string]int64{}
	for i, d := range dcs {
		if d.Postfix != nil {
			continue
		}
		g, err := gen.New(gen.Config{Seed: uint64(time.Now().UnixNano()) + uint64(i), Count: opt.Events, Bad: opt.Bad, DC: d.Name,
			Start: start, Interval: time.Duration(float64(time.Second) / max(opt.Rate, 1))})
		if err != nil {
			return err
		}
		sink, err := gen.NewNSQSink(d.NSQD.TCPAddr, "mail_events")
		if err != nil {
			return err
		}
		if d.Name == "dc1" {
			// Two minutes before the traffic, in the past, and sent
			// before it: the mail_spam UDF refuses points stamped over
			// 10 s past the wall clock (spam.MaxAhead), and closes a
			// sender's window early once the stream's time is a window
			// past its end (the traffic's would be). The late mail that
			// closes the burst's window comes two minutes after it;
			// within the per-minute rollups' 5m period still.
			if err := spamBurst(ctx, d, sink, start.Add(-2*time.Minute)); err != nil {
				sink.Close()
				return err
			}
		}
		sum, err := gen.Run(ctx, g, sink, 0, 500, nil)
		if err == nil && d.Name == "dc1" {
			sum.Messages += 201
			sum.ByKind[gen.Good] += 201
		}
		if err == nil && d.Name == "dc2" {
			err = bounceBurst(ctx, d, sink, start.Add(time.Minute))
			sum.Messages += 1200
			sum.ByKind[gen.Good] += 1200
		}
		sink.Close()
		if err != nil {
			return err
		}
		kinds, _ := json.Marshal(sum.ByKind)
		step("%s: published %d messages %s", d.Name, sum.Messages, kinds)
		stored[d.Name] = int64(sum.ByKind[gen.Good] + sum.ByKind[gen.MissingTime])
		published[d.Name] = int64(sum.Messages)
	}
	step("dc1: one sender mails 200 distinct recipients within a minute (the spam burst)")
	step("dc2: a customer's newsletter to 1200 Gmail users, 12%% of them unknown (the bounce burst)")
	sent, err := sendThroughPostfix(mta, max(opt.Events/50, 20))
	if err != nil {
		return err
	}
	step("dc3: %d messages through Postfix (the sink answers 250, 450 or 550 by recipient)", sent)
	auth, err := stack.StartSASLAuth(map[string]string{saslUser: saslPassword})
	if err != nil {
		return err
	}
	defer auth.Stop()
	if err := passwordGuessing(mta, auth); err != nil {
		return err
	}
	step("dc3: a client guesses passwords: %d refused logins (AUTH PLAIN; Postfix asks an auth server speaking Dovecot's protocol), then a login that sends a message, and a client that hangs up after EHLO", guesses)
	// Deferred recipients are retried, and each retry is an event more: the
	// count to wait for is the log's once every first attempt is in it.
	first, logged := firstAttempts(sent), time.Now().Add(time.Minute)
	for stored[mta.Name] < first {
		if time.Now().After(logged) {
			return fmt.Errorf("dc3: Postfix logged %d of %d first attempts in a minute: %s", stored[mta.Name], first, mta.Postfix.Maillog)
		}
		stored[mta.Name], _ = maillog.LogEvents(mta.Postfix.Maillog)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(250 * time.Millisecond):
		}
	}

	step("waiting until the central counts and latency histograms hold every event")
	// Postfix goes on retrying the deferred recipients every few seconds:
	// the latencies to wait for are those logged before now, which reach
	// the month's histogram by the next minute's rollup. Those logged
	// later may not, before a deadline counted from now.
	sentBy := time.Now()
	deadline := sentBy.Add(centralWait)
	for _, d := range dcs {
		if err := waitCentral(ctx, central, d, deadline, "counted", stored[d.Name],
			`SELECT sum("count") FROM mail_counts WHERE "window" = '1m' AND "dc" = '%s'`); err != nil {
			return err
		}
		if err := waitCentral(ctx, central, d, deadline, "in the deliverability counts", stored[d.Name],
			`SELECT sum("count") FROM mail_deliv WHERE "window" = '1m' AND "dc" = '%s'`); err != nil {
			return err
		}
		// Every latency, through the levels 1m -> 1h -> 1d -> 1mo.
		latencies, err := d.DB.Count("mail", fmt.Sprintf(`SELECT count("latency_ms") FROM mail_event WHERE time <= '%s'`, sentBy.UTC().Format(time.RFC3339Nano)))
		if err != nil {
			return err
		}
		if err := waitCentral(ctx, central, d, deadline, "in the month's latency histogram", latencies,
			`SELECT sum("count") FROM mail_latency_hist WHERE "window" = '1mo' AND "dc" = '%s'`); err != nil {
			return err
		}
	}
	// The spam burst: its window closed by the sender's late mail.
	if err := waitCentral(ctx, central, dcs[0], deadline, "as the spam burst's distinct recipients", 200,
		`SELECT max("distinct_recipients") FROM mail_spam WHERE "dc" = '%s'`); err != nil {
		return err
	}
	// The guesses cross mail_abuse.tick's 20 refused logins a network in
	// 10 minutes: dc3's Kapacitor counts them.
	if err := waitCount(ctx, mta.DB, "mail_rollups", mta, deadline, "counted as refused logins by mail_abuse.tick", guesses,
		`SELECT max("n") FROM "mail_abuse" WHERE "abuse" = 'brute_force'`); err != nil {
		return err
	}
	// The bounce burst crosses SES's 10%: dc2's Kapacitor raises it.
	for {
		c, err := kapacitorTopic(dcs[1], "mail_deliverability")
		if err == nil && strings.Contains(c, "CRITICAL: sending") {
			break
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("dc2: the bounce burst raised no deliverability alert (%s, %v)", c, err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(500 * time.Millisecond):
		}
	}
	step("central holds every event and the alerts have fired, %s after the last message (the deadline: %s)", time.Since(sentBy).Round(time.Second), centralWait)
	// Self-metrics are gathered every interval (10s in telegraf.conf): wait
	// for a round that saw every message.
	for _, d := range dcs {
		for time.Now().Before(deadline) {
			if d.Postfix != nil { // its source is the log: a round that read it
				n, err := d.DB.Count("telegraf", `SELECT last("events_emitted") FROM internal_maillog`)
				if err == nil && n > 0 {
					break
				}
			} else {
				n, err := d.DB.Count("telegraf", `SELECT last("messages_received") FROM internal_mailevents`)
				h, _ := d.DB.Count("telegraf", `SELECT last("values_hashed") FROM internal_piiscrub`)
				if err == nil && n >= published[d.Name] && h > 0 {
					break
				}
			}
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(500 * time.Millisecond):
			}
		}
	}
	if err := writeReport(w, central, dcs); err != nil {
		return err
	}
	if err := checkDashboards(w, central, dcs, stored); err != nil {
		return err
	}
	slaTable, distribution, err := slaReport(w, central)
	if err != nil {
		return err
	}
	delivCharts, err := deliverabilityReport(w, central, start)
	if err != nil {
		return err
	}
	charts, err := chartData(central, dcs)
	if err != nil {
		return err
	}
	charts = append(append([]Chart{distribution}, delivCharts...), charts...)
	f, err := os.Create(opt.HTML)
	if err != nil {
		return err
	}
	if err := WriteHTML(f, "mailtick demo: three DCs (two on NSQ, one on a Postfix log) and the central database", charts, []Table{slaTable}); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	step("HTML report with charts: %s (open it in a browser; no server needed)", opt.HTML)
	return nil
}

// deliverabilityReport answers the traffic's deliverability per mailbox
// provider from central, as `mailtick deliverability --by rcpt_provider`
// does, and charts the bounce rates and the reasons.
func deliverabilityReport(w io.Writer, central *stack.InfluxDB, from time.Time) ([]Chart, error) {
	rg := report.Range{Name: "demo", From: from.Add(-time.Hour), To: time.Now().UTC().Add(time.Minute)}
	src := deliv.Source{Querier: stack.Querier{URL: central.URL, Timeout: time.Minute}, Database: "mail_central"}
	by := []string{"rcpt_provider"}
	results, err := src.Answer([]report.Range{rg}, deliv.Filter{By: by, Top: 3})
	if err != nil {
		return nil, err
	}
	fmt.Fprintf(w, "\nDeliverability by mailbox provider, all DCs (mailtick deliverability --by rcpt_provider, central mail_deliv)\n")
	if err := deliv.Table(results).WriteText(w, by, []report.Range{rg}); err != nil {
		return nil, err
	}
	bounce := Chart{Title: "Bounce rate by mailbox provider, % of mail sent (central mail_deliv)", Kind: "bar", Bars: map[string]float64{}}
	for _, r := range results {
		if v, ok := r.Rates["bounce"]; ok {
			bounce.Bars[r.Group["rcpt_provider"]] = 100 * v
		}
	}
	total, err := src.Answer([]report.Range{rg}, deliv.Filter{Top: 12})
	if err != nil {
		return nil, err
	}
	reasons := Chart{Title: "Why mail did not arrive: events by reason, all DCs (central mail_deliv)", Kind: "bar", Bars: map[string]float64{}}
	for _, rc := range total[0].Reasons {
		reasons.Bars[rc.Reason] = float64(rc.Events)
	}
	return []Chart{bounce, reasons}, nil
}

// slaReport answers this month's SLA per DC from the central histograms,
// as `mailtick sla --by dc --within 1s,5s <month>` does, and draws the
// latency distribution of each DC from the same merged buckets.
func slaReport(w io.Writer, central *stack.InfluxDB) (Table, Chart, error) {
	now := time.Now().UTC()
	from := latency.Month.Start(now, time.UTC)
	month := report.Range{Name: from.Format("2006-01"), From: from, To: latency.Month.Next(from, time.UTC)}
	src := sla.Source{Querier: stack.Querier{URL: central.URL, Timeout: time.Minute}, Database: "mail_central", Location: time.UTC}
	by := []string{"dc"}
	results, err := src.Answer([]report.Range{month}, sla.Filter{By: by}, []time.Duration{time.Second, 5 * time.Second})
	if err != nil {
		return Table{}, Chart{}, err
	}
	title := fmt.Sprintf("Central: latency SLA of %s by DC (mailtick sla --by dc --within 1s,5s %s: the month's histograms)", month.Name, month.Name)
	fmt.Fprintf(w, "\n%s\n", title)
	if err := sla.Table(results).WriteText(w, by, []report.Range{month}); err != nil {
		return Table{}, Chart{}, err
	}
	head, rows := sla.Table(results).TextRows(by)
	dist := Chart{Title: "Latency distribution per DC this month: share of messages within x ms (central mail_latency_hist, merged buckets)",
		Kind: "distribution", YTitle: "% of messages within", Series: map[string][][2]float64{}}
	for _, r := range results {
		h := r.Histogram()
		var within int64
		for _, b := range h.Buckets() {
			within += b.Count
			if x := latency.Upper(b.Index); x > 0 { // a log axis has no 0
				dist.Series[r.Group["dc"]] = append(dist.Series[r.Group["dc"]], [2]float64{x, 100 * float64(within) / float64(h.Count())})
			}
		}
	}
	return Table{Title: title, Columns: head, Rows: rows}, dist, nil
}

// centralWait is how long the demo waits for central to hold what was
// sent and for the alerts: the per-minute rollups take up to a minute and
// the levels above a few seconds each, on an idle machine about a minute
// in all; the rest is for a busy one (the tests run beside other packages).
const centralWait = 5 * time.Minute

// waitCentral waits until q (with %s for the DC's name) gives at least
// want from the central database.
func waitCentral(ctx context.Context, central *stack.InfluxDB, d *dc.DC, deadline time.Time, what string, want int64, q string) error {
	return waitCount(ctx, central, "mail_central", d, deadline, what+" centrally", want, fmt.Sprintf(q, d.Name))
}

// waitCount waits until q gives at least want from database.
func waitCount(ctx context.Context, db *stack.InfluxDB, database string, d *dc.DC, deadline time.Time, what string, want int64, q string) error {
	for {
		n, err := db.Count(database, q)
		if err == nil && n >= want {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s: only %d of %d events %s after %s (%v); agent log: %s", d.Name, n, want, what, centralWait, err, d.Agent.LogPath)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(250 * time.Millisecond):
		}
	}
}

// slowMs is what the report calls a slow message.
const slowMs = 1000

// chartData reads the charts of the HTML report: latency percentiles over
// time per DC and counts by event from the central database, and the slow
// messages by direction, DC, mailer and customer from the DC databases
// (mailers are not in the rollups).
func chartData(central *stack.InfluxDB, dcs []*dc.DC) ([]Chart, error) {
	latency := Chart{Title: "Latency percentiles over time per DC (ms, central mail_latency)", Kind: "time", YTitle: "ms", Series: map[string][][2]float64{}}
	series, err := central.Query("mail_central",
		`SELECT max("p50") AS p50, max("p99") AS p99 FROM mail_latency WHERE "window" = '1m' AND time > now() - 2h GROUP BY time(1m), "dc" fill(none)`)
	if err != nil {
		return nil, err
	}
	for _, s := range series {
		for _, row := range s.Values {
			ts, _ := row[0].(json.Number).Int64()
			for i, name := range s.Columns[1:] {
				if v, ok := row[i+1].(json.Number); ok {
					f, _ := v.Float64()
					key := s.Tags["dc"] + " " + name
					latency.Series[key] = append(latency.Series[key], [2]float64{float64(ts) / 1e9, f})
				}
			}
		}
	}
	counts := Chart{Title: "Events by type, all DCs (central mail_counts)", Kind: "bar", Bars: map[string]float64{}}
	if err := addBars(counts.Bars, central, "mail_central", `SELECT sum("count") FROM mail_counts WHERE "window" = '1m' GROUP BY "event"`, "event"); err != nil {
		return nil, err
	}
	slow := func(by string) Chart {
		return Chart{Title: fmt.Sprintf("Slow messages (over %d ms) by %s", slowMs, by), Kind: "bar", Bars: map[string]float64{}}
	}
	byDirection, byDC, byMailer, byCustomer := slow("direction"), slow("DC"), slow("mailer"), slow("customer")
	for _, d := range dcs {
		q := fmt.Sprintf(`SELECT count("latency_ms") FROM mail_event WHERE "latency_ms" > %d GROUP BY `, slowMs)
		for _, x := range []struct {
			chart Chart
			tag   string
		}{{byDirection, "direction"}, {byDC, "dc"}, {byMailer, "mailer"}, {byCustomer, "customer"}} {
			if err := addBars(x.chart.Bars, d.DB, "mail", q+`"`+x.tag+`"`, x.tag); err != nil {
				return nil, err
			}
		}
	}
	keepTop(byCustomer.Bars, 12)
	return []Chart{latency, counts, byDirection, byDC, byMailer, byCustomer}, nil
}

// addBars adds the single value of each group of q to bars, by tag.
func addBars(bars map[string]float64, db *stack.InfluxDB, database, q, tag string) error {
	series, err := db.Query(database, q)
	if err != nil {
		return err
	}
	for _, s := range series {
		if len(s.Values) > 0 {
			if v, ok := s.Values[0][1].(json.Number); ok {
				f, _ := v.Float64()
				name := s.Tags[tag]
				if name == "" {
					name = "(none)" // e.g. a Postfix log's events have no customer
				}
				bars[name] += f
			}
		}
	}
	return nil
}

// keepTop keeps the n largest bars.
func keepTop(bars map[string]float64, n int) {
	keys := make([]string, 0, len(bars))
	for k := range bars {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool { return bars[keys[i]] > bars[keys[j]] })
	for _, k := range keys[min(n, len(keys)):] {
		delete(bars, k)
	}
}

// spamBurst is one sender mailing 200 distinct recipients from rotating
// HELO names within a minute, then once more two minutes later: Kapacitor
// 1.5 closes a stream window on the group's next point, and drops points
// that arrive after their window closed, so the late mail is sent once
// the burst is stored.
func spamBurst(ctx context.Context, d *dc.DC, sink gen.Sink, at time.Time) error {
	spam := func(i int, e *gen.Event) {
		e.Recipient = fmt.Sprintf("victim%d@example%d.org", i, i%13)
		e.Helo = fmt.Sprintf("relay%d.spam.example", i%9)
	}
	if err := burst(ctx, d, sink, at, 0, 200, 250*time.Millisecond, "mallory@spam.example", spam); err != nil {
		return err
	}
	return burst(ctx, d, sink, at.Add(2*time.Minute-time.Second-200*250*time.Millisecond), 200, 1, 250*time.Millisecond, "mallory@spam.example", spam)
}

// bounceBurst: a customer's newsletter to Gmail users, 12% of it to
// addresses that do not exist (Gmail's own reply): over SES's 10% and
// the 1000 mails mail_deliverability.tick wants, so it raises CRITICAL.
func bounceBurst(ctx context.Context, d *dc.DC, sink gen.Sink, at time.Time) error {
	return burst(ctx, d, sink, at, 0, 1200, 40*time.Millisecond, "news@shop.example", func(i int, e *gen.Event) {
		e.Customer, e.Direction, e.Recipient = "c90001", "outbound", fmt.Sprintf("reader%d@gmail.com", i)
		e.Event, e.SMTPCode, e.SMTPStatus, e.SMTPResponse = "delivered", 250, "2.0.0", "250 2.0.0 OK "+e.QueueID+" - gsmtp"
		if i%25 < 3 {
			e.Event, e.SMTPCode, e.SMTPStatus = "bounced", 550, "5.1.1"
			e.SMTPResponse = "<" + e.Recipient + ">: host gmail-smtp-in.l.google.com[142.250.102.27] said: 550-5.1.1 The email account that you tried to reach does not exist. Please try double-checking the recipient's email address for typos or unnecessary spaces. For more information, go to https://support.google.com/mail/?p=NoSuchUser (in reply to RCPT TO command)"
		}
	})
}

// burst publishes generated events from sender, numbered from to
// from+n-1, the i-th at at + 1s + i*step, changed by edit, and waits
// until the DC's database holds all from+n of them.
func burst(ctx context.Context, d *dc.DC, sink gen.Sink, at time.Time, from, n int, step time.Duration, sender string, edit func(int, *gen.Event)) error {
	g, err := gen.New(gen.Config{Seed: 99, DC: d.Name})
	if err != nil {
		return err
	}
	var events [][]byte
	for i := from; i < from+n; i++ {
		m := g.Next()
		m.Event.Sender = sender
		edit(i, &m.Event)
		m.Event.Time = at.Add(time.Second + time.Duration(i)*step).Format(time.RFC3339Nano)
		b, _ := json.Marshal(m.Event)
		events = append(events, b)
	}
	if err := sink.Write(events); err != nil {
		return err
	}
	for deadline := time.Now().Add(time.Minute); ; {
		got, err := d.DB.Count("mail", `SELECT count("queue_id") FROM mail_event WHERE "sender" = '`+sender+`'`)
		if err == nil && got >= int64(from+n) {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the burst from %s did not reach %s's database in a minute (%d of %d, %v)", sender, d.Name, got, from+n, err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(250 * time.Millisecond):
		}
	}
}

func writeReport(w io.Writer, central *stack.InfluxDB, dcs []*dc.DC) error {
	sections := []struct {
		title, q string
	}{
		{"Central: events counted, by DC and event (mail_counts, 1m windows summed)",
			`SELECT sum("count") AS events FROM mail_counts WHERE "window" = '1m' GROUP BY "dc", "event"`},
		{"Central: latency (ms) by DC and direction, the minute of the traffic (mail_latency)",
			`SELECT first("p50") AS p50, first("p90") AS p90, first("p99") AS p99, first("max") AS max, first("count") AS events FROM mail_latency WHERE "window" = '1m' GROUP BY "dc", "direction"`},
		{"Central: top senders by distinct recipients per minute (mail_spam; senders are pseudonyms)",
			`SELECT top("distinct_recipients", "sender", 3) AS distinct_recipients FROM mail_spam GROUP BY "dc"`},
	}
	for _, s := range sections {
		series, err := central.Query("mail_central", s.q)
		if err != nil {
			return err
		}
		fmt.Fprintf(w, "\n%s\n", s.title)
		printSeries(w, series)
	}

	for _, d := range dcs {
		fmt.Fprintf(w, "\n%s: the agent's counters (self-metrics in the DC database)\n", d.Name)
		source := `SELECT last("messages_received") AS received, last("metrics_emitted") AS emitted, last("events_dead_lettered") AS dead_lettered, last("events_missing_time") AS missing_time FROM internal_mailevents`
		if d.Postfix != nil {
			source = `SELECT last("lines_read") AS log_lines_read, last("events_emitted") AS emitted, last("queue_ids_open") AS queue_ids_open, last("queue_ids_evicted") AS evicted FROM internal_maillog WHERE "file" != ''`
		}
		for _, q := range []string{
			source,
			`SELECT last("values_hashed") AS hashed, last("values_dropped") AS dropped FROM internal_piiscrub`,
			`SELECT last("points_sent") AS sent_central, last("retries") AS retries FROM internal_rollupfwd WHERE "url" != ''`,
			`SELECT last("spool_bytes") AS spool_bytes, last("spool_segments") AS segments FROM internal_rollupfwd WHERE "spool_dir" != ''`,
		} {
			series, err := d.DB.Query("telegraf", q)
			if err != nil {
				return err
			}
			printSeries(w, series)
		}
		for _, topic := range []struct{ what, name string }{{"spam", d.SpamTopic}, {"deliverability", "mail_deliverability"}, {"abuse", "mail_abuse"}} {
			c, err := kapacitorTopic(d, topic.name)
			if err != nil {
				return err
			}
			fmt.Fprintf(w, "%s: %s alerts on topic %q: %s\n", d.Name, topic.what, topic.name, c)
		}
	}

	// Nothing personal centrally: every string, tag and tag value checked.
	values, leaks, err := central.PrivacyScan("mail_central")
	if err != nil {
		return err
	}
	for _, s := range leaks {
		fmt.Fprintf(w, "  PII centrally: %q\n", s)
	}
	fmt.Fprintf(w, "\nPrivacy check: %d string values and tag values in the central database, %d holding an e-mail or IP address.\n", values, len(leaks))
	if len(leaks) > 0 {
		return fmt.Errorf("%d values with personal data reached the central database", len(leaks))
	}
	return nil
}

// kapacitorTopic lists the alerts a DC's Kapacitor raised on a topic.
func kapacitorTopic(d *dc.DC, topic string) (string, error) {
	c, err := client.New(client.Config{URL: d.Kapacitor.URL, Timeout: 10 * time.Second})
	if err != nil {
		return "", err
	}
	ev, err := c.ListTopicEvents(c.TopicEventsLink(topic), nil)
	if err != nil && strings.Contains(err.Error(), "unknown topic") {
		return "none", nil // no alert was ever raised
	}
	if err != nil {
		return "", err
	}
	levels := map[string]int{}
	var critical []string
	for _, e := range ev.Events {
		levels[e.State.Level]++
		if e.State.Level == "CRITICAL" {
			critical = append(critical, "\n    "+e.State.Message)
		}
	}
	return fmt.Sprintf("%d CRITICAL, %d WARNING%s", levels["CRITICAL"], levels["WARNING"], strings.Join(critical, "")), nil
}

// printSeries prints InfluxQL aggregates as one table, group-by tags
// first, without the time column.
func printSeries(w io.Writer, series []stack.Series) {
	if len(series) == 0 {
		fmt.Fprintln(w, "  (none)")
		return
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	var tagKeys []string
	for k := range series[0].Tags {
		tagKeys = append(tagKeys, k)
	}
	sort.Strings(tagKeys)
	const first = 1 // column 0 is time
	header := append(append([]string{}, tagKeys...), series[0].Columns[first:]...)
	fmt.Fprintln(tw, "  "+strings.Join(header, "\t"))
	for _, s := range series {
		for _, row := range s.Values {
			var cells []string
			for _, k := range tagKeys {
				cells = append(cells, s.Tags[k])
			}
			for i, v := range row[first:] {
				cells = append(cells, cell(s.Columns[first+i], v))
			}
			fmt.Fprintln(tw, "  "+strings.Join(cells, "\t"))
		}
	}
	tw.Flush()
}

func cell(column string, v any) string {
	switch x := v.(type) {
	case nil:
		return "-"
	case json.Number:
		if column == "time" {
			if ns, err := x.Int64(); err == nil && ns > 0 {
				return time.Unix(0, ns).UTC().Format(time.RFC3339Nano)
			}
		}
		return x.String()
	case string:
		if len(x) > 60 {
			return x[:57] + "..."
		}
		return x
	default:
		return fmt.Sprint(x)
	}
}

// sendThroughPostfix sends n messages through the DC's Postfix, each to a
// recipient the sink accepts and every fifth also to one it defers and one
// it refuses.
func sendThroughPostfix(d *dc.DC, n int) (int, error) {
	for i := 0; i < n; i++ {
		to := []string{fmt.Sprintf("ok%d@example.net", i)}
		if i%5 == 0 {
			to = append(to, fmt.Sprintf("later%d@example.net", i), fmt.Sprintf("bad%d@example.net", i))
		}
		body := fmt.Sprintf("From: <sender%d@example.com>\r\nSubject: demo\r\nMessage-ID: <demo.%d@example.com>\r\n\r\nhello\r\n", i%7, i)
		if err := smtp.SendMail(d.Postfix.SMTP, nil, fmt.Sprintf("sender%d@example.com", i%7), to, []byte(body)); err != nil {
			return i, fmt.Errorf("sending through Postfix: %w", err)
		}
	}
	return n, nil
}

// The demo's SASL account on dc3, and how many wrong passwords a client
// tries before it.
const (
	saslUser, saslPassword = "alice", "correct horse"
	guesses                = 25
)

// passwordGuessing has a client log in to d's Postfix with wrong
// passwords, then with the right one (and send a message), and another
// hang up after EHLO: the security signals of inputs.maillog, and
// mail_abuse.tick's refused logins from one network.
func passwordGuessing(d *dc.DC, auth *stack.SASLAuth) error {
	if err := d.Postfix.UseSASL(auth); err != nil {
		return err
	}
	for i := 0; i < guesses; i++ {
		err := d.Postfix.Login(saslUser, fmt.Sprintf("guess%d", i), "")
		if err == nil || !strings.Contains(err.Error(), "535") {
			return fmt.Errorf("dc3: a wrong password: want Postfix's 535, got %v", err)
		}
	}
	if err := d.Postfix.Login(saslUser, saslPassword, "ok-after-login@example.net"); err != nil {
		return fmt.Errorf("dc3: the right password: %w", err)
	}
	return d.Postfix.Hangup()
}

// firstAttempts is how many events with a queue id n messages of
// sendThroughPostfix make before any retry: each message accepted, each
// recipient's first attempt, and for each refused recipient the notice
// Postfix sends the sender (accepted, delivered).
func firstAttempts(n int) int64 {
	fifths := int64((n + 4) / 5)
	return int64(2*n) + 2*fifths + 2*fifths
}

// postfixVersion is the installed Postfix's version.
func postfixVersion() string {
	out, err := exec.Command("postconf", "-h", "mail_version").Output()
	if err != nil {
		return "(version unknown)"
	}
	return strings.TrimSpace(string(out))
}
