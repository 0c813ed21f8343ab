// Package e2e runs the whole per-DC pipeline of telegraf.conf and
// tasks.toml on real servers: nsqd -> bin/telegraf -> DC InfluxDB ->
// Kapacitor -> the agent's listener -> piiscrub -> rollupfwd -> central
// InfluxDB.
package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/mailtick/mailtick/internal/deliv"
	"github.com/mailtick/mailtick/internal/dev/dc"
	"github.com/mailtick/mailtick/internal/gen"
	"github.com/mailtick/mailtick/internal/kapacitor/tasks"
	"github.com/mailtick/mailtick/internal/latency"
	"github.com/mailtick/mailtick/internal/pii"
	"github.com/mailtick/mailtick/internal/report"
	"github.com/mailtick/mailtick/internal/sla"
	"github.com/mailtick/mailtick/internal/testutil/stack"
	"github.com/mailtick/mailtick/internal/testutil/stacktest"
	"github.com/mailtick/mailtick/plugins/common/bounce"
	"github.com/mailtick/mailtick/plugins/inputs/mailevents"
)

// testDC is a DC and the central InfluxDB it forwards to.
type testDC struct {
	*dc.DC
	central *stack.InfluxDB
}

func TestOneDCIntegration(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test")
	}
	d := startDC(t)
	requireShippedTasks(t, d)
	nsqd, dcDB, central := d.NSQD, d.DB, d.central

	// Only Kapacitor writes to the agent's listener: a forged rollup (a
	// local process's write without the password, or with a wrong one)
	// is refused and never reaches central.
	forged := "mail_counts,dc=dc1,direction=outbound,event=delivered,window=1m count=1000000 1\n"
	for _, password := range []string{"", "wrong"} {
		req, err := http.NewRequest(http.MethodPost, "http://"+d.Listen+"/write?db=mail_rollups", strings.NewReader(forged))
		require.NoError(t, err)
		if password != "" {
			req.SetBasicAuth("kapacitor", password)
		}
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		resp.Body.Close()
		require.Equal(t, http.StatusUnauthorized, resp.StatusCode, "a write with password %q", password)
	}

	// K events with e-mail and IP addresses in every string field, into NSQ.
	const k = 3000
	byKey := map[string]int64{}
	var events []gen.Message
	// Event times over the last three minutes: within the shipped period
	// of the per-minute tasks (5m).
	_, err := gen.Publish(context.Background(), nsqd.TCPAddr, "mail_events", gen.Config{Seed: 77, Count: k, Interval: 60 * time.Millisecond,
		Start: time.Now().Add(-k * 60 * time.Millisecond)}, 0, 200, func(m gen.Message) {
		byKey[m.Event.Direction+" "+m.Event.Event]++
		events = append(events, m)
	})
	require.NoError(t, err)
	requireExact(t, d, k, byKey)
	requireDeliverability(t, d, events)

	// Central percentiles equal those computed here from the same events.
	expected := stacktest.LatencyByMinute(events)
	const latencyQuery = `SELECT "p50", "p99", "max", "count" FROM mail_latency WHERE "window" = '1m' GROUP BY "direction"`
	require.Eventually(t, func() bool {
		series, err := central.Query("mail_central", latencyQuery)
		if err != nil || len(series) != 2 || len(series[0].Values)+len(series[1].Values) != len(expected) {
			return false
		}
		for _, s := range series {
			for _, row := range s.Values {
				ts, _ := row[0].(json.Number).Int64()
				if expected[fmt.Sprintf("%s %d", s.Tags["direction"], ts)] != fmt.Sprint(row[1:]) {
					return false
				}
			}
		}
		return true
	}, 90*time.Second, 250*time.Millisecond, "central mail_latency equals the percentiles of the events sent")

	// The latency histograms reach central through the agent at every
	// level, each counting every event once, and answer the quantiles of
	// the events within 1%.
	for _, l := range latency.Levels {
		require.Eventually(t, func() bool {
			n, err := central.Count("mail_central", fmt.Sprintf(`SELECT sum("count") FROM mail_latency_hist WHERE "window" = '%s'`, l))
			return err == nil && n == k
		}, 90*time.Second, 250*time.Millisecond, "central %s histograms count all %d events", l, k)
	}
	all := make([]float64, 0, k)
	for _, m := range events {
		all = append(all, m.Event.LatencyMs)
	}
	sort.Float64s(all)
	src := sla.Source{Querier: stack.Querier{URL: central.URL, Timeout: time.Minute}, Database: "mail_central"}
	results, err := src.Answer([]report.Range{{Name: "all", From: events[0].Time, To: time.Now().Add(time.Minute)}}, sla.Filter{}, nil)
	require.NoError(t, err)
	require.Len(t, results, 1)
	require.Equal(t, int64(k), results[0].Count)
	for _, q := range sla.Quantiles {
		want := all[latency.NearestRank(q, k)-1]
		require.InDelta(t, want, results[0].Quantiles[sla.QuantileName(q)], want*latency.RelativeError*(1+1e-9), "q%v", q)
	}

	// Privacy: nothing in the central database holds an e-mail or IP
	// address; the DC still has them.
	require.Eventually(t, func() bool {
		n, err := central.Count("mail_central", `SELECT count("distinct_recipients") FROM mail_spam`)
		return err == nil && n > 0
	}, 90*time.Second, 250*time.Millisecond, "spam signals central, senders pseudonymized")
	n, err := central.Count("mail_central", `SELECT count("count") FROM mail_counts WHERE time < 1000`)
	require.NoError(t, err)
	require.Zero(t, n, "the forged rollup reached central")
	checked, leaks, err := central.PrivacyScan("mail_central")
	require.NoError(t, err)
	require.Positive(t, checked)
	require.Empty(t, leaks, "central holds e-mail or IP addresses")
	dump, err := central.Query("mail_central", `SELECT * FROM /.*/`)
	require.NoError(t, err)
	raw, _ := json.Marshal(dump)
	require.NotContains(t, string(raw), "@example")
	dcDump, err := dcDB.Query("mail", `SELECT sender FROM mail_event LIMIT 1`)
	require.NoError(t, err)
	require.True(t, pii.Contains(dcDump[0].Values[0][1].(string)), "the DC keeps the raw data")
}

