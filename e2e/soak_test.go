package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/smtp"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/mailtick/mailtick/internal/testutil/stacktest"

	"github.com/mailtick/mailtick/internal/dev/dc"
	"github.com/mailtick/mailtick/internal/gen"
	"github.com/mailtick/mailtick/internal/latency"
	"github.com/mailtick/mailtick/internal/report"
	"github.com/mailtick/mailtick/internal/sla"
	"github.com/mailtick/mailtick/internal/testutil/providertest"
	"github.com/mailtick/mailtick/internal/testutil/stack"
	"github.com/mailtick/mailtick/plugins/common/maillog"
)

// TestWeekInTheLifeIntegration: one DC as deployed (the shipped
// telegraf.conf and tasks.toml, changed by addresses and the schedule
// only), scaled out (two nsqd behind its nsqlookupd, two agents on one
// channel), with two sources, mailers publishing into NSQ and a real
// Postfix whose log the first agent follows, through the faults of an
// ordinary week, on a busy machine:
//
//   - the first agent killed (SIGKILL) and started again;
//   - the Postfix log rotated while the agent runs: renamed, Postfix
//     writing the renamed file until it is reloaded two seconds later;
//   - the DC InfluxDB restarted;
//   - the central InfluxDB down for almost six minutes, the spool on a small
//     filesystem (1 MiB) that fills;
//   - both agents and Kapacitor stopped for longer than the tasks' period,
//     NSQ keeping the backlog, Postfix writing on;
//   - the Postfix log copied and truncated while the agent is down;
//   - an event stamped an hour ahead.
//
// At the end, per source, the DC database holds every event once, central
// counts at 1m, 1h and 1d add up to it, `mailtick sla` counts every
// latency, no agent panicked, and no address reached central.
func TestWeekInTheLifeIntegration(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test")
	}
	busy(t, 1)
	begin := time.Now()
	// The figures go to the test's log and to build/soak-figures.txt,
	// which `make test` prints: go test shows a passing test's log only
	// with -v.
	var figures strings.Builder
	logf := func(format string, args ...any) {
		t.Helper()
		t.Logf(format, args...)
		fmt.Fprintf(&figures, format+"\n", args...)
	}
	t.Cleanup(func() {
		root, err := stack.Root()
		if err == nil && os.MkdirAll(filepath.Join(root, "build"), 0o755) == nil {
			status := "passed"
			if t.Failed() {
				status = "FAILED"
			}
			_ = os.WriteFile(filepath.Join(root, "build", "soak-figures.txt"),
				[]byte("TestWeekInTheLifeIntegration "+status+" in "+time.Since(begin).Round(time.Second).String()+":\n"+figures.String()), 0o644)
		}
	})
	root := t.TempDir()
	central, err := stack.StartInfluxDB(filepath.Join(root, "central"))
	require.NoError(t, err, "the central InfluxDB must start")
	t.Cleanup(func() { central.Stop(15 * time.Second) })
	// The spool on a filesystem of its own, too small for a long outage.
	spool := filepath.Join(root, "dc1", "spool")
	stacktest.Tmpfs(t, spool, 1<<20)

	// The per-minute rollups on their shipped schedule (every minute): the
	// test checks every minute before the reconciler's first age.
	d, err := dc.StartWith(filepath.Join(root, "dc1"), "dc1", central, dc.Options{Postfix: true, MinuteEvery: "1m", Webhooks: true})
	require.NoError(t, err, "the DC must start for this test")
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("agent log ends:\n%s", d.Agent.LogTail(60))
			t.Logf("Kapacitor's log ends:\n%s", d.Kapacitor.LogTail(40))
		}
		require.NoError(t, d.Stop())
	})
	td := &testDC{DC: d, central: central}
	requireShippedTasks(t, td)
	// Scaled out: a second nsqd behind the DC's nsqlookupd, and a second
	// agent on the same channel (the first follows Postfix's log).
	nsqd2, err := stack.StartNSQD(filepath.Join(root, "dc1", "nsqd2"), stack.NSQDOptions{Lookupd: []string{d.Lookupd.TCPAddr}})
	require.NoError(t, err, "the second nsqd must start")
	t.Cleanup(func() { nsqd2.Stop(15 * time.Second) })
	agent2, err := d.StartAgent(filepath.Join(root, "dc1", "agent2"), "agent2")
	require.NoError(t, err, "the second agent must start")
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("second agent's log ends:\n%s", agent2.LogTail(40))
		}
		agent2.Stop(30 * time.Second)
	})
	nsqds := []string{d.NSQD.TCPAddr, nsqd2.TCPAddr}

	// The sources, all along: mailers (ten events every half second, and
	// now and then two rejects with no queue id), and mail through
	// Postfix (delivered, refused by the next hop, refused by Postfix
	// itself before and after a queue id).
	ctx, stopTraffic := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	var nsqSent, postfixSent int64
	var mu sync.Mutex
	hooks := newMailgunSender(t, d.Webhooks+"/mailgun")
	wg.Add(3)
	go func() {
		defer wg.Done()
		hooks.run(ctx)
	}()
	go func() {
		defer wg.Done()
		var sinks []*gen.NSQSink // the mailers publish to both nsqd
		for _, addr := range nsqds {
			sink, err := gen.NewNSQSink(addr, "mail_events")
			if err != nil {
				t.Errorf("publishing: %v", err)
				return
			}
			defer sink.Close()
			sinks = append(sinks, sink)
		}
		for round := 0; ctx.Err() == nil; round++ {
			sink := sinks[round%len(sinks)]
			g, err := gen.New(gen.Config{Seed: uint64(1000 + round), Count: 10, Start: time.Now().Add(-time.Second), Interval: 50 * time.Millisecond})
			if err != nil {
				t.Errorf("generating: %v", err)
				return
			}
			var batch [][]byte
			for range 10 {
				batch = append(batch, g.Next().Body)
			}
			if round%5 == 0 {
				for i := range 2 {
					batch = append(batch, fmt.Appendf(nil, `{"time":%q,"event":"rejected","direction":"inbound","mailer":"mx9","customer":"c1","smtp_code":550}`,
						time.Now().Add(time.Duration(i)*time.Microsecond).UTC().Format(time.RFC3339Nano)))
				}
			}
			if err := sink.Write(batch); err != nil {
				t.Errorf("publishing: %v", err)
				return
			}
			mu.Lock()
			nsqSent += int64(len(batch))
			mu.Unlock()
			sleepCtx(ctx, 500*time.Millisecond)
		}
	}()
	go func() {
		defer wg.Done()
		for i := 0; ctx.Err() == nil; i++ {
			// A session refused while Postfix reloads is no loss: what
			// counts is what its log says.
			if err := sendMail(d.Postfix.SMTP, i, []string{fmt.Sprintf("ok%d@example.net", i), fmt.Sprintf("bad%d@example.net", i), "reject-me@example.net"}); err != nil {
				t.Logf("mail through Postfix: %v", err)
			}
			_ = sendMail(d.Postfix.SMTP, i, []string{"reject-me@example.net"}) // NOQUEUE: refused
			mu.Lock()
			postfixSent++
			mu.Unlock()
			sleepCtx(ctx, 3*time.Second)
		}
	}()

	type fault struct {
		at   time.Duration
		name string
		do   func() error
	}
	maillogPath := d.Postfix.Maillog
	faults := []fault{
		{5 * time.Second, "SIGKILL the agent, start it again", func() error {
			if err := d.Agent.Kill(); err != nil {
				return err
			}
			return d.Agent.Restart()
		}},
		{12 * time.Second, "rotate the Postfix log: rename it, reload Postfix 2s later", func() error {
			if err := os.Rename(maillogPath, maillogPath+".1"); err != nil {
				return err
			}
			time.Sleep(2 * time.Second)
			return d.Postfix.Reload()
		}},
		{20 * time.Second, "restart the DC InfluxDB", func() error {
			if err := d.DB.Stop(15 * time.Second); err != nil {
				return err
			}
			return d.DB.Restart()
		}},
		{25 * time.Second, "stop the central InfluxDB", func() error { return central.Stop(15 * time.Second) }},
		{30 * time.Second, "stop both agents and Kapacitor for 5m20s: the two nsqd keep the backlog", func() error {
			if err := d.Agent.Stop(30 * time.Second); err != nil {
				return err
			}
			if err := agent2.Stop(30 * time.Second); err != nil {
				return err
			}
			return d.Kapacitor.Stop(15 * time.Second)
		}},
		{40 * time.Second, "copy and truncate the Postfix log (the agent is down)", func() error {
			b, err := os.ReadFile(maillogPath)
			if err != nil {
				return err
			}
			if err := os.WriteFile(maillogPath+".2", b, 0o644); err != nil {
				return err
			}
			return os.Truncate(maillogPath, 0)
		}},
		{50 * time.Second, "an event stamped an hour ahead", func() error {
			sink, err := gen.NewNSQSink(d.NSQD.TCPAddr, "mail_events")
			if err != nil {
				return err
			}
			defer sink.Close()
			mu.Lock()
			nsqSent++
			mu.Unlock()
			return sink.Write([][]byte{fmt.Appendf(nil, `{"time":%q,"event":"delivered","direction":"outbound","mailer":"mx9","customer":"c1","latency_ms":12,"sender":"future@example.com"}`,
				time.Now().Add(time.Hour).UTC().Format(time.RFC3339Nano))})
		}},
		{30*time.Second + 320*time.Second, "start the agents and Kapacitor again (central still down: the first agent's spool fills)", func() error {
			if err := d.Kapacitor.Restart(); err != nil {
				return err
			}
			if err := agent2.Restart(); err != nil {
				return err
			}
			return d.Agent.Restart()
		}},
		{375 * time.Second, "start the central InfluxDB again", central.Restart},
	}
	start := time.Now()
	for _, f := range faults {
		time.Sleep(time.Until(start.Add(f.at)))
		logf("%6.1fs: %s", time.Since(start).Seconds(), f.name)
		require.NoError(t, f.do(), f.name)
	}
	time.Sleep(time.Until(start.Add(400 * time.Second)))
	stopTraffic()
	wg.Wait()
	require.NoError(t, d.Postfix.Stop(), "Postfix stops: its log is final")
	logf("%6.1fs: traffic stopped: %d NSQ messages, %d mails through Postfix, %d Mailgun webhooks (%d attempts refused, retried)",
		time.Since(start).Seconds(), nsqSent, postfixSent, hooks.sent, hooks.refused)

	// Per source, the DC database holds every event once: every NSQ
	// message, every event of the Postfix log (all its files, read apart
	// from the agent).
	now := time.Now()
	postfixWant, err := maillog.LogEvents(maillogPath+".1", maillogPath+".2", maillogPath)
	require.NoError(t, err)
	count := func(db *stack.InfluxDB, database, q string) int64 {
		n, err := db.Count(database, q)
		require.NoError(t, err)
		return n
	}
	perSource := func() [3]int64 {
		return [3]int64{
			count(d.DB, "mail", `SELECT count("events") FROM mail_event WHERE "customer" != '' AND "customer" != '`+mailgunAccount+`'`),
			count(d.DB, "mail", `SELECT count("events") FROM mail_event WHERE "customer" = ''`),
			count(d.DB, "mail", `SELECT count("events") FROM mail_event WHERE "customer" = '`+mailgunAccount+`'`),
		}
	}
	want := [3]int64{nsqSent, postfixWant, hooks.sent}
	require.Eventually(t, func() bool { return perSource() == want }, 3*time.Minute, time.Second,
		"the DC database holds %v NSQ, Postfix and Mailgun events (has %v)", want, perSource())

	// Central adds up to it at every level and per source (the event an
	// hour ahead is not in any window yet), once the reconciler has
	// checked the minutes Kapacitor's period left behind (10 minutes after
	// their end): about 700 s into the run on an idle machine; the bound
	// leaves a busy one as long again as the outage.
	deadline := begin.Add(17 * time.Minute)
	before := fmt.Sprintf(`time < %d`, now.UnixNano())
	sources := []struct{ name, where string }{
		{"NSQ", `"customer" != '' AND "customer" != '` + mailgunAccount + `'`},
		{"Postfix", `"customer" = ''`},
		{"Mailgun", `"customer" = '` + mailgunAccount + `'`},
	}
	raw := map[string]int64{}
	for _, src := range sources {
		raw[src.name] = count(d.DB, "mail", `SELECT count("events") FROM mail_event WHERE `+src.where+` AND `+before)
	}
	// The deliverability counts (mail_deliv, by reason and provider too)
	// add up the same way.
	for _, w := range []string{"1m", "1h", "1d"} {
		for _, m := range []string{"mail_counts", "mail_deliv", "mail_deliv_dc"} {
			// mail_deliv_dc has no customer to tell the sources
			// apart: its total adds up.
			want, srcs := raw, sources
			if m == "mail_deliv_dc" {
				want = map[string]int64{"all": raw["NSQ"] + raw["Postfix"] + raw["Mailgun"]}
				srcs = []struct{ name, where string }{{"all", `time >= 0`}}
			}
			got := map[string]int64{}
			if !assertEventually(t, func() bool {
				for _, src := range srcs {
					got[src.name], _ = central.Count("mail_central", `SELECT sum("count") FROM `+m+` WHERE "window" = '`+w+`' AND `+src.where)
				}
				return maps.Equal(got, want)
			}, time.Until(deadline)) {
				logMinutes(t, d, central, before, m)
				t.Fatalf("central %s %s %v of %v events after %s", w, m, got, want, time.Since(start).Round(time.Second))
			}
		}
		logf("%6.1fs: central %s counts and deliverability counts = raw = %v", time.Since(start).Seconds(), w, raw)
	}
	// Why the mail through Postfix did not arrive, as
	// processors.mailclassify tagged the log's events: the next hop's
	// "550 5.1.1 ... User unknown" and Postfix's own "554 5.7.1 ... no
	// such user here" (before and after a queue id) are both userunknown
	// in Sisimai's taxonomy; no other non-delivery lacks a reason (an
	// "accepted" event is no delivery attempt: it has none).
	series, err := d.DB.Query("mail", `SELECT count("events") FROM mail_event WHERE "customer" = '' AND "event" =~ /^(bounced|deferred|rejected|failed|expired)$/ AND `+before+` GROUP BY "event", "reason"`)
	require.NoError(t, err)
	reasons := map[string]int64{}
	for _, s := range series {
		n, _ := s.Values[0][1].(json.Number).Int64()
		require.NotEmpty(t, s.Tags["reason"], "%d Postfix %s events without a reason", n, s.Tags["event"])
		if e := s.Tags["event"]; e == "bounced" || e == "rejected" {
			require.Equal(t, "userunknown", s.Tags["reason"], "%d Postfix %s events", n, e)
		}
		reasons[s.Tags["event"]+" "+s.Tags["reason"]] += n
	}
	require.Positive(t, reasons["bounced userunknown"])
	require.Positive(t, reasons["rejected userunknown"])
	logf("%6.1fs: the Postfix log's non-deliveries by event and reason: %v", time.Since(start).Seconds(), reasons)

	// mailtick sla counts every latency, and its quantiles are the exact
	// ones within the histograms' relative error; so does `--by stage`,
	// for each of Postfix's delays.
	src := sla.Source{Querier: stack.Querier{URL: central.URL, Timeout: time.Minute}, Database: "mail_central"}
	for _, c := range []struct {
		by     string
		fields map[string]string // the group's stage -> its raw field
	}{
		{"", map[string]string{"": "latency_ms"}},
		{"stage", map[string]string{"before_qmgr": "delay_before_qmgr_ms", "in_qmgr": "delay_in_qmgr_ms",
			"conn_setup": "delay_conn_setup_ms", "transmission": "delay_transmission_ms"}},
	} {
		var res []sla.Result
		wantCount := map[string]int{}
		all := map[string][]float64{}
		for stage, field := range c.fields {
			all[stage] = values(t, d.DB, `SELECT "`+field+`" FROM mail_event WHERE "`+field+`" >= 0 AND `+before)
			wantCount[stage] = len(all[stage])
			require.NotEmpty(t, all[stage], field)
		}
		f := sla.Filter{By: strings.Fields(c.by)}
		got := map[string]int{}
		require.Eventually(t, func() bool {
			res, err = src.Answer([]report.Range{{Name: "all", From: start.Add(-time.Hour), To: now.Add(time.Minute)}}, f, nil)
			clear(got)
			for _, r := range res {
				got[r.Group["stage"]] = int(r.Count)
			}
			return err == nil && maps.Equal(got, wantCount)
		}, time.Minute, time.Second, "mailtick sla --by %q counts every value (%v): %v %v", c.by, wantCount, got, err)
		for _, r := range res {
			exact := map[string]float64{}
			for _, q := range sla.Quantiles {
				want := all[r.Group["stage"]][latency.NearestRank(q, r.Count)-1]
				exact[sla.QuantileName(q)] = want
				require.InDelta(t, want, r.Quantiles[sla.QuantileName(q)], want*latency.RelativeError*(1+1e-9), "%v q%v", r.Group, q)
			}
			logf("%6.1fs: mailtick sla --by %q %v: %d values = raw; quantiles %v, exact %v", time.Since(start).Seconds(), c.by, r.Group, r.Count, r.Quantiles, exact)
		}
	}

	// No agent panicked; nothing personal reached central.
	for _, a := range []*stack.Telegraf{d.Agent, agent2} {
		logText, err := os.ReadFile(a.LogPath)
		require.NoError(t, err)
		require.NotContains(t, string(logText), "panic", a.LogPath)
	}
	logText, err := os.ReadFile(d.Agent.LogPath)
	require.NoError(t, err)
	require.Contains(t, string(logText), "no room left", "the spool's filesystem filled while central was down")
	checked, leaks, err := central.PrivacyScan("mail_central")
	require.NoError(t, err)
	require.Positive(t, checked)
	require.Empty(t, leaks)
	late := count(d.DB, "telegraf", `SELECT max("late_events") FROM internal_mailrollups`)
	logf("%6.1fs: done; %d NSQ, %d Postfix and %d Mailgun events; the reconciler rolled up %d late events",
		time.Since(start).Seconds(), nsqSent, postfixWant, hooks.sent, late)
	// What reached the agents' rollupfwd and what it spooled, since each
	// agent's last start (Kapacitor's rollups and the reconciler's).
	spooledN := count(d.DB, "telegraf", `SELECT sum("n") FROM (SELECT last("points_spooled") AS "n" FROM internal_rollupfwd GROUP BY "spool_dir")`)
	unchangedN := count(d.DB, "telegraf", `SELECT sum("n") FROM (SELECT last("points_unchanged") AS "n" FROM internal_rollupfwd GROUP BY "spool_dir")`)
	logf("%6.1fs: since their last start the agents' rollupfwd spooled %d points and skipped %d unchanged ones (%.1f%% of what reached it)",
		time.Since(start).Seconds(), spooledN, unchangedN, 100*float64(unchangedN)/float64(max(1, spooledN+unchangedN)))
}

