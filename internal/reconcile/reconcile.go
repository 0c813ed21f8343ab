// Package reconcile keeps a DC's rollups equal to its raw events, however
// late the events reached the DC database: an agent that was down while
// NSQ held its backlog, a DC InfluxDB restart, Kapacitor stopped for longer
// than its tasks' period, inputs.maillog catching up on a log.
//
// Kapacitor's tasks recompute only their last `period`; what lands later,
// or while Kapacitor is down, they never see. The reconciler looks at each
// window again at fixed ages after its end (Options.Ages: 10m, 20m, 40m...
// up to the raw retention) and compares, per window and dc, two numbers it
// reads as aggregates, never as points: the raw events InfluxDB holds and
// the count the window's rollup holds. Only windows that differ are
// recomputed, from the raw events (the minute) or from the level below
// (hours, days, weeks, months), and written where Kapacitor writes them:
// the DC's rollup database (which the next level reads) and, through Emit,
// the agent's central path. A repaired window makes its parents differ
// from it, so they are repaired in the same cycle: the levels cascade.
//
// The cost does not depend on how late data may be: each raw event is
// counted once per age (a count over a minute, done by InfluxDB), and only
// windows that changed are read in full. An event late by x is rolled up
// at the first age past x. docs/DESIGN.md explains the choice.
package reconcile

import (
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/influxdata/line-protocol/v2/lineprotocol"

	"github.com/mailtick/mailtick/internal/influxq"
	"github.com/mailtick/mailtick/internal/latency"
)

// DB is the DC InfluxDB: the raw events and the local rollups.
type DB interface {
	Query(db, q string) ([]influxq.Series, error)
	Write(db string, lines []byte) error
}

// Point is a rollup point for the central path.
type Point struct {
	Name   string
	Tags   map[string]string
	Fields map[string]any
	Time   time.Time
}

// Options are what the reconciler must agree on with tasks.toml.
type Options struct {
	RawDB    string         // the raw events' database ("mail"), RP autogen
	RollupDB string         // the local rollups' database ("mail_rollups")
	Loc      *time.Location // the histograms' calendar (tasks.toml's tz)
	GroupBy  []string       // the histograms' tags (tasks.toml's group_by)
	// Ages after a window's end at which it is compared, ascending. The
	// first must exceed the Kapacitor tasks' period (they own younger
	// windows); the last should reach the raw retention.
	Ages []time.Duration
	Emit func(Point) // the central copy of every point written
}

// DefaultAges: twice as far each time, from 10 minutes (the tasks' period,
// 5m, and a margin) to 13 days (the raw retention is 14).
var DefaultAges = []time.Duration{10 * time.Minute, 20 * time.Minute, 40 * time.Minute,
	80 * time.Minute, 160 * time.Minute, 320 * time.Minute, 640 * time.Minute,
	21 * time.Hour, 42 * time.Hour, 84 * time.Hour, 168 * time.Hour, 312 * time.Hour}

// Stats are what one cycle did.
type Stats struct {
	Queries        int64            // InfluxQL queries sent
	PointsRead     int64            // raw points counted by InfluxDB, plus rows returned
	WindowsChecked int64            // windows compared, every level
	LateEvents     int64            // raw events a rollup did not count
	Recomputed     map[string]int64 // windows recomputed, by "rollup level": "mail_counts 1m"
}

// Reconciler compares and repairs. It is not safe for concurrent use.
type Reconciler struct {
	db    DB
	opt   Options
	stats Stats
}

// New checks the options.
func New(db DB, opt Options) (*Reconciler, error) {
	if opt.Loc == nil {
		opt.Loc = time.UTC
	}
	if len(opt.Ages) == 0 {
		opt.Ages = DefaultAges
	}
	if !slices.IsSorted(opt.Ages) || opt.Ages[0] <= 0 {
		return nil, fmt.Errorf("invalid check ages %v: want positive durations, ascending", opt.Ages)
	}
	if opt.RawDB == "" || opt.RollupDB == "" {
		return nil, fmt.Errorf("the raw and the rollup databases must be named")
	}
	if len(opt.GroupBy) == 0 {
		opt.GroupBy = []string{"dc", "direction"}
	}
	if opt.Emit == nil {
		opt.Emit = func(Point) {}
	}
	return &Reconciler{db: db, opt: opt}, nil
}

