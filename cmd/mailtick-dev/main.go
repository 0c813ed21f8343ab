// Command mailtick-dev holds the developers' commands of a mailtick
// checkout: demo, bench and stack. They start the servers built into
// .cache/servers and deploy the repository's telegraf.conf, tasks.toml and
// tickscripts, so they work inside a checkout only; the operators' binary,
// mailtick, has what works anywhere (gen, tasks, sla, udf, rollups,
// check). It only parses flags; the work is done in internal packages.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/mailtick/mailtick/internal/cli"
	"github.com/mailtick/mailtick/internal/dev/bench"
	"github.com/mailtick/mailtick/internal/dev/demo"
	"github.com/mailtick/mailtick/internal/dev/localstack"
	"github.com/mailtick/mailtick/internal/grafana"
	"github.com/mailtick/mailtick/internal/testutil/stack"
)

const usage = `mailtick-dev — the developers' commands of a mailtick checkout

Usage:
  mailtick-dev demo [flags]    three DCs (two on NSQ, one on a real Postfix's log) and a central
                               InfluxDB on loopback, generated traffic, a report
  mailtick-dev bench [flags]   the figures of make bench: mailevents against stock Telegraf
                               (nsq_consumer + json_v2), rollupfwd through an outage, webhooks,
                               the spam UDF's memory, the latency rollups' and the reconciler's cost
  mailtick-dev stack up|down --dir DIR [--dcs N]
                               run central + N DCs on loopback until down (or Ctrl-C)
  mailtick-dev dashboards      write grafana/dashboards/*.json from internal/grafana

Run inside the repository (or set MAILTICK_ROOT to it), after make build.
Run "mailtick-dev <command> -h" for the flags of a command.
`

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// run runs the command line args (without the program's name) and
// returns the exit code.
func run(args []string, stdout, stderr io.Writer) int {
	c := command{stdout: stdout, stderr: stderr}
	return cli.Run("mailtick-dev", usage, args, map[string]cli.Command{
		"bench":      cli.Plain(c.bench),
		"dashboards": cli.Plain(c.dashboards),
		"demo":       cli.Plain(c.demo),
		"stack":      cli.Plain(c.stack),
	}, stdout, stderr)
}

// command holds the standard output and error the subcommands write to.
type command struct {
	stdout, stderr io.Writer
}

