package sla

import (
	"encoding/json"
	"fmt"
	"math"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mailtick/mailtick/internal/gen"
	"github.com/mailtick/mailtick/internal/influxq"
	"github.com/mailtick/mailtick/internal/kapacitor/tasks"
	"github.com/mailtick/mailtick/internal/latency"
	"github.com/mailtick/mailtick/internal/reconcile"
	"github.com/mailtick/mailtick/internal/report"
	"github.com/mailtick/mailtick/internal/testutil/stack"
	"github.com/mailtick/mailtick/internal/testutil/stacktest"
)

// event is what the exact answers are computed from.
type event struct {
	t         time.Time
	dc        string
	direction string
	latency   float64
}

// TestSLAIntegration: generated traffic of two DCs from the first day of
// last month (Europe/Berlin) until now, at least 35 days with a DST change
// in most years, written back-dated into a DC InfluxDB; the shipped
// tasks.toml's latency histogram tasks on a real Kapacitor (its "agent"
// cluster pointed at a central InfluxDB, tz and speed overridden) build
// 1m, 1h, 1d, 1w and 1mo levels there. Then the raw events are dropped,
// and every quantile that Answer gives for a day, an ISO week, the
// calendar month and an arbitrary 9-day range, per DC and in total, is
// within 1% of the exact nearest-rank quantile over the raw events of that
// range; so is `mailtick sla` itself.
func TestSLAIntegration(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test")
	}
	berlin, err := time.LoadLocation("Europe/Berlin")
	require.NoError(t, err)
	now := time.Now()
	thisMonth := latency.Month.Start(now, berlin)
	start := thisMonth.AddDate(0, -1, 0)
	if now.Sub(start) < 35*24*time.Hour {
		start = start.AddDate(0, -1, 0)
	}

	// An event every two minutes per DC, latencies as the generator draws them.
	dcDB := stacktest.InfluxDB(t, "mail", "mail_rollups")
	central := stacktest.InfluxDB(t, "mail_rollups")
	var events []event
	for i, dc := range []string{"dc1", "dc2"} {
		g, err := gen.New(gen.Config{Seed: uint64(40 + i), Start: start.Add(time.Duration(i) * 17 * time.Second), Interval: 127 * time.Second})
		require.NoError(t, err)
		var lines strings.Builder
		for n := 0; ; n++ {
			m := g.Next()
			if !m.Time.Before(now) {
				break
			}
			events = append(events, event{m.Time, dc, m.Event.Direction, m.Event.LatencyMs})
			lines.WriteString(m.Line(dc))
			if n%5000 == 4999 {
				require.NoError(t, dcDB.Write("mail", lines.String()))
				lines.Reset()
			}
		}
		require.NoError(t, dcDB.Write("mail", lines.String()))
	}
	t.Logf("%d events from %s to %s", len(events), start.Format(time.RFC3339), now.Format(time.RFC3339))

	// The shipped tasks.toml; overrides: addresses, log paths, tz, and
	// the schedule. The generated weeks are history, far past the tasks'
	// periods: rolled up by what an operator runs after restoring a DC
	// database, `mailtick rollups rebuild`, its central copy written where
	// the agent would send it.
	kapa := stacktest.Kapacitor(t, dcDB.URL, stack.Cluster{Name: "agent", URL: central.URL})
	root, err := stack.Root()
	require.NoError(t, err)
	overrides := []tasks.Override{
		{Var: "tz", Value: "Europe/Berlin"},
		{Task: "mail_volume_check", Var: "log_path", Value: filepath.Join(t.TempDir(), "volume.log")},
		{Task: "mail_spam", Var: "log_path", Value: filepath.Join(t.TempDir(), "spam.log")},
	}
	for _, l := range latency.Levels {
		overrides = append(overrides, tasks.Override{Task: "mail_latency_hist_" + string(l), Var: "every", Value: "10s"})
	}
	path := filepath.Join(root, "tasks.toml")
	_, kc, err := tasks.ApplyFile(path, false, tasks.Options{URL: kapa.URL, Overrides: overrides})
	require.NoError(t, err)
	f, want, err := tasks.Load(path, tasks.Options{URL: kapa.URL, Overrides: overrides})
	require.NoError(t, err)
	var toCentral []reconcile.Point
	r, err := reconcile.New(influxq.Querier{URL: dcDB.URL, Timeout: time.Minute}, reconcile.Options{RawDB: "mail", RollupDB: "mail_rollups",
		Loc: berlin, Emit: func(p reconcile.Point) { toCentral = append(toCentral, p) }})
	require.NoError(t, err)
	st, err := r.Rebuild(start, now)
	require.NoError(t, err)
	t.Logf("rebuild: %d windows checked, recomputed %v, %d queries, %d points read", st.WindowsChecked, st.Recomputed, st.Queries, st.PointsRead)
	require.NoError(t, reconcile.Write(influxq.Querier{URL: central.URL, Timeout: time.Minute}, "mail_rollups", toCentral))

	// Each level counts every event once, centrally.
	for _, l := range latency.Levels {
		sum := fmt.Sprintf(`SELECT sum("count") FROM mail_latency_hist WHERE "window" = '%s' AND "tz" = 'Europe/Berlin'`, l)
		if !assert.Eventually(t, func() bool {
			n, err := central.Count("mail_rollups", sum)
			return err == nil && n == int64(len(events))
		}, time.Minute, time.Second) {
			n, err := central.Count("mail_rollups", sum)
			list, lerr := tasks.List(kc, f, want)
			require.NoError(t, lerr)
			for _, db := range []*stack.InfluxDB{dcDB, central} {
				for _, q := range []string{`SELECT sum("count") FROM mail_latency_hist WHERE time > 0 GROUP BY "window", "dc", "direction"`, `SELECT count("count") FROM mail_latency_hist WHERE time > 0 GROUP BY "window"`} {
					series, qerr := db.Query("mail_rollups", q)
					t.Logf("%s: %v %+v", db.URL, qerr, series)
				}
			}
			t.Fatalf("central level %s counts %d of %d events (%v); tasks: %+v", l, n, len(events), err, list)
		}
	}
	for _, l := range latency.Levels {
		series, err := central.Query("mail_rollups", fmt.Sprintf(`SELECT count("count") FROM mail_latency_hist WHERE "window" = '%s'`, l))
		require.NoError(t, err)
		t.Logf("level %-3s: %v points", l, series[0].Values[0][1])
	}
	// The raw events are gone; what follows reads central only.
	_, err = dcDB.Query("mail", `DROP MEASUREMENT "mail_event"`)
	require.NoError(t, err)

	day := lastSunday(start, berlin) // a DST change day in March and October
	week := latency.Week.Next(latency.Week.Start(start, berlin), berlin)
	nine := start.Add(10*24*time.Hour + 13*time.Hour + 37*time.Minute)
	ranges := []report.Range{
		{Name: "day", From: day, To: day.AddDate(0, 0, 1)},
		{Name: "week", From: week, To: week.AddDate(0, 0, 7)},
		{Name: "month", From: start, To: start.AddDate(0, 1, 0)},
		{Name: "9 days", From: nine, To: nine.Add(9 * 24 * time.Hour)},
	}
	src := Source{Querier: stack.Querier{URL: central.URL, Timeout: time.Minute}, Database: "mail_rollups", Location: berlin}
	for _, by := range [][]string{{"dc"}, nil} {
		results, err := src.Answer(ranges, Filter{By: by}, []time.Duration{time.Second, 10 * time.Second})
		require.NoError(t, err)
		for _, r := range results {
			exact := exactLatencies(events, r.From, r.To, r.Group["dc"])
			requireWithin1Percent(t, r, exact)
		}
	}

	// The command: the month's p99 per DC, as JSON.
	bin, err := stack.Binary("mailtick")
	require.NoError(t, err)
	began := time.Now()
	out, err := exec.Command(bin, "sla", "--url", central.URL, "--db", "mail_rollups", "--tz", "Europe/Berlin",
		"--by", "dc", "--format", "json", start.Format("2006-01")).Output()
	took := time.Since(began)
	require.NoError(t, err)
	var results []Result
	require.NoError(t, json.Unmarshal(out, &results))
	require.Len(t, results, 2)
	for _, r := range results {
		exact := exactLatencies(events, r.From, r.To, r.Group["dc"])
		require.Equal(t, int64(len(exact)), r.Count)
		want := exact[latency.NearestRank(0.99, int64(len(exact)))-1]
		require.InDelta(t, want, r.Quantiles["p99"], want*latency.RelativeError*(1+1e-9), r.Group["dc"])
		t.Logf("%s %s: p99 %.1f ms (exact %.1f, error %+.3f%%), %d events; mailtick sla took %v",
			r.Range, r.Group["dc"], r.Quantiles["p99"], want, 100*(r.Quantiles["p99"]-want)/want, r.Count, took)
	}
}