// countRollups are the rollups that count events, each with the tags it
// groups by (its TICKscript's groupBy): mail_counts (tickscripts/
// mail_counts.tick) and mail_deliv (tickscripts/mail_deliv.tick, by why
// mail did not arrive and where it went; mail_deliv_dc the same without
// customer and sender domain).
var countRollups = []struct {
	name string
	by   []string
}{
	{"mail_counts", []string{"dc", "direction", "event", "customer"}},
	{"mail_deliv", []string{"dc", "direction", "customer", "sender_domain", "event", "reason", "rcpt_provider"}},
	{"mail_deliv_dc", []string{"dc", "direction", "event", "reason", "rcpt_provider"}},
}

// histRollups are the histograms (tickscripts/mail_latency_hist.tick),
// each with the raw fields it counts: mail_latency_hist the latencies,
// mail_stage_hist Postfix's delays by stage (tag stage), as tasks.toml's
// mail_stage_hist_1m gives the UDF in its var stages.
var histRollups = []struct {
	name   string
	stages []stage
}{
	{"mail_latency_hist", []stage{{"", "latency_ms"}}},
	{"mail_stage_hist", []stage{
		{"before_qmgr", "delay_before_qmgr_ms"}, {"in_qmgr", "delay_in_qmgr_ms"},
		{"conn_setup", "delay_conn_setup_ms"}, {"transmission", "delay_transmission_ms"},
	}},
}

// stage is a histogram's raw field and its stage tag ("": untagged).
type stage struct{ name, field string }

// histFields are the raw fields of every histogram, in histRollups' order.
func histFields() []string {
	var fs []string
	for _, h := range histRollups {
		for _, st := range h.stages {
			fs = append(fs, st.field)
		}
	}
	return fs
}

// The rollups above the minute, each from the level below.
type level struct {
	name    string // measurement
	level   latency.Level
	loc     *time.Location
	integer bool // count is an integer field (the UDF's), else a float (Kapacitor's batch)
	tz      bool // tagged tz (the histograms)
}

func (r *Reconciler) levels() []level {
	var ls []level
	for _, c := range countRollups {
		ls = append(ls, level{name: c.name, level: latency.Hour, loc: time.UTC}, level{name: c.name, level: latency.Day, loc: time.UTC})
	}
	for _, h := range histRollups {
		for _, l := range []latency.Level{latency.Hour, latency.Day, latency.Week, latency.Month} {
			ls = append(ls, level{name: h.name, level: l, loc: r.opt.Loc, integer: true, tz: true})
		}
	}
	return ls
}

// Cycle compares every window whose end passed one of the ages between
// last and now, repairs those that differ and their parents, and returns
// what it did. On an error the caller keeps last and retries: the next
// cycle covers what this one did not.
func (r *Reconciler) Cycle(last, now time.Time) (Stats, error) {
	r.stats = Stats{}
	oldest := now.Add(-r.opt.Ages[len(r.opt.Ages)-1] - time.Minute)
	if last.Before(oldest) {
		last = oldest
	}
	minutes := map[time.Time]bool{}
	for _, age := range r.opt.Ages {
		for m := last.Add(-age).Truncate(time.Minute); m.Before(now.Add(-age).Truncate(time.Minute)); m = m.Add(time.Minute) {
			minutes[m] = true
		}
	}
	repaired, err := r.checkMinutes(sortedTimes(minutes), false)
	if err != nil {
		return r.stats, err
	}
	settled := now.Add(-r.opt.Ages[0])
	done := map[string]map[int64]bool{"1m": set(repaired)}
	err = r.checkLevels(repaired, func(l level) []time.Time {
		var ws []time.Time
		for _, age := range r.opt.Ages {
			ws = append(ws, endsWithin(l, last.Add(-age), now.Add(-age))...)
		}
		return ws
	}, settled, false, done)
	if err != nil {
		return r.stats, err
	}
	return r.stats, r.resend(last.Add(-r.opt.Ages[0]), settled, done)
}