// TestOneDCFaultsIntegration: 1% poison messages, the central InfluxDB
// down for a while and the agent killed with SIGKILL, all during traffic,
// with two busy processes beside it taking the machine's cores; raw and
// central counts are still exact and every bad message is dead-lettered.
func TestOneDCFaultsIntegration(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test")
	}
	busy(t, 2)
	d := startDC(t)
	const n = 6000
	cfg := gen.Config{Seed: 78, Count: n, Bad: 0.01, Interval: 10 * time.Millisecond,
		Start: time.Now().Add(-n * 10 * time.Millisecond)}
	byKey := map[string]int64{}
	type result struct {
		sum gen.Summary
		err error
	}
	done := make(chan result, 1)
	go func() {
		sum, err := gen.Publish(context.Background(), d.NSQD.TCPAddr, "mail_events", cfg, 1000, 100, func(m gen.Message) {
			if m.Kind == gen.Good || m.Kind == gen.MissingTime {
				byKey[m.Event.Direction+" "+m.Event.Event]++
			}
		})
		done <- result{sum, err}
	}()

	// The faults come mid-stream, each once the DC database holds so many
	// events: the central side goes down, the agent is killed and
	// restarted, the central side comes back once the new agent writes.
	// What the killed agent held in flight comes back after nsqd's message
	// timeout (60s): when it held every message not yet stored (a fast
	// agent takes up to max_in_flight, 10,000, and the publisher may be
	// done), the new agent writes only after that.
	raw := func(atLeast int64, within time.Duration) int64 {
		var got int64
		require.Eventually(t, func() bool {
			got, _ = d.DB.Count("mail", `SELECT count("events") FROM mail_event`)
			return got >= atLeast
		}, within, 50*time.Millisecond, "want %d raw events stored", atLeast)
		return got
	}
	raw(1000, time.Minute)
	require.NoError(t, d.central.Stop(10*time.Second))
	atKill := raw(2500, time.Minute)
	require.Less(t, atKill, int64(n), "the kill must land mid-stream")
	require.NoError(t, d.Agent.Kill())
	require.NoError(t, d.Agent.Restart()) // the test's cleanup stops the live process
	raw(atKill+500, 2*time.Minute)        // the new agent is writing
	require.NoError(t, d.central.Restart())
	res := <-done
	require.NoError(t, res.err)
	sum := res.sum
	require.Equal(t, n, sum.Messages)

	stored := int64(sum.ByKind[gen.Good] + sum.ByKind[gen.MissingTime])
	requireExact(t, d, stored, byKey)
	// Every bad message is dead-lettered. A message dead-lettered just before
	// the kill, but not yet finished, is dead-lettered again when NSQ hands
	// it out again: duplicates carry the same message_id.
	bad := sum.ByKind[gen.Malformed] + sum.ByKind[gen.WrongType] + sum.ByKind[gen.Oversized]
	dead, err := d.NSQD.TopicStats("mail_events_dead")
	require.NoError(t, err)
	require.GreaterOrEqual(t, dead.MessageCount, int64(bad))
	ids := map[string]bool{}
	for _, body := range stacktest.Consume(t, d.NSQD, "mail_events_dead", int(dead.MessageCount)) {
		var dl mailevents.DeadLetter
		require.NoError(t, json.Unmarshal(body, &dl))
		ids[dl.MessageID] = true
	}
	require.Len(t, ids, bad, "every bad message dead-lettered, duplicates only of the same message")
}