// requireWithin1Percent checks r against the sorted exact latencies.
func requireWithin1Percent(t *testing.T, r Result, exact []float64) {
	t.Helper()
	require.Equal(t, int64(len(exact)), r.Count, "%s %v: count", r.Range, r.Group)
	require.NotZero(t, r.Count, "%s %v: the range has events", r.Range, r.Group)
	var worst float64
	for _, q := range Quantiles {
		want := exact[latency.NearestRank(q, int64(len(exact)))-1]
		got := r.Quantiles[QuantileName(q)]
		rel := math.Abs(got-want) / want
		require.LessOrEqual(t, rel, latency.RelativeError*(1+1e-9), "%s %v %s: got %v, exact %v", r.Range, r.Group, QuantileName(q), got, want)
		worst = math.Max(worst, rel)
	}
	t.Logf("%-6s %-4s %6d events: p50 %8.1f p99 %8.1f p99.9 %8.1f ms, worst error %.3f%%", r.Range, r.Group["dc"], r.Count,
		r.Quantiles["p50"], r.Quantiles["p99"], r.Quantiles["p99.9"], 100*worst)
}

// exactLatencies are the sorted latencies of [from, to), of dc ("": all).
func exactLatencies(events []event, from, to time.Time, dc string) []float64 {
	var out []float64
	for _, e := range events {
		if !e.t.Before(from) && e.t.Before(to) && (dc == "" || e.dc == dc) {
			out = append(out, e.latency)
		}
	}
	sort.Float64s(out)
	return out
}

// lastSunday is the last Sunday of the month that starts at m.
func lastSunday(m time.Time, loc *time.Location) time.Time {
	d := m.AddDate(0, 1, -1)
	for d.Weekday() != time.Sunday {
		d = d.AddDate(0, 0, -1)
	}
	return time.Date(d.Year(), d.Month(), d.Day(), 0, 0, 0, 0, loc)
}
