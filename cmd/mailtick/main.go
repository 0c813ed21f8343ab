// Command mailtick is the operators' companion CLI of the mailtick Telegraf
// build. It only parses flags; the work is done in internal packages.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"github.com/mailtick/mailtick/internal/cli"
	"os"
	"strings"
	"time"

	"github.com/mailtick/mailtick/internal/check"
	"github.com/mailtick/mailtick/internal/gen"
	"github.com/mailtick/mailtick/internal/rollup"
	"github.com/mailtick/mailtick/internal/tasks"
)

const usage = `mailtick — the operators' CLI of mailtick

Usage:
  mailtick gen [flags]     generate mailer events into nsqd or an NDJSON file
  mailtick tasks plan|apply|list|prune -c tasks.toml [--url URL] [--var [task.]var=value ...]
                           deploy the versioned TICKscripts to Kapacitor
  mailtick udf            the Kapacitor UDF of tickscripts/mail_latency_hist.tick
                           (run by kapacitord, see the tickscripts README)
  mailtick check volume [flags]
                           Nagios / Icinga check of the mail volume of a DC (exit 0/1/2/3)

Run "mailtick <command> -h" for the flags of a command.
`

func main() {
	os.Exit(cli.Run("mailtick", usage, os.Args[1:], map[string]cli.Command{
		"gen":   cli.Plain(runGen),
		"udf":   cli.Plain(func(context.Context, []string) error { return rollup.Serve(os.Stdin, os.Stdout, os.Stderr) }),
		"tasks": cli.Plain(func(_ context.Context, args []string) error { return runTasks(args) }),
		"check": func(_ context.Context, args []string) (int, error) { return runCheck(args), nil },
	}, os.Stdout, os.Stderr))
}

func runGen(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("gen", flag.ExitOnError)
	var (
		cfg   gen.Config
		nsqd  = fs.String("nsqd", "", "nsqd TCP address to publish to (e.g. 127.0.0.1:4150)")
		topic = fs.String("topic", "mail_events", "NSQ topic")
		out   = fs.String("out", "", "write NDJSON to this file instead (- for stdout)")
		rate  = fs.Float64("rate", 0, "messages per second (0: as fast as possible)")
		batch = fs.Int("batch", 100, "messages per MPUB")
		start = fs.String("start", "", "RFC3339 time of the first event (default: now)")
	)
	fs.IntVar(&cfg.Count, "count", 1000, "messages to generate (0: until interrupted)")
	fs.Uint64Var(&cfg.Seed, "seed", 1, "seed; the same flags give the same events")
	fs.DurationVar(&cfg.Interval, "interval", time.Millisecond, "spacing of event times")
	fs.IntVar(&cfg.Senders, "senders", 1000, "distinct senders")
	fs.IntVar(&cfg.Recipients, "recipients", 10000, "distinct recipients")
	fs.IntVar(&cfg.Customers, "customers", 50, "distinct customers")
	fs.IntVar(&cfg.Mailers, "mailers", 8, "distinct mailers")
	fs.StringVar(&cfg.DC, "dc", "dc1", "DC name used in mailer host names")
	fs.Float64Var(&cfg.Bad, "bad", 0, "fraction of bad messages (malformed, wrong type, missing time, oversized)")
	fs.Parse(args)

	if (*nsqd == "") == (*out == "") {
		return fmt.Errorf("give exactly one of --nsqd or --out")
	}
	if *start != "" {
		t, err := time.Parse(time.RFC3339Nano, *start)
		if err != nil {
			return fmt.Errorf("invalid --start %q: %w", *start, err)
		}
		cfg.Start = t
	}
	g, err := gen.New(cfg)
	if err != nil {
		return err
	}
	var sink gen.Sink
	if *nsqd != "" {
		sink, err = gen.NewNSQSink(*nsqd, *topic)
	} else {
		sink, err = gen.NewFileSink(*out)
	}
	if err != nil {
		return err
	}
	sum, err := gen.Run(ctx, g, sink, *rate, *batch, nil)
	if cerr := sink.Close(); err == nil {
		err = cerr
	}
	summary, _ := json.Marshal(sum)
	fmt.Fprintf(os.Stderr, "%s\n", summary)
	return err
}