// requireShippedTasks checks that the tasks running in the DC's Kapacitor
// are the repository's tasks.toml with the DC's overrides, and that these
// change nothing but the vars they name.
func requireShippedTasks(t *testing.T, d *testDC) {
	t.Helper()
	root, err := stack.Root()
	require.NoError(t, err)
	path := filepath.Join(root, "tasks.toml")
	f, deployed, err := tasks.Load(path, tasks.Options{URL: d.Kapacitor.URL, Overrides: d.TaskOverrides})
	require.NoError(t, err)
	c, err := f.Client()
	require.NoError(t, err)
	list, err := tasks.List(c, f, deployed)
	require.NoError(t, err)
	// The tasks, and the alert handlers (not deployed where the DC sets
	// no $MAILTICK_ALERT_WEBHOOK).
	require.Len(t, list, len(deployed)+len(f.Handlers()), "every task and handler of tasks.toml, and no other")
	skipped := map[string]bool{}
	for _, h := range f.Handlers() {
		skipped["handler "+h.Topic+"/"+h.ID] = len(h.Unset) > 0
	}
	for _, l := range list {
		if skipped[l.ID] {
			require.Contains(t, l.Drift, "not deployed", l.ID)
			continue
		}
		require.Equal(t, "in sync", l.Drift, l.ID)
	}
	plan, err := tasks.Plan(c, f, deployed, false)
	require.NoError(t, err)
	for _, a := range plan {
		if skipped[a.ID] {
			require.Equal(t, "skipped", a.Kind, a.ID)
			continue
		}
		require.Equal(t, "unchanged", a.Kind, a.ID)
		for _, o := range d.TaskOverrides {
			if a.ID == f.IDPrefix+o.Task && o.Task == "mail_counts_1m" {
				require.Equal(t, []string{"overrides over tasks.toml: every=" + o.Value}, a.Details, "plan shows the override layer")
			}
		}
	}

	// The deployed tasks differ from tasks.toml by their schedule and log
	// paths only: no period, query or threshold of their own.
	for _, o := range d.TaskOverrides {
		require.Contains(t, []string{"every", "log_path"}, o.Var, "override of %s", o.Task)
	}
	_, shipped, err := tasks.Load(path, tasks.Options{URL: d.Kapacitor.URL})
	require.NoError(t, err)
	overridden := map[string]bool{}
	for _, o := range d.TaskOverrides {
		overridden[f.IDPrefix+o.Task+"."+o.Var] = true
	}
	require.Len(t, shipped, len(deployed))
	for i, s := range shipped {
		dep := deployed[i]
		require.Equal(t, s.ID, dep.ID)
		require.Equal(t, s.Text, dep.Text, "%s: the script as in the repository", s.ID)
		require.Equal(t, s.Enabled, dep.Enabled, s.ID)
		for name, v := range dep.Vars {
			if !overridden[s.ID+"."+name] {
				require.Equal(t, s.Vars[name], v, "%s: var %s as in tasks.toml", s.ID, name)
			}
		}
		for name := range s.Vars {
			require.Contains(t, dep.Vars, name, "%s: var %s of tasks.toml deployed", s.ID, name)
		}
	}
}

