package bench

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/mailtick/mailtick/internal/gen"
	"github.com/mailtick/mailtick/internal/grafana"
	"github.com/mailtick/mailtick/internal/latency"
	"github.com/mailtick/mailtick/internal/report"
	"github.com/mailtick/mailtick/internal/sla"
	"github.com/mailtick/mailtick/internal/testutil/stack"
)

// SLACostResult is what the latency rollups cost, before (percentiles from
// the raw events, tickscripts/mail_latency.tick) and now (histogram
// levels, each from the one below, tickscripts/mail_latency_hist.tick).
type SLACostResult struct {
	Days        int
	Rate        float64 // events per second, one DC
	RawPoints   int64
	Queries     []SLAQuery
	Levels      []SLALevel
	RawBytes    int64 // the raw events on disk (TSM + WAL)
	RollupBytes int64 // every histogram level on disk (TSM + WAL)
	Panels      []SLAPanel
}

// SLAPanel is one panel of the shipped SLA dashboard at one level, run as
// Grafana would over the whole time: the values it shows and the best of
// three wall times.
type SLAPanel struct {
	Panel, Level string
	Values       int
	Time         time.Duration
}

// SLAQuery is one task's query (or `mailtick sla`'s): the points it reads
// and the best of three wall times.
type SLAQuery struct {
	Name   string
	Reads  string
	Points int64
	Time   time.Duration
}

// SLALevel is one histogram level's points.
type SLALevel struct {
	Level     latency.Level
	Points    int64
	PerDay    float64
	SeriesMax int // distinct (direction, bucket) series of the DC
}