func (c command) bench(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	var opt bench.Options
	fs.IntVar(&opt.Events, "events", 500000, "events each agent drains")
	fs.IntVar(&opt.Pairs, "pairs", 5, "times stock and mailevents drain into discard, alternating; the ratio is their median (the machine's speed drifts)")
	batches := fs.String("batch-sizes", "1000,5000,20000", "metric_batch_size values mailevents also drains with into discard (comma-separated)")
	fs.BoolVar(&opt.Raw, "raw", true, "also the full raw path into InfluxDB: stock beside the shipped telegraf.conf")
	fs.StringVar(&opt.Profile, "profile", "", "write a CPU profile of each agent's drain into this folder (go tool pprof)")
	fs.IntVar(&opt.InFlight, "in-flight", 100000, "events held in flight for the memory figure (0: skip)")
	fs.Uint64Var(&opt.Seed, "seed", 1, "generator seed")
	fs.StringVar(&opt.Dir, "dir", "", "work folder, kept for inspection (default: a temporary one)")
	outage := fs.Int("outage", 100000, "points for the central-path outage scenario, stock disk buffer against rollupfwd (0: skip)")
	webhooks := fs.Int("webhooks", 100000, "SendGrid events POSTed to mailwebhooks and to http_listener_v2, 100 and 1 per request (0: skip)")
	spamList := fs.String("spam", "10000,100000,1000000", "distinct senders in one minute through mail_spam.tick, for Kapacitor's memory; one run per number and version, comma-separated (empty: skip)")
	spamVersions := fs.String("spam-versions", "v1,v2", "versions of mail_spam.tick run at each number of senders, in the order given: v1 (Kapacitor's own nodes, internal/dev/bench/testdata) and v2 (tickscripts/); a v1 run is compared with the v2 run right after it")
	slaDays := fs.Int("sla-days", 3, "days of one DC's traffic for the latency rollups' cost, before and now (0: skip)")
	slaRate := fs.Float64("sla-rate", 20, "events per second of that traffic")
	reconcileRates := fs.String("reconcile-rates", "1000,10000", "events per second at which the reconciler's cost is measured (comma-separated; empty: skip)")
	delivCustomers := fs.Int("deliv-customers", 20000, "customers of the deliverability rollups' cost (mail_deliv series, a month through mailtick deliverability; 0: skip)")
	delivDomains := fs.Int("deliv-domains", 5000, "their sending domains")
	delivRate := fs.Int("deliv-rate", 100, "events per second of that DC's day")
	traceRate := fs.Int("trace-rate", 1000, "events per second of the DC whose raw events mailtick trace looks up (0: skip)")
	traceHours := fs.Int("trace-hours", 24, "hours of those events")
	jsonPath := fs.String("json", "", "also write every figure, with the settings, as JSON to this file (to compare runs)")
	if err := cli.Parse(fs, args, c.stdout, c.stderr); err != nil {
		return err
	}
	var err error
	if opt.BatchSizes, err = counts("batch-sizes", *batches); err != nil {
		return err
	}
	spam, err := counts("spam", *spamList)
	if err != nil {
		return err
	}
	rates, err := counts("reconcile-rates", *reconcileRates)
	if err != nil {
		return err
	}
	var versions []string
	for _, v := range strings.Split(*spamVersions, ",") {
		if v = strings.TrimSpace(v); v == "" {
			continue
		}
		if _, ok := bench.SpamScripts[v]; !ok {
			return fmt.Errorf("invalid --spam-versions value %q: %q is not v1 or v2", *spamVersions, v)
		}
		versions = append(versions, v)
	}
	all := map[string]any{"settings": map[string]any{
		"options": opt, "outage": *outage, "webhooks": *webhooks, "spam": spam, "spam_versions": *spamVersions, "sla_days": *slaDays, "sla_rate": *slaRate, "reconcile_rates": rates,
		"deliv_customers": *delivCustomers, "deliv_domains": *delivDomains, "deliv_rate": *delivRate,
		"trace_rate": *traceRate, "trace_hours": *traceHours}}
	if opt.Events > 0 {
		rep, err := bench.Run(ctx, opt, c.stderr)
		if err != nil {
			return err
		}
		rep.Print(c.stdout)
		all["throughput"] = rep
	}
	if *outage > 0 {
		res, err := bench.Outage(ctx, *outage, c.stderr)
		if err != nil {
			return err
		}
		bench.PrintOutage(c.stdout, res)
		all["outage"] = res
	}
	if *webhooks > 0 {
		res, err := bench.Webhooks(ctx, *webhooks, c.stderr)
		if err != nil {
			return err
		}
		bench.PrintWebhooks(c.stdout, res)
		all["webhooks"] = res
	}
	var spamResults []bench.SpamResult
	for _, senders := range spam {
		for _, script := range versions {
			res, err := bench.SpamMemory(ctx, script, senders, opt.Profile, c.stderr)
			if err != nil {
				return err
			}
			spamResults = append(spamResults, res)
		}
	}
	if len(spamResults) > 0 {
		bench.PrintSpam(c.stdout, spamResults)
		all["spam"] = spamResults
	}
	if *slaDays > 0 {
		res, err := bench.SLACost(ctx, *slaDays, *slaRate, c.stderr)
		if err != nil {
			return err
		}
		res.Print(c.stdout)
		all["sla"] = res
	}
	var reconciles []bench.ReconcileResult
	for _, rate := range rates {
		res, err := bench.ReconcileCost(ctx, float64(rate), c.stderr)
		if err != nil {
			return err
		}
		reconciles = append(reconciles, res)
	}
	if len(reconciles) > 0 {
		bench.PrintReconcile(c.stdout, reconciles)
		all["reconcile"] = reconciles
	}
	if *delivCustomers > 0 {
		if *delivDomains <= 0 || *delivRate <= 0 {
			return fmt.Errorf("invalid --deliv-domains %d or --deliv-rate %d: both > 0", *delivDomains, *delivRate)
		}
		res, err := bench.DelivCost(ctx, *delivCustomers, *delivDomains, *delivRate, c.stderr)
		if err != nil {
			return err
		}
		bench.PrintDeliv(c.stdout, res)
		all["deliv"] = res
	}
	if *traceRate > 0 {
		if *traceHours <= 0 {
			return fmt.Errorf("invalid --trace-hours %d: want at least 1", *traceHours)
		}
		res, err := bench.TraceCost(ctx, *traceRate, *traceHours, c.stderr)
		if err != nil {
			return err
		}
		bench.PrintTrace(c.stdout, res)
		all["trace"] = res
	}
	if *jsonPath == "" {
		return nil
	}
	b, err := json.MarshalIndent(all, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(*jsonPath, append(b, '\n'), 0o644)
}

// counts parses a flag's comma-separated positive integers.
func counts(flagName, list string) ([]int, error) {
	var out []int
	for _, f := range strings.Split(list, ",") {
		if f = strings.TrimSpace(f); f == "" {
			continue
		}
		n, err := strconv.Atoi(f)
		if err != nil || n <= 0 {
			return nil, fmt.Errorf("invalid --%s value %q: want positive integers, comma-separated", flagName, list)
		}
		out = append(out, n)
	}
	return out, nil
}

func (c command) demo(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("demo", flag.ContinueOnError)
	var opt demo.Options
	fs.IntVar(&opt.Events, "events", 10000, "messages to generate per DC")
	fs.Float64Var(&opt.Rate, "rate", 1000, "events per second of event time, per DC")
	fs.Float64Var(&opt.Bad, "bad", 0.01, "fraction of bad messages")
	fs.StringVar(&opt.Dir, "dir", "", "keep the servers' data and logs here (default: a temporary folder)")
	fs.StringVar(&opt.HTML, "html", "mailtick-demo.html", "where to write the HTML report with charts")
	if err := cli.Parse(fs, args, c.stdout, c.stderr); err != nil {
		return err
	}
	return demo.Run(ctx, opt, c.stdout)
}

func (c command) dashboards(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("dashboards", flag.ContinueOnError)
	dir := fs.String("dir", "", "where to write them (default: the checkout's grafana/dashboards)")
	if err := cli.Parse(fs, args, c.stdout, c.stderr); err != nil {
		return err
	}
	if *dir == "" {
		root, err := stack.Root()
		if err != nil {
			return err
		}
		*dir = filepath.Join(root, "grafana", "dashboards")
	}
	files, err := grafana.Files()
	if err != nil {
		return err
	}
	for name, b := range files {
		if err := os.WriteFile(filepath.Join(*dir, name), b, 0o644); err != nil {
			return err
		}
		fmt.Fprintf(c.stdout, "wrote %s\n", filepath.Join(*dir, name))
	}
	return nil
}

func (c command) stack(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("stack", flag.ContinueOnError)
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), "Usage: mailtick-dev stack up|down [flags]\n\nup runs central and N DCs on loopback until down (or Ctrl-C), addresses in DIR/stack.json.\n\nFlags:\n")
		fs.PrintDefaults()
	}
	dir := fs.String("dir", ".cache/stack", "where the servers keep their data and logs")
	dcs := fs.Int("dcs", 2, "how many DCs (up)")
	if cli.IsHelp(args) {
		return cli.Parse(fs, []string{"-h"}, c.stdout, c.stderr)
	}
	if len(args) == 0 || (args[0] != "up" && args[0] != "down") {
		return fmt.Errorf("want up or down (see mailtick-dev stack -h)")
	}
	if err := cli.Parse(fs, args[1:], c.stdout, c.stderr); err != nil {
		return err
	}
	if args[0] == "up" {
		return localstack.Up(ctx, *dir, *dcs, c.stdout)
	}
	return localstack.Down(*dir, time.Minute)
}