// TestLateEventsIntegration: events that reach the DC database 19 minutes
// late (an agent down that long while NSQ kept its backlog), and events
// without a queue id (a provider's, an SMTP-level reject), are counted
// centrally at every level and in mailtick sla, with the shipped periods:
// the reconciler (inputs.mailrollups) rolls up what Kapacitor's period
// left behind once the late minute passes its 20-minute check.
func TestLateEventsIntegration(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test")
	}
	d := startDC(t)
	requireShippedTasks(t, d)

	// 300 events of one minute that ended 18.5 to 19.5 minutes ago.
	const late, noQueue = 300, 200
	lateStart := time.Now().Add(-19*time.Minute - 30*time.Second).Truncate(time.Minute)
	var latencies int64
	_, err := gen.Publish(context.Background(), d.NSQD.TCPAddr, "mail_events", gen.Config{Seed: 79, Count: late,
		Interval: 150 * time.Millisecond, Start: lateStart}, 0, 100, func(m gen.Message) {
		require.Less(t, m.Time.Sub(lateStart), time.Minute)
		latencies++
	})
	require.NoError(t, err)
	// 200 rejects on time, with no queue id and no latency: what providers
	// and Postfix's NOQUEUE rejects send.
	sink, err := gen.NewNSQSink(d.NSQD.TCPAddr, "mail_events")
	require.NoError(t, err)
	var batch [][]byte
	for i := range noQueue {
		batch = append(batch, fmt.Appendf(nil, `{"time":%q,"event":"rejected","direction":"inbound","mailer":"mx1","customer":"c1","smtp_code":550}`,
			time.Now().Add(-time.Minute+time.Duration(i)*time.Millisecond).UTC().Format(time.RFC3339Nano)))
	}
	require.NoError(t, sink.Write(batch))
	sink.Close()

	require.Eventually(t, func() bool {
		n, err := d.DB.Count("mail", `SELECT count("events") FROM mail_event`)
		return err == nil && n == late+noQueue
	}, time.Minute, 250*time.Millisecond, "every raw event in the DC database")
	for _, w := range []string{"1m", "1h", "1d"} {
		require.Eventually(t, func() bool {
			n, err := d.central.Count("mail_central", `SELECT sum("count") FROM mail_counts WHERE "window" = '`+w+`'`)
			return err == nil && n == late+noQueue
		}, 4*time.Minute, time.Second, "central %s counts: every event, the late and those without a queue id", w)
	}
	for _, l := range latency.Levels {
		require.Eventually(t, func() bool {
			n, err := d.central.Count("mail_central", fmt.Sprintf(`SELECT sum("count") FROM mail_latency_hist WHERE "window" = '%s'`, l))
			return err == nil && n == latencies
		}, 2*time.Minute, time.Second, "central %s histograms count the late latencies", l)
	}
	src := sla.Source{Querier: stack.Querier{URL: d.central.URL, Timeout: time.Minute}, Database: "mail_central"}
	results, err := src.Answer([]report.Range{{Name: "all", From: lateStart.Add(-time.Hour), To: time.Now().Add(time.Minute)}}, sla.Filter{}, nil)
	require.NoError(t, err)
	require.Len(t, results, 1)
	require.Equal(t, latencies, results[0].Count, "mailtick sla counts the late events")

	// The late events are visible in the agent's own counters.
	require.Eventually(t, func() bool {
		n, err := d.DB.Count("telegraf", `SELECT max("late_events") FROM internal_mailrollups`)
		return err == nil && n >= late
	}, time.Minute, time.Second, "internal_mailrollups counts the late events")
}

// busy starts n processes that spin until the test ends: a busy machine,
// where timing that holds only on an idle one breaks.
func busy(t *testing.T, n int) {
	t.Helper()
	for i := 0; i < n; i++ {
		cmd := exec.Command("sh", "-c", "while :; do :; done")
		require.NoError(t, cmd.Start(), "starting a busy process")
		t.Cleanup(func() {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
		})
	}
}

// requireExact waits until the DC holds k raw events and the central
// counts add up to k, per direction and event as byKey says.
func requireExact(t *testing.T, d *testDC, k int64, byKey map[string]int64) {
	t.Helper()
	require.Eventually(t, func() bool {
		n, err := d.DB.Count("mail", `SELECT count("events") FROM mail_event`)
		return err == nil && n == k
	}, 120*time.Second, 250*time.Millisecond, "every raw event in the DC database")
	require.Eventually(t, func() bool {
		n, err := d.central.Count("mail_central", `SELECT sum("count") FROM mail_counts WHERE "window" = '1m'`)
		return err == nil && n == k
	}, 120*time.Second, 250*time.Millisecond, "central counts add up to every event")
	series, err := d.central.Query("mail_central", `SELECT sum("count") FROM mail_counts WHERE "window" = '1m' GROUP BY "direction", "event"`)
	require.NoError(t, err)
	got := map[string]int64{}
	for _, s := range series {
		n, err := s.Values[0][1].(json.Number).Int64()
		require.NoError(t, err)
		got[s.Tags["direction"]+" "+s.Tags["event"]] = n
	}
	require.Equal(t, byKey, got)
}