func set(ts []time.Time) map[int64]bool {
	out := map[int64]bool{}
	for _, t := range ts {
		out[t.UnixNano()] = true
	}
	return out
}

// resend sends central, once, every window whose end passed the first
// age between last and now (from, to) and that was not recomputed (done,
// by level: those were sent): the central path may have lost its points
// (Telegraf's buffer overflowing while central was down and the spool's
// disk full, a spool segment lost), and Kapacitor writes a window for the
// last time before the first age. The counts and histograms are read from
// the DC's rollups, the percentiles computed again from the raw minute.
func (r *Reconciler) resend(from, to time.Time, done map[string]map[int64]bool) error {
	if from.IsZero() || !from.Before(to) {
		return nil
	}
	lo, hi := from.Truncate(time.Minute), to.Truncate(time.Minute)
	if lo.Before(hi) {
		for _, c := range countRollups {
			if err := r.resendLocal(c.name, "1m", false, false, lo, hi, done["1m"]); err != nil {
				return err
			}
		}
		for _, h := range histRollups {
			if err := r.resendLocal(h.name, "1m", true, true, lo, hi, done["1m"]); err != nil {
				return err
			}
		}
		lat, err := r.query(r.opt.RawDB, latencyQuery(r.opt.RawDB, r.between(lo, hi)))
		if err != nil {
			return err
		}
		for _, p := range batchPoints("mail_latency", lat) {
			if !done["1m"][p.Time.UnixNano()] {
				r.opt.Emit(p)
			}
		}
	}
	for _, l := range r.levels() {
		ws := endsWithin(l, from, to)
		if len(ws) == 0 {
			continue
		}
		end := l.level.Next(ws[len(ws)-1], l.loc)
		if err := r.resendLocal(l.name, string(l.level), l.tz, l.integer, ws[0], end, done[l.name+" "+string(l.level)]); err != nil {
			return err
		}
	}
	return nil
}

// resendLocal emits the points of one rollup level in [from, to) as the
// DC database holds them, but those of the windows in skip.
func (r *Reconciler) resendLocal(name, window string, tz, integer bool, from, to time.Time, skip map[int64]bool) error {
	q := `SELECT "count" FROM "` + r.opt.RollupDB + `"."autogen"."` + name + `" WHERE "window" = '` + window + `'`
	if tz {
		q += ` AND "tz" = '` + r.opt.Loc.String() + `'`
	}
	series, err := r.query(r.opt.RollupDB, q+` AND `+r.between(from, to)+` GROUP BY *`)
	if err != nil {
		return err
	}
	for _, s := range series {
		tags := map[string]string{}
		for k, v := range s.Tags {
			if v != "" {
				tags[k] = v
			}
		}
		for _, row := range s.Values {
			t, _ := number(row[0])
			n, ok := number(row[1])
			if !ok || skip[int64(t)] {
				continue
			}
			var v any = n
			if integer {
				v = int64(n)
			}
			r.opt.Emit(Point{Name: name, Tags: tags, Fields: map[string]any{"count": v}, Time: time.Unix(0, int64(t)).UTC()})
		}
	}
	return nil
}

// latencyQuery is mail_latency.tick's query over where, by minute.
func latencyQuery(rawDB, where string) string {
	return `SELECT percentile("latency_ms", 50) AS "p50", percentile("latency_ms", 90) AS "p90", percentile("latency_ms", 95) AS "p95", percentile("latency_ms", 99) AS "p99", max("latency_ms") AS "max", mean("latency_ms") AS "mean", count("latency_ms") AS "count" FROM "` + rawDB + `"."autogen"."mail_event" WHERE ` + where + ` GROUP BY time(1m), "dc", "direction" fill(none)`
}

