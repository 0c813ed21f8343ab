package bench

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/mailtick/mailtick/internal/gen"
	"github.com/mailtick/mailtick/internal/testutil/stack"
)

// TraceResult is what `mailtick trace` costs on a DC's raw events: Hours
// of events at Rate events/s in a real InfluxDB, and lookups by
// message-id over ranges of several lengths.
type TraceResult struct {
	Rate, Hours int
	Events      int64
	WriteTime   time.Duration
	DiskBytes   int64
	Lookups     []TraceLookup
}

// TraceLookup is one `mailtick trace --message-id` over Range: its best
// wall time of three (of one when it takes over 10 s).
type TraceLookup struct {
	Range time.Duration
	Best  time.Duration
	Steps int
}

// TraceCost writes hours of the DC's raw events at rate events/s, as the
// agent writes them (mail_event: tags dc, direction, event, customer,
// mailer; the generator's fields, and a message-id per message of two
// events), into a real InfluxDB 1.8, then times bin/mailtick trace for
// one message of the last hour, over the last hour, the last 6 hours and
// the whole range.
func TraceCost(ctx context.Context, rate, hours int, log io.Writer) (TraceResult, error) {
	res := TraceResult{Rate: rate, Hours: hours}
	g, err := gen.New(gen.Config{Seed: 3})
	if err != nil {
		return res, err
	}
	var pool []gen.Message // drawn from in turn
	for len(pool) < 10000 {
		if m := g.Next(); m.Kind == gen.Good {
			pool = append(pool, m)
		}
	}
	db, dir, stop, err := influxIn("trace", "mail")
	if err != nil {
		return res, err
	}
	defer stop()
	end := time.Now().UTC().Truncate(time.Hour)
	begin := end.Add(-time.Duration(hours) * time.Hour)
	total := int64(rate) * 3600 * int64(hours)
	fmt.Fprintf(log, "trace: writing %d events (%d h at %d/s)...\n", total, hours, rate)
	start := time.Now()
	var b strings.Builder
	step := time.Second / time.Duration(rate)
	for i := int64(0); i < total; i++ {
		if ctx.Err() != nil {
			return res, ctx.Err()
		}
		m := pool[i%int64(len(pool))]
		ev := m.Event
		msg := i / 2
		fmt.Fprintf(&b, "mail_event,customer=%s,dc=dc1,direction=%s,event=%s,mailer=app%d events=1i,message_id=\"%d.%x@mailer.example\",queue_id=\"%X\",sender=%q,recipient=\"r%d@%s\",sender_ip=%q,helo=%q,latency_ms=%v %d\n",
			ev.Customer, ev.Direction, ev.Event, msg%4, msg, msg*7919, msg, ev.Sender, msg, "example.net", ev.SenderIP, ev.Helo, ev.LatencyMs,
			begin.Add(time.Duration(i)*step).UnixNano())
		if b.Len() > 4<<20 {
			if err := db.Write("mail", b.String()); err != nil {
				return res, err
			}
			b.Reset()
		}
		if i%(int64(rate)*3600) == 0 && i > 0 {
			fmt.Fprintf(log, "trace: %d h written in %s\n", i/(int64(rate)*3600), time.Since(start).Round(time.Second))
		}
	}
	if err := db.Write("mail", b.String()); err != nil {
		return res, err
	}
	res.Events, res.WriteTime = total, time.Since(start)
	bin, err := stack.Binary("mailtick")
	if err != nil {
		return res, err
	}
	// A message of the last hour: its lookup reads the range whole.
	msg := (total - int64(rate)*1800) / 2
	id := fmt.Sprintf("%d.%x@mailer.example", msg, msg*7919)
	for _, r := range []time.Duration{time.Hour, 6 * time.Hour, time.Duration(hours) * time.Hour} {
		if r > time.Duration(hours)*time.Hour || (len(res.Lookups) > 0 && res.Lookups[len(res.Lookups)-1].Range == r) {
			continue
		}
		l := TraceLookup{Range: r}
		args := []string{"trace", "--url", db.URL, "--timeout", "30m", "--message-id", id,
			"--from", end.Add(-r).Format(time.RFC3339), "--to", end.Format(time.RFC3339)}
		for i := 0; i < 3 && l.Best < 10*time.Second; i++ {
			t0 := time.Now()
			out, err := exec.CommandContext(ctx, bin, args...).CombinedOutput()
			if err != nil {
				return res, fmt.Errorf("mailtick %s: %v: %s", strings.Join(args, " "), err, out)
			}
			if d := time.Since(t0); l.Best == 0 || d < l.Best {
				l.Best = d
			}
			l.Steps = strings.Count(string(out), "\n")
		}
		res.Lookups = append(res.Lookups, l)
	}
	res.DiskBytes, _ = dirSize(dir)
	return res, nil
}

func dirSize(dir string) (int64, error) {
	var n int64
	err := filepath.Walk(dir, func(_ string, fi os.FileInfo, err error) error {
		if err == nil && !fi.IsDir() {
			n += fi.Size()
		}
		return nil
	})
	return n, err
}

// PrintTrace prints the figures with the settings.
func PrintTrace(w io.Writer, r TraceResult) {
	fmt.Fprintf(w, "\nmailtick trace on a DC's raw events: %d h at %d events/s (%d events, %d MB on disk) in a real InfluxDB %s, written in %s:\n",
		r.Hours, r.Rate, r.Events, r.DiskBytes>>20, stack.InfluxDBVersion, r.WriteTime.Round(time.Second))
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "  mailtick trace --message-id (one message of the last hour) over\tevents read\tbest of 3 (1 over 10 s)\tsteps")
	for _, l := range r.Lookups {
		fmt.Fprintf(tw, "  the last %s\t%d\t%s\t%d\n", l.Range, int64(l.Range/time.Second)*int64(r.Rate), l.Best.Round(time.Millisecond), l.Steps)
	}
	tw.Flush()
}

// influxIn starts a real InfluxDB holding databases in a new temporary
// folder, named for the bench; stop stops it and removes the folder.
func influxIn(bench string, databases ...string) (db *stack.InfluxDB, dir string, stop func(), err error) {
	tmp, err := os.MkdirTemp("", "mailtick-bench-"+bench+"-")
	if err != nil {
		return nil, "", nil, err
	}
	dir = filepath.Join(tmp, "influxdb")
	if db, err = stack.StartInfluxDB(dir, databases...); err != nil {
		os.RemoveAll(tmp)
		return nil, "", nil, err
	}
	return db, dir, func() {
		db.Stop(30 * time.Second)
		os.RemoveAll(tmp)
	}, nil
}