// values returns the first column of q's rows in the DC's raw database,
// sorted.
func values(t *testing.T, db *stack.InfluxDB, q string) []float64 {
	t.Helper()
	series, err := db.Query("mail", q)
	require.NoError(t, err)
	var out []float64
	for _, s := range series {
		for _, row := range s.Values {
			v, _ := row[1].(json.Number).Float64()
			out = append(out, v)
		}
	}
	sort.Float64s(out)
	return out
}

// logMinutes prints, minute by minute, the raw events, the DC's 1m counts
// of measurement m and central's, and the agents' self-metrics of the
// central path: where a failed run lost what.
func logMinutes(t *testing.T, d *dc.DC, central *stack.InfluxDB, before, m string) {
	perMinute := func(db *stack.InfluxDB, database, q string) map[int64]int64 {
		out := map[int64]int64{}
		series, err := db.Query(database, q+` AND `+before+` GROUP BY time(1m) fill(none)`)
		if err != nil {
			t.Logf("%s: %v", q, err)
		}
		for _, s := range series {
			for _, row := range s.Values {
				ts, _ := row[0].(json.Number).Int64()
				n, _ := row[1].(json.Number).Float64()
				out[ts] = int64(n)
			}
		}
		return out
	}
	raw := perMinute(d.DB, "mail", `SELECT count("events") FROM mail_event WHERE time > 0`)
	local := perMinute(d.DB, "mail_rollups", `SELECT sum("count") FROM `+m+` WHERE "window" = '1m'`)
	cent := perMinute(central, "mail_central", `SELECT sum("count") FROM `+m+` WHERE "window" = '1m'`)
	var keys []int64
	for k := range raw {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		t.Logf("minute %s: raw %d, DC %s 1m %d, central %d", time.Unix(0, k).UTC().Format("15:04"), raw[k], m, local[k], cent[k])
	}
	for _, q := range []string{
		`SELECT last(*) FROM internal_write WHERE time > 0 GROUP BY "output", "host"`,
		`SELECT last(*) FROM internal_rollupfwd WHERE time > 0 GROUP BY *`,
		`SELECT last(*) FROM internal_mailrollups WHERE time > 0 GROUP BY *`,
	} {
		series, err := d.DB.Query("telegraf", q)
		if err != nil {
			t.Logf("%s: %v", q, err)
			continue
		}
		for _, s := range series {
			t.Logf("%s %v: %v %v", s.Name, s.Tags, s.Columns, s.Values)
		}
	}
}