// Rebuild recomputes every window of every level that holds a moment of
// [from, to), whatever the rollups hold: what an operator runs after
// restoring a DC database from a backup.
func (r *Reconciler) Rebuild(from, to time.Time) (Stats, error) {
	r.stats = Stats{}
	var minutes []time.Time
	for m := from.Truncate(time.Minute); m.Before(to); m = m.Add(time.Minute) {
		minutes = append(minutes, m)
	}
	repaired, err := r.checkMinutes(minutes, true)
	if err != nil {
		return r.stats, err
	}
	err = r.checkLevels(repaired, func(l level) []time.Time {
		var ws []time.Time
		for s := l.level.Start(from, l.loc); s.Before(to); s = l.level.Next(s, l.loc) {
			ws = append(ws, s)
		}
		return ws
	}, to, true, map[string]map[int64]bool{})
	return r.stats, err
}

// endsWithin are the starts of l's windows whose end is in (from, to].
func endsWithin(l level, from, to time.Time) []time.Time {
	var ws []time.Time
	for s := l.level.Start(from, l.loc); ; s = l.level.Next(s, l.loc) {
		end := l.level.Next(s, l.loc)
		if end.After(to) {
			return ws
		}
		if end.After(from) {
			ws = append(ws, s)
		}
	}
}

func sortedTimes(set map[time.Time]bool) []time.Time {
	ts := make([]time.Time, 0, len(set))
	for t := range set {
		ts = append(ts, t)
	}
	slices.SortFunc(ts, func(a, b time.Time) int { return a.Compare(b) })
	return ts
}

// runs splits sorted window starts into runs of consecutive windows of l,
// at most limit windows each: [from, to) ranges to query.
func runs(starts []time.Time, next func(time.Time) time.Time, limit int) [][2]time.Time {
	var out [][2]time.Time
	for i := 0; i < len(starts); {
		j, end := i, next(starts[i])
		for j+1 < len(starts) && starts[j+1].Equal(end) && j+1-i < limit {
			j++
			end = next(starts[j])
		}
		out = append(out, [2]time.Time{starts[i], end})
		i = j + 1
	}
	return out
}

func nextMinute(t time.Time) time.Time { return t.Add(time.Minute) }

// dcKey is a window and the dc it counts.
type dcKey struct {
	start int64
	dc    string
}

// recomputeBudget bounds the raw values one recompute query returns (the
// latencies of its minutes, for the histograms): runs of dirty minutes are
// cut there, and at a day.
const recomputeBudget = 200_000