// requireDeliverability: the events' reasons and recipient providers
// reach central in the deliverability counts, exactly, and `mailtick
// deliverability` answers the rates computed here from the events: the
// reason as plugins/common/bounce classifies each reply (its own tests
// hold it to Sisimai's expectations), the provider from the recipient's
// domain as the generator chose it.
func requireDeliverability(t *testing.T, d *testDC, events []gen.Message) {
	t.Helper()
	providers := map[string]string{"gmail.com": "gmail", "outlook.com": "microsoft", "hotmail.com": "microsoft",
		"yahoo.com": "yahoo", "icloud.com": "icloud", "gmx.de": "gmx", "aol.com": "aol"}
	want := map[string]int64{}
	byProvider := map[string]map[string]int64{}
	for _, m := range events {
		e := m.Event
		p := providers[e.Recipient[strings.LastIndexByte(e.Recipient, '@')+1:]]
		if p == "" {
			p = "other"
		}
		reason := ""
		if e.Event != "delivered" && e.Event != "accepted" {
			reason = bounce.Classify(bounce.Input{Event: e.Event, Code: e.SMTPCode, Status: e.SMTPStatus, Text: e.SMTPResponse})
		}
		want[e.Event+" "+reason+" "+p]++
		if byProvider[p] == nil {
			byProvider[p] = map[string]int64{}
		}
		byProvider[p][e.Event]++
	}
	got := map[string]int64{}
	require.Eventually(t, func() bool {
		series, err := d.central.Query("mail_central", `SELECT sum("count") FROM mail_deliv WHERE "window" = '1m' GROUP BY "event", "reason", "rcpt_provider"`)
		if err != nil {
			return false
		}
		got = map[string]int64{}
		for _, s := range series {
			n, _ := s.Values[0][1].(json.Number).Int64()
			got[s.Tags["event"]+" "+s.Tags["reason"]+" "+s.Tags["rcpt_provider"]] = n
		}
		return maps.Equal(want, got)
	}, 120*time.Second, 250*time.Millisecond, "central deliverability counts by event, reason and provider")
	require.Greater(t, len(want), 20, "the events carry many reasons and providers: %v", want)

	src := deliv.Source{Querier: stack.Querier{URL: d.central.URL, Timeout: time.Minute}, Database: "mail_central"}
	// By provider alone it answers from mail_deliv_dc, which the same
	// task writes as points of their own: they reach central on their
	// own time.
	var results []deliv.Result
	require.Eventually(t, func() bool {
		var err error
		results, err = src.Answer([]report.Range{{Name: "all", From: events[0].Time.Add(-time.Minute), To: time.Now().Add(time.Minute)}},
			deliv.Filter{By: []string{"rcpt_provider"}})
		return err == nil && len(results) == len(byProvider)
	}, 120*time.Second, 250*time.Millisecond, "deliverability by provider from mail_deliv_dc: %v", results)
	for _, r := range results {
		e := byProvider[r.Group["rcpt_provider"]]
		require.Equal(t, e, r.Events, r.Group)
		sent := e["delivered"] + e["bounced"] + e["expired"]
		require.InDelta(t, float64(e["bounced"]+e["expired"])/float64(sent), r.Rates["bounce"], 1e-12, r.Group)
		require.InDelta(t, float64(e["deferred"])/float64(e["deferred"]+sent), r.Rates["deferral"], 1e-12, r.Group)
	}
}

// startDC starts a DC and a central InfluxDB, stopped when the test ends.
func startDC(t *testing.T) *testDC {
	t.Helper()
	sys, err := dc.StartSystem(t.TempDir(), 1, dc.Options{}, nil)
	require.NoError(t, err, "the DC must start for this test")
	d := sys.DCs[0]
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("agent log ends:\n%s", d.Agent.LogTail(40))
		}
		require.NoError(t, sys.Stop())
	})
	return &testDC{DC: d, central: sys.Central}
}