// mailgunAccount is the account id (the customer tag) of the Mailgun
// events the soak sends.
const mailgunAccount = "soak-mailgun"

// mailgunSender sends Mailgun's published sample events as Mailgun
// does: one signed webhook per event, each event stamped when it happens,
// sent again until answered 2xx (Mailgun retries for 8 hours), signed
// anew on every attempt.
type mailgunSender struct {
	t       *testing.T
	url     string
	samples []map[string]any
	pending [][]byte // event-data not yet answered 2xx, oldest first
	sent    int64    // events answered 2xx
	refused int64    // attempts not answered 2xx
}

func newMailgunSender(t *testing.T, url string) *mailgunSender {
	bodies, err := providertest.Bodies("mailgun")
	require.NoError(t, err)
	m := &mailgunSender{t: t, url: url}
	for _, b := range bodies {
		var doc struct {
			EventData map[string]any `json:"event-data"`
		}
		require.NoError(t, json.Unmarshal(b.Data, &doc))
		m.samples = append(m.samples, doc.EventData)
	}
	return m
}

// run makes an event every second and sends what is pending, until ctx
// is done; then it sends what is still pending, for up to a minute.
func (m *mailgunSender) run(ctx context.Context) {
	for i := 0; ctx.Err() == nil; i++ {
		ev := maps.Clone(m.samples[i%len(m.samples)])
		ev["timestamp"] = float64(time.Now().UnixMicro()) / 1e6
		ev["id"] = fmt.Sprintf("soak-%d", i)
		ev["account"] = map[string]any{"id": mailgunAccount}
		b, err := json.Marshal(ev)
		require.NoError(m.t, err)
		m.pending = append(m.pending, b)
		m.flush()
		sleepCtx(ctx, time.Second)
	}
	for deadline := time.Now().Add(time.Minute); len(m.pending) > 0 && time.Now().Before(deadline); time.Sleep(time.Second) {
		m.flush()
	}

	if len(m.pending) > 0 {
		m.t.Errorf("%d Mailgun webhooks never answered 2xx", len(m.pending))
	}
}

