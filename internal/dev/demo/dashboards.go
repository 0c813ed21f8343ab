package demo

import (
	"fmt"
	"io"
	"maps"
	"math"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/grafana/grafana-foundation-sdk/go/dashboard"

	"github.com/mailtick/mailtick/internal/deliv"
	"github.com/mailtick/mailtick/internal/dev/dc"
	"github.com/mailtick/mailtick/internal/grafana"
	"github.com/mailtick/mailtick/internal/latency"
	"github.com/mailtick/mailtick/internal/report"
	"github.com/mailtick/mailtick/internal/sla"
	"github.com/mailtick/mailtick/internal/testutil/stack"
)

// checkDashboards runs every panel of the shipped Grafana dashboards
// (grafana/dashboards) against this demo's databases, as Grafana would
// with the shipped provisioning (grafana/provisioning) pointed at them,
// at every rollup level the dashboards offer: each panel must show data.
// Then, for the DCs whose traffic has ended (stored: their events), the
// panels must show what `mailtick sla` and `mailtick deliverability`
// answer and the events stored.
func checkDashboards(w io.Writer, central *stack.InfluxDB, dcs []*dc.DC, stored map[string]int64) error {
	root, err := stack.Root()
	if err != nil {
		return err
	}
	dbs := map[string]string{}
	for _, d := range dcs {
		dbs[d.Name] = d.DB.URL
	}
	boards, sources, err := grafana.Local(filepath.Join(root, "grafana"), central.URL, dbs)
	if err != nil {
		return err
	}
	now := time.Now().UTC()
	// From the start of the week or month, whichever is first: every
	// level's window of the demo's traffic starts in the range.
	from := latency.Week.Start(now, time.UTC)
	if m := latency.Month.Start(now, time.UTC); m.Before(from) {
		from = m
	}
	runner := grafana.Runner{Sources: sources, From: from, To: now.Add(time.Minute), Timeout: time.Minute}
	// A DC's dashboard (its data source a variable) over the last 15
	// minutes, as one looks at an agent's health: its counters per second
	// need two points per series, and the demo's agents ran minutes.
	recent := runner
	recent.From = now.Add(-15 * time.Minute)

	// Every panel at every level must show data; on the DC dashboard, in
	// one DC at least (a DC without an MTA log has no security signals).
	runs, queries, panels := 0, 0, 0
	shown, why := map[string]bool{}, map[string]string{}
	for _, name := range slices.Sorted(maps.Keys(boards)) {
		r := runner
		vars, err := grafana.Variables(boards[name])
		if err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		if slices.ContainsFunc(vars, func(v grafana.Variable) bool { return v.Kind == "datasource" }) {
			r = recent
		}
		results, err := r.Run(boards[name])
		if err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		ps := map[string]bool{}
		for _, res := range results {
			if res.Err != nil {
				return fmt.Errorf("%s, panel %q %v: %w", name, res.Panel, res.Vars, res.Err)
			}
			key := fmt.Sprintf("%s: %q at level %q", name, res.Panel, res.Vars["level"])
			e := res.Empty()
			shown[key] = shown[key] || len(e) == 0
			if len(e) > 0 {
				why[key] = fmt.Sprintf("%v: no data from %v: %s", res.Vars, e, res.Queries[e[0]])
			}
			runs++
			queries += len(res.Queries)
			ps[res.Panel] = true
		}
		panels += len(ps)
	}
	var empty []string
	for _, key := range slices.Sorted(maps.Keys(shown)) {
		if !shown[key] {
			empty = append(empty, key+" "+why[key])
		}
	}
	if len(empty) > 0 {
		return fmt.Errorf("Grafana panels without data:\n  %s", strings.Join(empty, "\n  "))
	}

	// The values, where the traffic has ended.
	var done []string
	var events int64
	for _, d := range dcs {
		if d.Postfix == nil {
			done = append(done, d.Name)
			events += stored[d.Name]
		}
	}
	runner.Only = map[string][]string{"dc": done}
	deadline := time.Now().Add(time.Minute) // the upper levels are rolled up every 2s
	var checked int
	for {
		checked, err = checkValues(runner, boards, central, done, events, stored)
		if err == nil || time.Now().After(deadline) {
			break
		}
		time.Sleep(2 * time.Second)
	}
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "\nGrafana dashboards (grafana/, provisioned as grafana/provisioning says): %d dashboards, %d panels, every one with data at every rollup level (the DC dashboard: in a DC at least, over the last 15 minutes; %d panel runs, %d queries); %d values shown for %s equal to mailtick sla's, mailtick deliverability's and the events stored\n",
		len(boards), panels, runs, queries, checked, strings.Join(done, ", "))
	return nil
}