// SLACost writes days of generated traffic at rate events/s of one DC into
// a real InfluxDB, and its 1m, 1h, 1d, 1w and 1mo histogram levels as the
// UDF writes them (computed here with internal/latency, the UDF's own
// mapping); then it runs the old 1d task's query (percentiles of two days
// of raw events), the new 1d and 1mo tasks' queries (the level below) and
// `mailtick sla`'s query for the whole time, and measures the storage.
func SLACost(ctx context.Context, days int, rate float64, log io.Writer) (SLACostResult, error) {
	res := SLACostResult{Days: days, Rate: rate}
	dir, err := os.MkdirTemp("", "mailtick-bench-sla-")
	if err != nil {
		return res, err
	}
	defer os.RemoveAll(dir)
	db, err := stack.StartInfluxDB(dir, "mail", "mail_rollups")
	if err != nil {
		return res, err
	}
	defer db.Stop(30 * time.Second)

	now := time.Now().Truncate(time.Minute)
	start := now.Add(-time.Duration(days) * 24 * time.Hour)
	g, err := gen.New(gen.Config{Seed: 5, Start: start, Interval: time.Duration(float64(time.Second) / rate)})
	if err != nil {
		return res, err
	}
	fmt.Fprintf(log, "bench sla: writing %d days of events at %.0f/s\n", days, rate)
	type key struct {
		start     int64
		direction string
		bucket    string
	}
	levels := map[latency.Level]map[key]int64{}
	for _, l := range latency.Levels {
		levels[l] = map[key]int64{}
	}
	var lines strings.Builder
	for m := g.Next(); m.Time.Before(now); m = g.Next() {
		if ctx.Err() != nil {
			return res, ctx.Err()
		}
		res.RawPoints++
		lines.WriteString(m.Line("dc1"))
		tag := latency.Tag(m.Event.LatencyMs)
		for _, l := range latency.Levels {
			levels[l][key{l.Start(m.Time, time.UTC).UnixNano(), m.Event.Direction, tag}]++
		}
		if res.RawPoints%20000 == 0 {
			if err := db.Write("mail", lines.String()); err != nil {
				return res, err
			}
			lines.Reset()
		}
	}
	if err := db.Write("mail", lines.String()); err != nil {
		return res, err
	}
	for _, l := range latency.Levels {
		lines.Reset()
		series := map[string]bool{}
		n := 0
		for k, c := range levels[l] {
			fmt.Fprintf(&lines, "mail_latency_hist,bucket=%s,dc=dc1,direction=%s,tz=UTC,window=%s count=%di %d\n", k.bucket, k.direction, l, c, k.start)
			series[k.direction+k.bucket] = true
			if n++; n%20000 == 0 {
				if err := db.Write("mail_rollups", lines.String()); err != nil {
					return res, err
				}
				lines.Reset()
			}
		}
		if err := db.Write("mail_rollups", lines.String()); err != nil {
			return res, err
		}
		res.Levels = append(res.Levels, SLALevel{Level: l, Points: int64(len(levels[l])), PerDay: float64(len(levels[l])) / float64(days), SeriesMax: len(series)})
	}

	q := stack.Querier{URL: db.URL, Timeout: 10 * time.Minute}
	hist := `SELECT "count", "bucket" FROM "mail_rollups"."autogen"."mail_latency_hist" WHERE "window" = '%s' AND time >= %d AND time < %d GROUP BY "dc", "direction"`
	queries := []struct{ name, reads, db, q string }{
		{"before: mail_latency 1d task (period 2d)", "raw events", "mail",
			fmt.Sprintf(`SELECT percentile("latency_ms", 50) AS "p50", percentile("latency_ms", 90) AS "p90", percentile("latency_ms", 95) AS "p95", percentile("latency_ms", 99) AS "p99", max("latency_ms") AS "max", mean("latency_ms") AS "mean", count("latency_ms") AS "count" FROM "mail"."autogen"."mail_event" WHERE time >= %d AND time < %d GROUP BY time(1d), "dc", "direction"`,
				now.Add(-48*time.Hour).UnixNano(), now.UnixNano())},
		{"now: mail_latency_hist 1d task (period 3d)", "1h level", "mail_rollups", fmt.Sprintf(hist, "1h", now.Add(-72*time.Hour).UnixNano(), now.UnixNano())},
		{"now: mail_latency_hist 1mo task (period 63d)", "1d level", "mail_rollups", fmt.Sprintf(hist, "1d", now.Add(-63*24*time.Hour).UnixNano(), now.UnixNano())},
	}
	for _, x := range queries {
		var points int64
		best, err := bestOf3(func() error {
			series, err := q.Query(x.db, x.q)
			points = 0
			for _, s := range series {
				points += int64(len(s.Values))
			}
			return err
		})
		if err != nil {
			return res, err
		}
		if x.reads == "raw events" {
			points, err = db.Count("mail", fmt.Sprintf(`SELECT count("latency_ms") FROM mail_event WHERE time >= %d AND time < %d`, now.Add(-48*time.Hour).UnixNano(), now.UnixNano()))
			if err != nil {
				return res, err
			}
		}
		res.Queries = append(res.Queries, SLAQuery{x.name, x.reads, points, best})
	}
	src := sla.Source{Querier: q, Database: "mail_rollups", Location: time.UTC}
	best, err := bestOf3(func() error {
		_, err := src.Answer([]report.Range{{Name: "all", From: start, To: now}}, sla.Filter{By: []string{"dc"}}, []time.Duration{time.Minute})
		return err
	})
	if err != nil {
		return res, err
	}
	res.Queries = append(res.Queries, SLAQuery{fmt.Sprintf("mailtick sla --by dc, the %d days", days), "whole windows of every level", 0, best})

	if res.Panels, err = slaPanels(db, start, now); err != nil {
		return res, err
	}

	res.RawBytes = duBytes(filepath.Join(dir, "data", "mail"), filepath.Join(dir, "wal", "mail"))
	res.RollupBytes = duBytes(filepath.Join(dir, "data", "mail_rollups"), filepath.Join(dir, "wal", "mail_rollups"))
	return res, nil
}