func runTasks(args []string) error {
	if len(args) == 0 {
		return fmt.Errorf("want plan, apply, list or prune")
	}
	verb := args[0]
	fs := flag.NewFlagSet("tasks "+verb, flag.ExitOnError)
	path := fs.String("c", "tasks.toml", "the tasks file")
	var opt tasks.Options
	fs.StringVar(&opt.URL, "url", "", "Kapacitor's URL, over [kapacitor] url")
	fs.Func("var", "var=value or task.var=value over tasks.toml (addresses, paths, test speed); repeatable", func(s string) error {
		o, err := tasks.ParseOverride(s)
		opt.Overrides = append(opt.Overrides, o)
		return err
	})
	fs.Parse(args[1:])
	f, want, err := tasks.Load(*path, opt)
	if err != nil {
		return err
	}
	c, err := f.Client()
	if err != nil {
		return err
	}
	switch verb {
	case "plan", "apply", "prune":
		plan, err := tasks.Plan(c, f, want, verb == "prune")
		if err != nil {
			return err
		}
		tasks.PrintPlan(os.Stdout, plan)
		if verb == "plan" {
			return nil
		}
		return tasks.Apply(c, plan)
	case "list":
		list, err := tasks.List(c, f, want)
		if err != nil {
			return err
		}
		tasks.PrintList(os.Stdout, list)
		return nil
	}
	return fmt.Errorf("unknown verb %q: want plan, apply, list or prune", verb)
}

// runCheck prints one status line and returns the plugin exit code.
func runCheck(args []string) int {
	if len(args) == 0 || args[0] != "volume" {
		fmt.Println("MAIL VOLUME UNKNOWN - usage: mailtick check volume --dc DC --direction DIR [flags]")
		return int(check.Unknown)
	}
	fs := flag.NewFlagSet("check volume", flag.ContinueOnError)
	v := check.Volume{}
	fs.StringVar(&v.URL, "url", "http://127.0.0.1:8086", "InfluxDB URL")
	fs.StringVar(&v.Database, "db", "mail", "database of the raw events")
	fs.StringVar(&v.Username, "username", "", "InfluxDB user (the password comes from --password-file or $INFLUX_PASSWORD)")
	passwordFile := fs.String("password-file", "", "file holding the InfluxDB password")
	fs.DurationVar(&v.Timeout, "timeout", 8*time.Second, "how long to wait for InfluxDB (below the monitoring system's own check timeout)")
	fs.StringVar(&v.Measurement, "measurement", "mail_event", "measurement of the raw events")
	fs.StringVar(&v.DC, "dc", "", "DC (tag dc)")
	fs.StringVar(&v.Direction, "direction", "", "inbound or outbound (tag direction)")
	fs.DurationVar(&v.Window, "window", 5*time.Minute, "how far back to count")
	fs.Int64Var(&v.WarnBelow, "warn-below", -1, "WARNING below this many mails (-1: off)")
	fs.Int64Var(&v.CritBelow, "crit-below", -1, "CRITICAL below this many mails (-1: off)")
	fs.Int64Var(&v.WarnAbove, "warn-above", -1, "WARNING above this many mails (-1: off)")
	fs.Int64Var(&v.CritAbove, "crit-above", -1, "CRITICAL above this many mails (-1: off)")
	if err := fs.Parse(args[1:]); err != nil {
		fmt.Printf("MAIL VOLUME UNKNOWN - %v\n", err)
		return int(check.Unknown)
	}
	v.Password = os.Getenv("INFLUX_PASSWORD")
	if *passwordFile != "" {
		b, err := os.ReadFile(*passwordFile)
		if err != nil {
			fmt.Printf("MAIL VOLUME UNKNOWN - reading --password-file: %v\n", err)
			return int(check.Unknown)
		}
		v.Password = strings.TrimRight(string(b), "\r\n")
	}
	res := v.Run()
	fmt.Println(res.Line)
	return int(res.Status)
}