// checkMinutes compares the minutes (sorted starts) with the raw events
// and recomputes those that differ, or, with force, all that hold raw
// events; it returns the minutes recomputed.
func (r *Reconciler) checkMinutes(minutes []time.Time, force bool) ([]time.Time, error) {
	var dirty []time.Time
	weight := map[int64]int64{}
	for _, run := range runs(minutes, nextMinute, 1440) {
		r.stats.WindowsChecked += int64(run[1].Sub(run[0]) / time.Minute)
		where := r.between(run[0], run[1])
		counts := []string{`count("events")`}
		for _, f := range histFields() {
			counts = append(counts, `count(`+strconv.Quote(f)+`)`)
		}
		raw, err := r.query(r.opt.RawDB, `SELECT `+strings.Join(counts, ", ")+` FROM "`+r.opt.RawDB+`"."autogen"."mail_event" WHERE `+where+` GROUP BY time(1m), "dc" fill(none)`)
		if err != nil {
			return nil, err
		}
		// What each histogram must hold: its fields' counts.
		rawEvents, rawHist, col := sums(raw, 1), make([]map[dcKey]int64, len(histRollups)), 2
		for i, h := range histRollups {
			rawHist[i] = map[dcKey]int64{}
			for range h.stages {
				for k, n := range sums(raw, col) {
					rawHist[i][k] += n
				}
				col++
			}
		}
		bad := map[int64]bool{}
		for k, n := range rawEvents {
			for _, h := range rawHist {
				n += h[k]
			}
			r.stats.PointsRead += n
			weight[k.start] += n
			if force {
				bad[k.start] = true
			}
		}
		if !force {
			for i, c := range countRollups {
				counts, err := r.query(r.opt.RollupDB, `SELECT sum("count") FROM "`+r.opt.RollupDB+`"."autogen"."`+c.name+`" WHERE "window" = '1m' AND `+where+` GROUP BY time(1m), "dc" fill(none)`)
				if err != nil {
					return nil, err
				}
				counted := sums(counts, 1)
				for k, n := range rawEvents {
					if counted[k] != n {
						bad[k.start] = true
						if i == 0 { // late events: what the first count lacks
							r.stats.LateEvents += max(0, n-counted[k])
						}
					}
				}
				for k := range counted {
					if _, ok := rawEvents[k]; !ok {
						bad[k.start] = true // counts of events no longer raw, or never
					}
				}
			}
			for i, h := range histRollups {
				hist, err := r.query(r.opt.RollupDB, `SELECT sum("count") FROM "`+r.opt.RollupDB+`"."autogen"."`+h.name+`" WHERE "window" = '1m' AND "tz" = '`+r.opt.Loc.String()+`' AND `+where+` GROUP BY time(1m), "dc" fill(none)`)
				if err != nil {
					return nil, err
				}
				histed := sums(hist, 1)
				for k, n := range rawHist[i] {
					if histed[k] != n {
						bad[k.start] = true
					}
				}
				for k, n := range histed {
					if n != rawHist[i][k] {
						bad[k.start] = true
					}
				}
			}
		}
		for s := range bad {
			dirty = append(dirty, time.Unix(0, s).UTC())
		}
	}
	slices.SortFunc(dirty, func(a, b time.Time) int { return a.Compare(b) })
	// Runs of dirty minutes, gaps and all (a clean minute in a gap is
	// written again as it is), within the budget.
	for i := 0; i < len(dirty); {
		j, sum := i, weight[dirty[i].UnixNano()]
		for j+1 < len(dirty) && dirty[j+1].Sub(dirty[i]) < 24*time.Hour && sum+weight[dirty[j+1].UnixNano()] <= recomputeBudget {
			j++
			sum += weight[dirty[j].UnixNano()]
		}
		if err := r.recomputeMinutes(dirty[i], dirty[j].Add(time.Minute)); err != nil {
			return nil, err
		}
		i = j + 1
	}
	n := int64(len(dirty))
	for _, c := range countRollups {
		r.recomputed(c.name, latency.Minute, n)
	}
	r.recomputed("mail_latency", latency.Minute, n)
	for _, h := range histRollups {
		r.recomputed(h.name, latency.Minute, n)
	}
	return dirty, nil
}

func (r *Reconciler) recomputed(name string, l latency.Level, n int64) {
	if n == 0 {
		return
	}
	if r.stats.Recomputed == nil {
		r.stats.Recomputed = map[string]int64{}
	}
	r.stats.Recomputed[name+" "+string(l)] += n
}

func (r *Reconciler) between(from, to time.Time) string {
	return fmt.Sprintf("time >= %d AND time < %d", from.UnixNano(), to.UnixNano())
}

func (r *Reconciler) query(db, q string) ([]influxq.Series, error) {
	r.stats.Queries++
	s, err := r.db.Query(db, q)
	if err != nil && strings.Contains(err.Error(), "database not found") {
		return nil, nil // nothing written there yet
	}
	for _, x := range s {
		r.stats.PointsRead += int64(len(x.Values))
	}
	return s, err
}

// sums adds up column col of series grouped by time and dc, per window and dc.
func sums(series []influxq.Series, col int) map[dcKey]int64 {
	out := map[dcKey]int64{}
	for _, s := range series {
		for _, row := range s.Values {
			if col >= len(row) || row[col] == nil {
				continue
			}
			t, _ := number(row[0])
			n, _ := number(row[col])
			out[dcKey{int64(t), s.Tags["dc"]}] += int64(n)
		}
	}
	return out
}

