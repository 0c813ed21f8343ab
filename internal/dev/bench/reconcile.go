package bench

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/mailtick/mailtick/internal/influxq"
	"github.com/mailtick/mailtick/internal/reconcile"
	"github.com/mailtick/mailtick/internal/testutil/stack"
)

// ReconcileResult is what the reconciler (inputs.mailrollups) costs the DC
// InfluxDB at one event rate, with the shipped check ages.
type ReconcileResult struct {
	Rate        float64 // events per second
	Ages        int     // check ages: how often each raw event is counted again
	CleanCycle  ReconcileCycle
	LateCycle   ReconcileCycle // the same, with late events in one minute
	LateEvents  int64
	PerHour     ReconcileCycle // 60 clean cycles
	RawPoints   int64          // written for the run: one minute at each age
	WriteTime   time.Duration
	Recomputed  map[string]int64 // by the late cycle
	CycleLimits string           // what a cycle compares
}

// ReconcileCycle is one cycle's queries, points read (by InfluxDB, counted
// or returned) and wall time.
type ReconcileCycle struct {
	Queries    int64
	PointsRead int64
	Time       time.Duration
}

// ReconcileCost writes, at rate events/s, the raw events of the minutes a
// one-minute cycle compares (one at each check age) and their rollups as
// Kapacitor writes them, then times a cycle where everything adds up, and
// one where 1% of a minute 15 minutes old arrived late (found at the 20m
// age). A cycle's cost is the same every minute (each compares one minute
// at each age), so an hour's is 60 clean cycles.
func ReconcileCost(ctx context.Context, rate float64, log io.Writer) (ReconcileResult, error) {
	ages := reconcile.DefaultAges
	res := ReconcileResult{Rate: rate, Ages: len(ages),
		CycleLimits: "one minute of raw events per check age (aggregates), the levels' windows that ended"}
	dir, err := os.MkdirTemp("", "mailtick-bench-reconcile-")
	if err != nil {
		return res, err
	}
	defer os.RemoveAll(dir)
	db, err := stack.StartInfluxDB(filepath.Join(dir, "influxdb"), "mail", "mail_rollups")
	if err != nil {
		return res, err
	}
	defer db.Stop(15 * time.Second)
	q := influxq.Querier{URL: db.URL, Timeout: 10 * time.Minute}

	now := time.Now().UTC().Truncate(time.Minute).Add(30 * time.Second)
	per := int(rate * 60)
	start := time.Now()
	for _, age := range ages {
		// The minute whose end passes this age in the cycle (now-1m, now].
		m := now.Add(-age).Truncate(time.Minute).Add(-time.Minute)
		if err := writeMinute(ctx, q, m, per); err != nil {
			return res, err
		}
		res.RawPoints += int64(per)
		fmt.Fprintf(log, "bench reconcile %.0f/s: wrote the minute at age %s\n", rate, age)
	}
	res.WriteTime = time.Since(start)
	r, err := reconcile.New(q, reconcile.Options{RawDB: "mail", RollupDB: "mail_rollups"})
	if err != nil {
		return res, err
	}
	// A first cycle writes the rollups (as if Kapacitor had); the next
	// finds everything adds up.
	if _, err := r.Cycle(now.Add(-time.Minute), now); err != nil {
		return res, err
	}
	t := time.Now()
	st, err := r.Cycle(now.Add(-time.Minute), now)
	if err != nil {
		return res, err
	}
	res.CleanCycle = ReconcileCycle{st.Queries, st.PointsRead, time.Since(t)}
	if len(st.Recomputed) > 0 {
		return res, fmt.Errorf("a cycle over rollups that add up recomputed %v", st.Recomputed)
	}
	res.PerHour = ReconcileCycle{60 * st.Queries, 60 * st.PointsRead, 60 * res.CleanCycle.Time}

	late := now.Add(-20 * time.Minute).Truncate(time.Minute).Add(-time.Minute)
	res.LateEvents = int64(max(per/100, 1))
	if err := writeMinuteFrom(ctx, q, late, int(res.LateEvents), per); err != nil {
		return res, err
	}
	t = time.Now()
	st, err = r.Cycle(now.Add(-time.Minute), now)
	if err != nil {
		return res, err
	}
	res.LateCycle = ReconcileCycle{st.Queries, st.PointsRead, time.Since(t)}
	res.Recomputed = st.Recomputed
	if st.LateEvents != res.LateEvents {
		return res, fmt.Errorf("the late cycle found %d late events, want %d", st.LateEvents, res.LateEvents)
	}
	return res, nil
}

func writeMinute(ctx context.Context, q influxq.Querier, m time.Time, n int) error {
	return writeMinuteFrom(ctx, q, m, n, 0)
}

// writeMinuteFrom writes n raw events in minute m, the first numbered
// first (distinct times from events written before).
func writeMinuteFrom(ctx context.Context, q influxq.Querier, m time.Time, n, first int) error {
	var b strings.Builder
	step := time.Minute / time.Duration(max(n+first, 1)*2)
	for i := first; i < first+n; i++ {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		dir, ev := "outbound", "delivered"
		if i%4 == 3 {
			dir = "inbound"
		}
		if i%7 == 6 {
			ev = "deferred"
		}
		// processors.mailclassify's tags, as the agent writes them.
		tags := fmt.Sprintf(",rcpt_provider=%s,sender_domain=d%d.example", []string{"gmail", "microsoft", "yahoo", "other"}[i%4], i%50)
		if ev == "deferred" {
			tags += ",reason=toomanyconn"
		}
		fmt.Fprintf(&b, "mail_event,customer=c%d,dc=bench,direction=%s,event=%s%s events=1i,latency_ms=%d %d\n",
			i%50, dir, ev, tags, 50+i%5000, m.Add(time.Duration(2*i+1)*step/2).UnixNano()+int64(i%1000))
		if (i-first)%20000 == 19999 {
			if err := q.Write("mail", []byte(b.String())); err != nil {
				return err
			}
			b.Reset()
		}
	}
	if b.Len() == 0 {
		return nil
	}
	return q.Write("mail", []byte(b.String()))
}

// PrintReconcile prints the reconciler's cost at each rate.
func PrintReconcile(w io.Writer, rs []ReconcileResult) {
	fmt.Fprintf(w, "\nThe reconciler (inputs.mailrollups), one cycle a minute, %d check ages; InfluxDB %s on this machine\n", len(reconcile.DefaultAges), stack.InfluxDBVersion)
	fmt.Fprintf(w, "%-10s %-22s %10s %14s %10s\n", "events/s", "cycle", "queries", "points read", "time")
	for _, r := range rs {
		fmt.Fprintf(w, "%-10.0f %-22s %10d %14d %10s\n", r.Rate, "clean", r.CleanCycle.Queries, r.CleanCycle.PointsRead, r.CleanCycle.Time.Round(time.Millisecond))
		fmt.Fprintf(w, "%-10.0f %-22s %10d %14d %10s\n", r.Rate, "per hour (60 clean)", r.PerHour.Queries, r.PerHour.PointsRead, r.PerHour.Time.Round(time.Millisecond))
		fmt.Fprintf(w, "%-10.0f %-22s %10d %14d %10s\n", r.Rate, fmt.Sprintf("with %d late events", r.LateEvents), r.LateCycle.Queries, r.LateCycle.PointsRead, r.LateCycle.Time.Round(time.Millisecond))
		fmt.Fprintf(w, "%-10s ingest per hour: %d events; points read per hour / events ingested per hour: %.1f\n", "", int64(r.Rate*3600), float64(r.PerHour.PointsRead)/(r.Rate*3600))
	}
}