// checkValues compares what the SLA, traffic and deliverability panels
// show for dcs with the CLI's answers and the events stored; it returns
// how many values it compared.
func checkValues(runner grafana.Runner, boards map[string]dashboard.Dashboard, central *stack.InfluxDB, dcs []string, events int64, stored map[string]int64) (int, error) {
	rg := report.Range{Name: "dashboards", From: runner.From, To: runner.To}
	q := stack.Querier{URL: central.URL, Timeout: time.Minute}
	slaAnswer, err := sla.Source{Querier: q, Database: "mail_central", Location: time.UTC}.Answer(
		[]report.Range{rg}, sla.Filter{DCs: dcs, By: []string{"dc", "direction"}}, grafana.SLAThresholds)
	if err != nil {
		return 0, err
	}
	delivAnswer, err := deliv.Source{Querier: q, Database: "mail_central"}.Answer(
		[]report.Range{rg}, deliv.Filter{Only: map[string][]string{"dc": dcs}, By: []string{"rcpt_provider"}})
	if err != nil {
		return 0, err
	}
	want := map[string]float64{} // panel|level|labels|name -> value
	for _, r := range slaAnswer {
		labels := "dc=" + r.Group["dc"] + ",direction=" + r.Group["direction"] + ","
		for _, level := range []string{"1m", "1h", "1d", "1w", "1mo"} {
			want["Latency quantiles over the range (ms)|"+level+"|"+labels+"|count"] = float64(r.Count)
			for name, v := range r.Quantiles {
				want["Latency quantiles over the range (ms)|"+level+"|"+labels+"|"+name] = v
			}
			for _, d := range grafana.SLAThresholds {
				want[fmt.Sprintf("Share of messages within the SLA thresholds over the range|%s|%s|within %s", level, labels, grafana.ShortDuration(d))] = 100 * r.Within[d.String()]
			}
		}
	}
	for _, level := range []string{"1m", "1h", "1d"} {
		want["Events over the range|"+level+"||sum"] = float64(events)
		for _, d := range dcs {
			want["Events by dc|"+level+"|dc="+d+",|sum"] = float64(stored[d])
		}
		for _, r := range delivAnswer {
			if v, ok := r.Rates["bounce"]; ok {
				want["Bounce rate by mailbox provider over the range|"+level+"|rcpt_provider="+r.Group["rcpt_provider"]+",|bounce rate"] = 100 * v
			}
		}
	}
	got := map[string]float64{}
	for _, name := range []string{"mailtick-sla.json", "mailtick-traffic.json", "mailtick-deliverability.json"} { // the boards of want
		results, err := runner.Run(boards[name])
		if err != nil {
			return 0, err
		}
		for _, r := range results {
			if r.Err != nil {
				return 0, r.Err
			}
			for id, frames := range r.Frames {
				for _, f := range frames {
					var sum float64
					for _, v := range f.Points {
						sum += v
					}
					n := f.Name
					if strings.HasPrefix(f.Name, "$") { // an expression: its refId names it
						n = id
					}
					got[r.Panel+"|"+r.Vars["level"]+"|"+f.LabelKey()+"|"+n] = sum
				}
			}
		}
	}
	var diffs []string
	for k, v := range want {
		g, ok := got[k]
		if !ok || math.Abs(g-v) > 1e-9*math.Max(1, math.Abs(v)) {
			diffs = append(diffs, fmt.Sprintf("%s: the panel shows %v (found: %v), want %v", k, g, ok, v))
		}
	}
	sort.Strings(diffs)
	if len(diffs) > 0 {
		return 0, fmt.Errorf("Grafana panels differ from the CLI's answers:\n  %s", strings.Join(diffs, "\n  "))
	}
	return len(want), nil
}