func number(v any) (float64, bool) {
	switch x := v.(type) {
	case json.Number:
		if i, err := x.Int64(); err == nil {
			return float64(i), true
		}
		f, err := x.Float64()
		return f, err == nil
	case float64:
		return x, true
	}
	return 0, false
}

// recomputeMinutes writes the 1m rollups of [from, to) from the raw
// events, as the Kapacitor tasks compute them: the countRollups and
// mail_latency with InfluxQL (their fields floats, as Kapacitor's batch
// nodes write every number), mail_latency_hist bucketed here as the UDF
// buckets (integer counts).
func (r *Reconciler) recomputeMinutes(from, to time.Time) error {
	raw := `"` + r.opt.RawDB + `"."autogen"."mail_event"`
	where := r.between(from, to)
	var local []Point
	for _, c := range countRollups {
		counts, err := r.query(r.opt.RawDB, `SELECT count("events") AS "count" FROM `+raw+` WHERE `+where+` GROUP BY time(1m), `+quoteAll(c.by)+` fill(none)`)
		if err != nil {
			return err
		}
		for _, p := range batchPoints(c.name, counts) {
			local = append(local, p)
			r.opt.Emit(p)
		}
	}
	lat, err := r.query(r.opt.RawDB, latencyQuery(r.opt.RawDB, where))
	if err != nil {
		return err
	}
	for _, p := range batchPoints("mail_latency", lat) {
		r.opt.Emit(p)
	}
	values, err := r.query(r.opt.RawDB, `SELECT `+quoteAll(histFields())+` FROM `+raw+` WHERE `+where+` GROUP BY `+quoteAll(r.opt.GroupBy))
	if err != nil {
		return err
	}
	hists := make([]map[histKey]int64, len(histRollups))
	for i := range hists {
		hists[i] = map[histKey]int64{}
	}
	for _, s := range values {
		for _, row := range s.Values {
			t, _ := number(row[0])
			start := time.Unix(0, int64(t)).Truncate(time.Minute).UnixNano()
			col := 1
			for i, h := range histRollups {
				for _, st := range h.stages {
					x, ok := number(row[col])
					col++
					if !ok {
						continue
					}
					tags := s.Tags
					if st.name != "" {
						tags = maps.Clone(s.Tags)
						tags["stage"] = st.name
					}
					hists[i][histKey{start, tagString(tags), latency.Tag(x)}]++
				}
			}
		}
	}
	for i, h := range histRollups {
		for _, p := range r.histPoints(h.name, hists[i], latency.Minute) {
			local = append(local, p)
			r.opt.Emit(p)
		}
	}
	return r.writeLocal(local)
}

type histKey struct {
	start  int64
	tags   string // the group's tags, key=value joined by ","
	bucket string
}

func (r *Reconciler) histPoints(name string, hist map[histKey]int64, l latency.Level) []Point {
	keys := make([]histKey, 0, len(hist))
	for k := range hist {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		a, b := keys[i], keys[j]
		if a.start != b.start {
			return a.start < b.start
		}
		if a.tags != b.tags {
			return a.tags < b.tags
		}
		return a.bucket < b.bucket
	})
	out := make([]Point, 0, len(keys))
	for _, k := range keys {
		tags := parseTags(k.tags)
		tags["bucket"], tags["window"], tags["tz"] = k.bucket, string(l), r.opt.Loc.String()
		out = append(out, Point{Name: name, Tags: tags,
			Fields: map[string]any{"count": hist[k]}, Time: time.Unix(0, k.start).UTC()})
	}
	return out
}

