// Package demo runs mailtick end to end on loopback: a real nsqd and
// influxd, the mailtick build of Telegraf between them, and generated
// mailer traffic; then it shows what landed.
package demo

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/mailtick/mailtick/internal/gen"
	"github.com/mailtick/mailtick/internal/stack"
)

// Options size the demo.
type Options struct {
	Events int     // messages to generate
	Rate   float64 // per second
	Bad    float64 // fraction of bad messages
	Dir    string  // where servers keep their data; kept if set
}

// Run starts the stack, sends the traffic, waits until every good event is
// stored, prints the report to w, and stops everything.
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

	step("starting nsqd %s and influxd %s (data in %s)", stack.NSQVersion, stack.InfluxDBVersion, dir)
	nsqd, err := stack.StartNSQD(filepath.Join(dir, "nsqd"), stack.NSQDOptions{})
	if err != nil {
		return err
	}
	defer nsqd.Stop(10 * time.Second)
	influx, err := stack.StartInfluxDB(filepath.Join(dir, "influxdb"))
	if err != nil {
		return err
	}
	defer influx.Stop(10 * time.Second)

	step("starting bin/telegraf (inputs.mailevents -> outputs.influxdb, dc = \"dc1\")")
	agent, err := stack.StartTelegraf(filepath.Join(dir, "telegraf"), stack.IngestConfig(nsqd.TCPAddr, influx.URL, "dc1"))
	if err != nil {
		return err
	}
	defer agent.Stop(10 * time.Second)

	step("publishing %d generated mailer events at %.0f/s, %.1f%% of them bad", opt.Events, opt.Rate, 100*opt.Bad)
	g, err := gen.New(gen.Config{Seed: uint64(time.Now().UnixNano()), Count: opt.Events, Bad: opt.Bad,
		Start: time.Now().UTC().Add(-time.Duration(opt.Events) * time.Millisecond)})
	if err != nil {
		return err
	}
	sink, err := gen.NewNSQSink(nsqd.TCPAddr, "mail_events")
	if err != nil {
		return err
	}
	sum, err := gen.Run(ctx, g, sink, opt.Rate, 200, nil)
	sink.Close()
	if err != nil {
		return err
	}
	stored := int64(sum.ByKind[gen.Good] + sum.ByKind[gen.MissingTime])
	kinds, _ := json.Marshal(sum.ByKind)
	step("published %d messages %s; waiting for %d points in InfluxDB", sum.Messages, kinds, stored)

	deadline := time.Now().Add(2 * time.Minute)
	for {
		n, err := influx.Count("mail", "SELECT count(queue_id) FROM mail_event")
		if err == nil && n >= stored {
			break
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("only %d of %d events reached InfluxDB in 2 minutes (%v); agent log: %s", n, stored, err, agent.LogPath)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-agent.Exited():
			return fmt.Errorf("the agent exited; its log ends:\n%s", agent.LogTail(20))
		case <-time.After(200 * time.Millisecond):
		}
	}
	// Self-metrics are gathered every second: wait for the round that saw
	// every message.
	for time.Now().Before(deadline) {
		n, err := influx.Count("telegraf", "SELECT last(messages_received) FROM internal_mailevents")
		if err == nil && n >= int64(sum.Messages) {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	return report(w, influx, nsqd)
}

func report(w io.Writer, influx *stack.InfluxDB, nsqd *stack.NSQD) error {
	sections := []struct {
		title, db, q string
		showTime     bool
	}{
		{"Events stored, by event", "mail",
			"SELECT count(queue_id) AS events FROM mail_event GROUP BY event", false},
		{"Latency (ms) by direction", "mail",
			"SELECT count(latency_ms) AS events, percentile(latency_ms, 50) AS p50, percentile(latency_ms, 95) AS p95, percentile(latency_ms, 99) AS p99, max(latency_ms) AS max FROM mail_event GROUP BY direction", false},
		{"A few events, string fields kept (ns timestamps)", "mail",
			"SELECT dc, event, sender, recipient, sender_ip, smtp_code, smtp_response FROM mail_event WHERE event = 'bounced' OR event = 'deferred' LIMIT 4", true},
		{"Agent self-metrics (internal_mailevents)", "telegraf",
			"SELECT last(messages_received) AS received, last(metrics_emitted) AS emitted, last(messages_finished) AS finished, last(messages_requeued) AS requeued, last(events_dead_lettered) AS dead_lettered, last(events_missing_time) AS missing_time FROM internal_mailevents", false},
		{"Bad events by reason (internal_mailevents_errors)", "telegraf",
			"SELECT last(events) AS events FROM internal_mailevents_errors WHERE events > 0 GROUP BY reason", false},
		{"End-to-end lag (internal_mailevents_lag)", "telegraf",
			"SELECT last(events) AS events FROM internal_mailevents_lag WHERE events > 0 GROUP BY lag", false},
	}
	for _, s := range sections {
		series, err := influx.Query(s.db, s.q)
		if err != nil {
			return err
		}
		fmt.Fprintf(w, "\n%s\n", s.title)
		printSeries(w, series, s.showTime)
	}
	dead, err := nsqd.TopicStats("mail_events_dead")
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "\nDead-letter topic mail_events_dead holds %d messages (each: reason, error, original body).\n", dead.Depth)
	return nil
}

// printSeries prints InfluxQL results as one table, group-by tags first;
// the time column only where rows are points, not aggregates.
func printSeries(w io.Writer, series []stack.Series, showTime bool) {
	if len(series) == 0 {
		fmt.Fprintln(w, "  (none)")
		return
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	var tagKeys []string
	for k := range series[0].Tags {
		tagKeys = append(tagKeys, k)
	}
	first := 1 // column 0 is time
	if showTime {
		first = 0
	}
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