// flush sends every pending event, 16 at a time (Mailgun's retries come
// in parallel); those not answered 2xx stay pending.
func (m *mailgunSender) flush() {
	var (
		mu    sync.Mutex
		wg    sync.WaitGroup
		slots = make(chan struct{}, 16)
		keep  [][]byte
	)
	for _, ev := range m.pending {
		slots <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-slots; wg.Done() }()
			code, msg := m.post(ev)
			mu.Lock()
			defer mu.Unlock()
			switch {
			case code/100 == 2:
				m.sent++
			case code == 0 || code >= 500:
				m.refused++
				keep = append(keep, ev)
			default: // Mailgun would not retry: the test's data is wrong
				m.t.Errorf("Mailgun webhook answered %d: %s", code, msg)
			}
		}()
	}
	wg.Wait()
	m.pending = keep
}

// post sends one event, signed now, and returns the answer (0: none).
func (m *mailgunSender) post(ev []byte) (int, string) {
	sig, err := json.Marshal(providertest.MailgunSignature(dc.WebhookKey, time.Now()))
	if err != nil {
		return 0, err.Error()
	}
	body := fmt.Appendf(nil, `{"signature":%s,"event-data":%s}`, sig, ev)
	resp, err := http.Post(m.url, "application/json", bytes.NewReader(body))
	if err != nil {
		return 0, err.Error()
	}
	msg, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	return resp.StatusCode, string(msg)
}

// assertEventually is require.Eventually that reports instead of failing.
func assertEventually(t *testing.T, cond func() bool, within time.Duration) bool {
	deadline := time.Now().Add(within)
	for {
		if cond() {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(time.Second)
	}
}

func sleepCtx(ctx context.Context, d time.Duration) {
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
}

// sendMail sends one message to the recipients Postfix accepts of rcpts;
// an error only when the session itself fails.
func sendMail(addr string, i int, rcpts []string) error {
	c, err := smtp.Dial(addr)
	if err != nil {
		return err
	}
	defer c.Close()
	if err := c.Mail(fmt.Sprintf("sender%d@example.com", i%7)); err != nil {
		return err
	}
	accepted := 0
	for _, r := range rcpts {
		if c.Rcpt(r) == nil {
			accepted++
		}
	}
	if accepted == 0 {
		return c.Quit()
	}
	w, err := c.Data()
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "From: <sender%d@example.com>\r\nSubject: soak\r\nMessage-ID: <soak.%d@example.com>\r\n\r\nhello\r\n", i%7, i)
	if err := w.Close(); err != nil {
		return err
	}
	return c.Quit()
}