// batchPoints turns a GROUP BY time(1m) result into points as Kapacitor's
// batch node and influxDBOut write them: tag window, numbers as floats.
func batchPoints(name string, series []influxq.Series) []Point {
	var out []Point
	for _, s := range series {
		for _, row := range s.Values {
			t, _ := number(row[0])
			fields := map[string]any{}
			for i := 1; i < len(row) && i < len(s.Columns); i++ {
				if f, ok := number(row[i]); ok {
					fields[s.Columns[i]] = f
				}
			}
			if len(fields) == 0 {
				continue
			}
			tags := map[string]string{"window": "1m"}
			for k, v := range s.Tags {
				if v != "" {
					tags[k] = v
				}
			}
			out = append(out, Point{Name: name, Tags: tags, Fields: fields, Time: time.Unix(0, int64(t)).UTC()})
		}
	}
	return out
}

func quoteAll(keys []string) string {
	q := make([]string, len(keys))
	for i, k := range keys {
		q[i] = strconv.Quote(k)
	}
	return strings.Join(q, ", ")
}

// tagString and parseTags make a group's tags a map key and back.
func tagString(tags map[string]string) string {
	keys := make([]string, 0, len(tags))
	for k, v := range tags {
		if v != "" && k != "window" {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = k + "\x00" + tags[k]
	}
	return strings.Join(parts, "\x01")
}

func parseTags(s string) map[string]string {
	tags := map[string]string{}
	if s == "" {
		return tags
	}
	for _, kv := range strings.Split(s, "\x01") {
		k, v, _ := strings.Cut(kv, "\x00")
		tags[k] = v
	}
	return tags
}

// checkLevels compares, level by level, the windows windows(l) and the
// parents of what was repaired below (those ended by settled) with the sum
// of their children, and recomputes those that differ, or all with force.
func (r *Reconciler) checkLevels(repairedMinutes []time.Time, windowsOf func(level) []time.Time, settled time.Time, force bool, done map[string]map[int64]bool) error {
	repaired := map[latency.Level][]time.Time{}
	for _, l := range r.levels() {
		if l.level == latency.Hour {
			repaired[latency.Minute] = repairedMinutes
		}
		windows := map[time.Time]bool{}
		for _, w := range windowsOf(l) {
			windows[w.UTC()] = true // one key per instant, whatever the zone
		}
		for _, c := range repaired[l.level.Below()] {
			s := l.level.Start(c, l.loc)
			if !l.level.Next(s, l.loc).After(settled) {
				windows[s.UTC()] = true
			}
		}
		starts := sortedTimes(windows)
		var fixed []time.Time
		for _, run := range runs(starts, func(t time.Time) time.Time { return l.level.Next(t, l.loc) }, 31) {
			d, err := r.checkLevel(l, run[0], run[1], force)
			if err != nil {
				return err
			}
			fixed = append(fixed, d...)
		}
		// Only some of the runs' windows were asked for: a run is whole
		// windows, all asked for.
		repaired[l.level] = fixed
		done[l.name+" "+string(l.level)] = set(fixed)
		r.recomputed(l.name, l.level, int64(len(fixed)))
	}
	return nil
}

// checkLevel compares l's windows in [from, to) with their children.
func (r *Reconciler) checkLevel(l level, from, to time.Time, force bool) ([]time.Time, error) {
	m := `"` + r.opt.RollupDB + `"."autogen"."` + l.name + `"`
	tz := ""
	if l.tz {
		tz = ` AND "tz" = '` + l.loc.String() + `'`
	}
	where := r.between(from, to)
	children, err := r.query(r.opt.RollupDB, `SELECT "count" FROM `+m+` WHERE "window" = '`+string(l.level.Below())+`'`+tz+` AND `+where+` GROUP BY *`)
	if err != nil {
		return nil, err
	}
	parents, err := r.query(r.opt.RollupDB, `SELECT "count" FROM `+m+` WHERE "window" = '`+string(l.level)+`'`+tz+` AND `+where+` GROUP BY *`)
	if err != nil {
		return nil, err
	}
	want := map[histKey]float64{} // by window start and tags, bucket in tags
	wantDC, haveDC := map[dcKey]float64{}, map[dcKey]float64{}
	for _, s := range children {
		tags := tagString(s.Tags)
		for _, row := range s.Values {
			t, _ := number(row[0])
			n, _ := number(row[1])
			start := l.level.Start(time.Unix(0, int64(t)), l.loc).UnixNano()
			want[histKey{start: start, tags: tags}] += n
			wantDC[dcKey{start, s.Tags["dc"]}] += n
		}
	}
	for _, s := range parents {
		for _, row := range s.Values {
			t, _ := number(row[0])
			n, _ := number(row[1])
			haveDC[dcKey{int64(t), s.Tags["dc"]}] += n
		}
	}
	r.stats.WindowsChecked += int64(len(windowsIn(l, from, to)))
	bad := map[int64]bool{}
	for _, s := range windowsIn(l, from, to) {
		if force {
			bad[s.UnixNano()] = true
		}
	}
	for k, n := range wantDC {
		if haveDC[k] != n {
			bad[k.start] = true
		}
	}
	for k := range haveDC {
		if _, ok := wantDC[k]; !ok {
			bad[k.start] = true
		}
	}
	var points []Point
	for k, n := range want {
		if !bad[k.start] {
			continue
		}
		tags := parseTags(k.tags)
		tags["window"] = string(l.level)
		var v any = n
		if l.integer {
			v = int64(n)
		}
		points = append(points, Point{Name: l.name, Tags: tags, Fields: map[string]any{"count": v}, Time: time.Unix(0, k.start).UTC()})
	}
	sort.Slice(points, func(i, j int) bool { return points[i].Time.Before(points[j].Time) })
	for _, p := range points {
		r.opt.Emit(p)
	}
	if err := r.writeLocal(points); err != nil {
		return nil, err
	}
	var done []time.Time
	for s := range bad {
		done = append(done, time.Unix(0, s).UTC())
	}
	slices.SortFunc(done, func(a, b time.Time) int { return a.Compare(b) })
	return done, nil
}

func windowsIn(l level, from, to time.Time) []time.Time {
	var ws []time.Time
	for s := from; s.Before(to); s = l.level.Next(s, l.loc) {
		ws = append(ws, s)
	}
	return ws
}

// writeLocal writes points to the DC's rollup database, where the next
// level and the next comparison read them.
func (r *Reconciler) writeLocal(points []Point) error {
	return Write(r.db, r.opt.RollupDB, points)
}

// Write writes points to database, in requests of at most 5,000 points,
// creating it if it does not exist yet (as Kapacitor's
// influxDBOut().create() does).
func Write(db DB, database string, points []Point) error {
	for i := 0; i < len(points); i += 5000 {
		lines, err := Lines(points[i:min(i+5000, len(points))])
		if err != nil {
			return err
		}
		err = db.Write(database, lines)
		if err != nil && strings.Contains(err.Error(), "database not found") {
			if _, err := db.Query("", `CREATE DATABASE "`+database+`"`); err != nil {
				return err
			}
			err = db.Write(database, lines)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// Lines renders points as line protocol, tags sorted.
func Lines(points []Point) ([]byte, error) {
	var enc lineprotocol.Encoder
	enc.SetPrecision(lineprotocol.Nanosecond)
	for _, p := range points {
		enc.StartLine(p.Name)
		keys := make([]string, 0, len(p.Tags))
		for k := range p.Tags {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			if p.Tags[k] != "" {
				enc.AddTag(k, p.Tags[k])
			}
		}
		fkeys := make([]string, 0, len(p.Fields))
		for k := range p.Fields {
			fkeys = append(fkeys, k)
		}
		sort.Strings(fkeys)
		for _, k := range fkeys {
			v, ok := lineprotocol.NewValue(p.Fields[k])
			if !ok {
				return nil, fmt.Errorf("point %s: field %q: unsupported value %v", p.Name, k, p.Fields[k])
			}
			enc.AddField(k, v)
		}
		enc.EndLine(p.Time)
	}
	return enc.Bytes(), enc.Err()
}