// slaPanels runs the shipped SLA dashboard (grafana/) over [from, to]
// at every level, three times, against db as central: the shipped
// provisioning with central's database and bucket the bench's.
func slaPanels(db *stack.InfluxDB, from, to time.Time) ([]SLAPanel, error) {
	root, err := stack.Root()
	if err != nil {
		return nil, err
	}
	boards, sources, err := grafana.Local(filepath.Join(root, "grafana"), db.URL, map[string]string{"dc1": db.URL})
	if err != nil {
		return nil, err
	}
	board, ok := boards["mailtick-sla.json"]
	if !ok {
		return nil, fmt.Errorf("no mailtick-sla.json in %s", filepath.Join(root, "grafana", "dashboards"))
	}
	for i := range sources { // the bench's database is central's
		sources[i].Database, sources[i].Bucket = "mail_rollups", "mail_rollups/autogen"
	}
	runner := grafana.Runner{Sources: sources, From: from, To: to, Timeout: 10 * time.Minute}
	var out []SLAPanel
	for run := range 3 {
		results, err := runner.Run(board)
		if err != nil {
			return nil, err
		}
		for i, r := range results {
			if r.Err != nil {
				return nil, fmt.Errorf("SLA dashboard, %s at %s: %w", r.Panel, r.Vars["level"], r.Err)
			}
			if run == 0 {
				values := 0
				for _, frames := range r.Frames {
					for _, f := range frames {
						values += len(f.Points)
					}
				}
				out = append(out, SLAPanel{Panel: r.Panel, Level: r.Vars["level"], Values: values, Time: r.Took})
			}
			out[i].Time = min(out[i].Time, r.Took)
		}
	}
	return out, nil
}

// bestOf3 is the shortest of three runs of f.
func bestOf3(f func() error) (time.Duration, error) {
	best := time.Duration(1<<63 - 1)
	for range 3 {
		began := time.Now()
		if err := f(); err != nil {
			return 0, err
		}
		best = min(best, time.Since(began))
	}
	return best, nil
}

// duBytes is the size of the files under dirs.
func duBytes(dirs ...string) int64 {
	var n int64
	for _, d := range dirs {
		filepath.Walk(d, func(_ string, info os.FileInfo, err error) error {
			if err == nil && !info.IsDir() {
				n += info.Size()
			}
			return nil
		})
	}
	return n
}

// Print writes the figures with the settings beside them.
func (r SLACostResult) Print(w io.Writer) {
	fmt.Fprintf(w, "\nLatency rollups, before and now: one DC, %d days at %.0f events/s (%d raw events), InfluxDB 1.8.10, best of 3\n", r.Days, r.Rate, r.RawPoints)
	fmt.Fprintf(w, "  %-48s %-30s %12s %10s\n", "query", "reads", "points", "time")
	for _, q := range r.Queries {
		points := "-"
		if q.Points > 0 {
			points = fmt.Sprint(q.Points)
		}
		fmt.Fprintf(w, "  %-48s %-30s %12s %10s\n", q.Name, q.Reads, points, q.Time.Round(100*time.Microsecond))
	}
	sort.Slice(r.Levels, func(i, j int) bool { return r.Levels[i].Points > r.Levels[j].Points })
	fmt.Fprintf(w, "  storage per DC per day (central keeps every level):\n")
	var perDay float64
	for _, l := range r.Levels {
		fmt.Fprintf(w, "    %-4s %10.0f points/day  (%d direction x bucket series)\n", l.Level, l.PerDay, l.SeriesMax)
		perDay += l.PerDay
	}
	fmt.Fprintf(w, "    all  %10.0f points/day; raw events %.0f/day\n", perDay, float64(r.RawPoints)/float64(r.Days))
	fmt.Fprintf(w, "  on disk before compaction (TSM + WAL): histograms %.1f MB/day, raw events %.1f MB/day\n",
		float64(r.RollupBytes)/float64(r.Days)/1e6, float64(r.RawBytes)/float64(r.Days)/1e6)
	fmt.Fprintf(w, "  the shipped SLA dashboard (grafana/mailtick-sla.json) over the %d days, each panel as Grafana runs it (its queries one after another; values: the points it shows; the bench writes no mail_latency and no mail_stage_hist):\n", r.Days)
	fmt.Fprintf(w, "    %-62s %-5s %8s %10s\n", "panel", "level", "values", "time")
	for _, p := range r.Panels {
		fmt.Fprintf(w, "    %-62s %-5s %8d %10s\n", p.Panel, p.Level, p.Values, p.Time.Round(100*time.Microsecond))
	}
}
