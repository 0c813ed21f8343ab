// Command mailtick is the operators' companion CLI of the mailtick Telegraf
// build. It only parses flags; the work is done in internal packages.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/influxdata/kapacitor/udf/agent"

	"github.com/mailtick/mailtick/internal/check"
	"github.com/mailtick/mailtick/internal/cli"
	"github.com/mailtick/mailtick/internal/deliv"
	"github.com/mailtick/mailtick/internal/gen"
	"github.com/mailtick/mailtick/internal/influxq"
	"github.com/mailtick/mailtick/internal/kapacitor/latencyhist"
	"github.com/mailtick/mailtick/internal/kapacitor/spam"
	"github.com/mailtick/mailtick/internal/kapacitor/tasks"
	"github.com/mailtick/mailtick/internal/kapacitor/udf"
	"github.com/mailtick/mailtick/internal/reconcile"
	"github.com/mailtick/mailtick/internal/report"
	"github.com/mailtick/mailtick/internal/sla"
	"github.com/mailtick/mailtick/internal/trace"
)

const usage = `mailtick — the operators' CLI of mailtick

Usage:
  mailtick gen [flags]     generate mailer events into nsqd or an NDJSON file
  mailtick tasks plan|apply|list|prune -c tasks.toml [--url URL] [--var [task.]var=value ...]
                           deploy the versioned TICKscripts to Kapacitor
  mailtick sla [flags] RANGE...
                           latency quantiles and SLA shares over any range, from central
  mailtick deliverability [flags] RANGE...
                           delivered, bounce, complaint and deferral rates and the
                           reasons mail did not arrive, over any range, from central
  mailtick udf mail_latency_hist|mail_spam
                           the Kapacitor UDFs of tickscripts/mail_latency_hist.tick
                           and mail_spam.tick (run by kapacitord, see the
                           tickscripts README)
  mailtick rollups rebuild --from T --to T [flags]
                           recompute every rollup of a range from the DC's raw events
                           (after restoring a DC database from a backup)
  mailtick trace [flags] (--message-id ID | --queue-id ID | --recipient ADDR | --sender ADDR)
                           what happened to a message: its timeline across the mailer's,
                           the MTA's and the providers' events, from a DC's raw events
  mailtick check volume [flags]
                           Nagios / Icinga check of the mail volume of a DC (exit 0/1/2/3)

Run "mailtick <command> -h" for the flags of a command.
`

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// run runs the command line args (without the program's name) and
// returns the exit code.
func run(args []string, stdout, stderr io.Writer) int {
	c := command{stdout: stdout, stderr: stderr}
	return cli.Run("mailtick", usage, args, map[string]cli.Command{
		"gen":            cli.Plain(c.gen),
		"sla":            cli.Plain(func(_ context.Context, args []string) error { return c.sla(args) }),
		"deliverability": cli.Plain(func(_ context.Context, args []string) error { return c.deliverability(args) }),
		"udf":            cli.Plain(func(_ context.Context, args []string) error { return c.udf(args) }),
		"tasks":          cli.Plain(func(_ context.Context, args []string) error { return c.tasks(args) }),
		"check":          func(_ context.Context, args []string) (int, error) { return c.check(args) },
		"rollups":        cli.Plain(func(_ context.Context, args []string) error { return c.rollups(args) }),
		"trace":          cli.Plain(func(_ context.Context, args []string) error { return c.trace(args) }),
	}, stdout, stderr)
}

// command holds the standard output and error the subcommands write to.
type command struct {
	stdout, stderr io.Writer
}

// parse parses a subcommand's flags: -h or --help prints the usage to
// stdout and returns flag.ErrHelp (exit code 0).
func (c command) parse(fs *flag.FlagSet, args []string) error {
	return cli.Parse(fs, args, c.stdout, c.stderr)
}

const udfUsage = `Usage: mailtick udf mail_latency_hist|mail_spam

Serves a Kapacitor UDF on stdin and stdout, as kapacitord starts it
(declared in kapacitor.conf's [udf.functions], see the tickscripts README).
Each UDF has the name of its TICKscript and of the measurement it writes:
mail_latency_hist (tickscripts/mail_latency_hist.tick) and mail_spam
(tickscripts/mail_spam.tick).
`

// udfs are the Kapacitor UDFs, by the name kapacitor.conf declares them
// under and gives as the argument.
var udfs = map[string]func(out chan<- *agent.Response, log io.Writer) agent.Handler{
	"mail_latency_hist": func(out chan<- *agent.Response, log io.Writer) agent.Handler { return latencyhist.New(out, log) },
	"mail_spam":         func(out chan<- *agent.Response, log io.Writer) agent.Handler { return spam.New(out, log) },
}

// udf serves one of the Kapacitor UDFs on the process's stdin and stdout.
func (c command) udf(args []string) error {
	for i := range args {
		if cli.IsHelp(args[i:]) { // no flags: help anywhere
			fmt.Fprint(c.stdout, udfUsage)
			return flag.ErrHelp
		}
	}
	name, err := udfName(args)
	if err != nil {
		return err
	}
	if name != strings.Join(args, " ") {
		// Kapacitor logs a UDF's stderr.
		fmt.Fprintf(c.stderr, "mailtick udf %s: deprecated, serving %s: %s\n", strings.Join(args, " "), name, udfRenamed)
	}
	h := udfs[name]
	return udf.Serve(os.Stdin, os.Stdout, func(out chan<- *agent.Response) agent.Handler { return h(out, c.stderr) })
}

// udfName is the UDF args name. The arguments of 0.3.0 (none, "spam")
// still serve theirs, so that kapacitord, which starts every declared UDF
// as it starts and refuses to start if one fails, keeps running with the
// kapacitor.conf of 0.3.0 after an upgrade; the TICKscripts of this
// version need the new names declared.
func udfName(args []string) (string, error) {
	switch {
	case len(args) == 0:
		return "mail_latency_hist", nil
	case len(args) == 1 && args[0] == "spam":
		return "mail_spam", nil
	case len(args) == 1 && udfs[args[0]] != nil:
		return args[0], nil
	}
	return "", fmt.Errorf("invalid udf arguments %q: want mail_latency_hist or mail_spam; %s", args, udfRenamed)
}

const udfRenamed = `declare them in kapacitor.conf as [udf.functions.mail_latency_hist] args = ["udf", "mail_latency_hist"] ` +
	`and [udf.functions.mail_spam] args = ["udf", "mail_spam"] (renamed from mailtick_hist and mailtick_spam after 0.3.0)`

func (c command) gen(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("gen", flag.ContinueOnError)
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
	if err := c.parse(fs, args); err != nil {
		return err
	}

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
	fmt.Fprintf(c.stderr, "%s\n", summary)
	return err
}

const tasksUsage = `Usage: mailtick tasks plan|apply|list|prune -c tasks.toml [--url URL] [--var [task.]var=value ...]

Deploys the versioned TICKscripts of tasks.toml to Kapacitor: plan shows
what apply would change, apply changes it, list shows what runs and any
drift from the file, prune also removes managed tasks no longer in it.
`

func (c command) tasks(args []string) error {
	if len(args) == 0 {
		return fmt.Errorf("want plan, apply, list or prune (see mailtick tasks -h)")
	}
	verb := args[0]
	fs := flag.NewFlagSet("tasks "+verb, flag.ContinueOnError)
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), tasksUsage+"\nFlags:\n")
		fs.PrintDefaults()
	}
	path := fs.String("c", "tasks.toml", "the tasks file")
	var opt tasks.Options
	fs.StringVar(&opt.URL, "url", "", "Kapacitor's URL, over [kapacitor] url")
	fs.Func("var", "var=value or task.var=value over tasks.toml (addresses, paths, test speed); repeatable", func(s string) error {
		o, err := tasks.ParseOverride(s)
		opt.Overrides = append(opt.Overrides, o)
		return err
	})
	if cli.IsHelp(args) {
		return c.parse(fs, []string{"-h"})
	}
	if err := c.parse(fs, args[1:]); err != nil {
		return err
	}
	opt.Warn = func(w string) { fmt.Fprintf(c.stderr, "mailtick tasks: warning: %s\n", w) }
	switch verb {
	case "plan", "apply", "prune":
		opt.PlanTo, opt.DryRun = c.stdout, verb == "plan"
		_, _, err := tasks.ApplyFile(*path, verb == "prune", opt)
		return err
	case "list":
		f, want, err := tasks.Load(*path, opt)
		if err != nil {
			return err
		}
		kc, err := f.Client()
		if err != nil {
			return err
		}
		list, err := tasks.List(kc, f, want)
		if err != nil {
			return err
		}
		tasks.PrintList(c.stdout, list)
		return nil
	}
	return fmt.Errorf("unknown verb %q: want plan, apply, list or prune", verb)
}

const checkUsage = `Usage: mailtick check volume --dc DC --direction DIR [flags]

A Nagios / Icinga plugin: counts a DC's raw events of one direction over
--window and prints one status line with perfdata; exit code 0 (OK),
1 (WARNING), 2 (CRITICAL) or 3 (UNKNOWN: InfluxDB cannot be asked, or bad
usage).
`

// check prints one status line and returns the plugin exit code (0 and
// flag.ErrHelp for help).
func (c command) check(args []string) (int, error) {
	fs := flag.NewFlagSet("check volume", flag.ContinueOnError)
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), checkUsage+"\nFlags:\n")
		fs.PrintDefaults()
	}
	v := check.Volume{}
	fs.StringVar(&v.Database, "db", "mail", "database of the raw events")
	connect := influxFlags(fs, 8*time.Second, "how long to wait for InfluxDB (below the monitoring system's own check timeout)")
	fs.StringVar(&v.Measurement, "measurement", "mail_event", "measurement of the raw events")
	fs.StringVar(&v.DC, "dc", "", "DC (tag dc)")
	fs.StringVar(&v.Direction, "direction", "", "inbound or outbound (tag direction)")
	fs.DurationVar(&v.Window, "window", 5*time.Minute, "how far back to count")
	fs.Int64Var(&v.WarnBelow, "warn-below", -1, "WARNING below this many mails (-1: off)")
	fs.Int64Var(&v.CritBelow, "crit-below", -1, "CRITICAL below this many mails (-1: off)")
	fs.Int64Var(&v.WarnAbove, "warn-above", -1, "WARNING above this many mails (-1: off)")
	fs.Int64Var(&v.CritAbove, "crit-above", -1, "CRITICAL above this many mails (-1: off)")
	if cli.IsHelp(args) {
		return 0, c.parse(fs, []string{"-h"})
	}
	if len(args) == 0 || args[0] != "volume" {
		fmt.Fprintln(c.stdout, "MAIL VOLUME UNKNOWN - usage: mailtick check volume --dc DC --direction DIR [flags]")
		return int(check.Unknown), nil
	}
	if err := c.parse(fs, args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0, err
		}
		fmt.Fprintf(c.stdout, "MAIL VOLUME UNKNOWN - %v\n", err)
		return int(check.Unknown), nil
	}
	q, err := connect()
	if err != nil {
		fmt.Fprintf(c.stdout, "MAIL VOLUME UNKNOWN - %v\n", err)
		return int(check.Unknown), nil
	}
	v.Querier = q
	res := v.Run()
	fmt.Fprintln(c.stdout, res.Line)
	return int(res.Status), nil
}

// influxFlags adds --url, --username, --password-file and --timeout to fs;
// the returned function gives the querier they describe (the password from
// the file, else $INFLUX_PASSWORD).
func influxFlags(fs *flag.FlagSet, timeout time.Duration, timeoutUsage string) func() (influxq.Querier, error) {
	var q influxq.Querier
	fs.StringVar(&q.URL, "url", "http://127.0.0.1:8086", "InfluxDB URL")
	fs.StringVar(&q.Username, "username", "", "InfluxDB user (the password comes from --password-file or $INFLUX_PASSWORD)")
	passwordFile := fs.String("password-file", "", "file holding the InfluxDB password")
	fs.DurationVar(&q.Timeout, "timeout", timeout, timeoutUsage)
	return func() (influxq.Querier, error) {
		q.Password = os.Getenv("INFLUX_PASSWORD")
		if *passwordFile != "" {
			b, err := os.ReadFile(*passwordFile)
			if err != nil {
				return q, fmt.Errorf("reading --password-file: %w", err)
			}
			q.Password = strings.TrimRight(string(b), "\r\n")
		}
		return q, nil
	}
}

const rollupsUsage = `Usage: mailtick rollups rebuild --from T --to T [flags]

Recomputes every rollup window (mail_counts and mail_deliv 1m/1h/1d, mail_latency 1m,
mail_latency_hist 1m/1h/1d/1w/1mo) that holds a moment of [--from, --to)
from the DC's raw events, level by level, whatever the rollups hold: what
to run after restoring a DC database from a backup, or after changing the
raw events by hand. The agent's reconciler (inputs.mailrollups) does the
same for late events on its own, window by window. The windows are
written to the DC's rollup database and, for central, to --agent: the
agent's influxdb_listener, where they pass piiscrub and rollupfwd as
Kapacitor's do. --tz and --group-by must be tasks.toml's tz and group_by.

Flags:
`

func (c command) rollups(args []string) error {
	fs := flag.NewFlagSet("rollups rebuild", flag.ContinueOnError)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), rollupsUsage)
		fs.PrintDefaults()
	}
	connect := influxFlags(fs, time.Minute, "of each request to the DC InfluxDB")
	fromS := fs.String("from", "", "start of the range, RFC 3339 (required)")
	toS := fs.String("to", "", "end of the range, RFC 3339, excluded (default: now)")
	agentURL := fs.String("agent", "", "the agent's influxdb_listener URL, for the central copy (empty: the DC database only)")
	rawDB := fs.String("raw-db", "mail", "the raw events' database")
	rollupDB := fs.String("rollup-db", "mail_rollups", "the local rollups' database")
	tz := fs.String("tz", "UTC", "tasks.toml's tz")
	groupBy := fs.String("group-by", "dc,direction", "tasks.toml's group_by")
	if cli.IsHelp(args) {
		return c.parse(fs, []string{"-h"})
	}
	if len(args) == 0 || args[0] != "rebuild" {
		return fmt.Errorf("invalid rollups command %q: want rebuild (see mailtick rollups rebuild -h)", args)
	}
	if err := c.parse(fs, args[1:]); err != nil {
		return err
	}
	from, to, err := timeRange(*fromS, *toS, 0)
	if err != nil {
		return err
	}
	loc, err := time.LoadLocation(*tz)
	if err != nil {
		return fmt.Errorf("invalid --tz %q: %w", *tz, err)
	}
	q, err := connect()
	if err != nil {
		return err
	}
	var central []reconcile.Point
	r, err := reconcile.New(q, reconcile.Options{RawDB: *rawDB, RollupDB: *rollupDB, Loc: loc, GroupBy: list(*groupBy),
		Emit: func(p reconcile.Point) { central = append(central, p) }})
	if err != nil {
		return err
	}
	st, err := r.Rebuild(from, to)
	if err != nil {
		return err
	}
	if *agentURL != "" {
		if err := reconcile.Write(influxq.Querier{URL: *agentURL, Timeout: q.Timeout}, *rollupDB, central); err != nil {
			return fmt.Errorf("sending to --agent: %w", err)
		}
	}
	fmt.Fprintf(c.stdout, "rebuilt %s..%s: %d windows checked, recomputed %v; %d queries, %d points read; %d points for central\n",
		from.Format(time.RFC3339), to.Format(time.RFC3339), st.WindowsChecked, st.Recomputed, st.Queries, st.PointsRead, len(central))
	return nil
}

const slaUsage = `Usage: mailtick sla [flags] RANGE...

Latency quantiles (p50 p90 p95 p99 p99.9, ms), shares within thresholds
and counts, from the latency histograms (mail_latency_hist) of the central
database, within 1%% of the exact values. RANGE is YYYY-MM (a calendar
month), YYYY-MM-DD (a day) or FROM..TO (days or RFC 3339 times, TO
excluded), in --tz. Two ranges are compared side by side with B/A;
--months gives one row per month. --by stage reads Postfix's delays by
stage instead (mail_stage_hist: before_qmgr, in_qmgr, conn_setup,
transmission): which stage breaks the SLA.

Examples:
  mailtick sla --by dc 2026-11                          # the month's p99 per DC
  mailtick sla --by dc,stage --dc dc1 2026-11           # where the time goes
  mailtick sla --within 60s --dc dc1 2026-11-02..2026-11-11
  mailtick sla --months 2026-06..2026-11 --format csv   # month by month
  mailtick sla 2026-10-05..2026-10-12 2026-10-19..2026-10-26  # release A vs B

Flags:
`

func (c command) sla(args []string) error {
	fs := flag.NewFlagSet("sla", flag.ContinueOnError)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), slaUsage)
		fs.PrintDefaults()
	}
	connect := influxFlags(fs, 30*time.Second, "how long to wait for InfluxDB")
	db := fs.String("db", "mail_central", "central database")
	rf := addReportFlags(fs, "sla", "time zone of the ranges and of the histograms' days, weeks and months (tasks.toml var tz)")
	by := fs.String("by", "dc,direction", "split by these tags (dc, direction, customer, stage; empty: one total)")
	dcs := fs.String("dc", "", "only these DCs (comma-separated)")
	directions := fs.String("direction", "", "only these directions (comma-separated)")
	within := fs.String("within", "", "SLA thresholds: the share of messages within each (comma-separated durations, e.g. 60s,5m)")
	if err := c.parse(fs, args); err != nil {
		return err
	}
	ranges, loc, err := rf.ranges(fs.Args())
	if err != nil {
		return err
	}
	var thresholds []time.Duration
	for _, s := range list(*within) {
		d, err := time.ParseDuration(s)
		if err != nil || d <= 0 {
			return fmt.Errorf("invalid --within %q: want positive durations like 60s,5m", s)
		}
		thresholds = append(thresholds, d)
	}
	q, err := connect()
	if err != nil {
		return err
	}
	f := sla.Filter{DCs: list(*dcs), Directions: list(*directions), By: list(*by)}
	results, err := sla.Source{Querier: q, Database: *db, Location: loc}.Answer(ranges, f, thresholds)
	if err != nil {
		return err
	}
	return rf.write(c.stdout, sla.Table(results), f.By, ranges, func(w io.Writer) error { return report.WriteJSON(w, results) })
}

const deliverabilityUsage = `Usage: mailtick deliverability [flags] RANGE...

Deliverability from the deliverability counts (mail_deliv) of the central
database, exactly: sent (delivered, bounced and expired), the delivered,
bounce, complaint and deferral rates, and the top reasons mail did not
arrive (Sisimai's taxonomy, see processors.mailclassify), by customer,
sending domain, mailbox provider or DC. The rates: delivered and bounce
(bounced and expired) of sent; complaint of delivered (as SES and Gmail
count them); deferral, the deferred attempts of all attempts. RANGE is as
for mailtick sla, in --tz; two ranges are compared side by side with B/A;
--months gives one row per month.

Examples:
  mailtick deliverability --by customer 2026-11
  mailtick deliverability --by rcpt_provider --customer c1042 2026-11-02..2026-11-09
  mailtick deliverability --by sender_domain --months 2026-06..2026-11 --format csv
  mailtick deliverability 2026-10 2026-11                # this month against the last

Flags:
`

func (c command) deliverability(args []string) error {
	fs := flag.NewFlagSet("deliverability", flag.ContinueOnError)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), deliverabilityUsage)
		fs.PrintDefaults()
	}
	connect := influxFlags(fs, 30*time.Second, "how long to wait for InfluxDB")
	db := fs.String("db", "mail_central", "central database")
	rf := addReportFlags(fs, "deliverability", "time zone of the ranges (the counts' windows are UTC days, hours and minutes)")
	by := fs.String("by", "", "split by these tags ("+strings.Join(deliv.Groupable, ", ")+"; empty: one total)")
	only := map[string]*string{}
	for _, tag := range deliv.Groupable {
		only[tag] = fs.String(strings.ReplaceAll(tag, "_", "-"), "", "only these values of "+tag+" (comma-separated)")
	}
	top := fs.Int("top", 5, "reasons listed per row")
	if err := c.parse(fs, args); err != nil {
		return err
	}
	ranges, _, err := rf.ranges(fs.Args())
	if err != nil {
		return err
	}
	if *top <= 0 {
		return fmt.Errorf("invalid --top %d: want at least 1", *top)
	}
	q, err := connect()
	if err != nil {
		return err
	}
	f := deliv.Filter{Only: map[string][]string{}, By: list(*by), Top: *top}
	for tag, v := range only {
		f.Only[tag] = list(*v)
	}
	results, err := deliv.Source{Querier: q, Database: *db}.Answer(ranges, f)
	if err != nil {
		return err
	}
	return rf.write(c.stdout, deliv.Table(results), f.By, ranges, func(w io.Writer) error { return report.WriteJSON(w, results) })
}

// reportFlags are the flags the reports share: the ranges' zone,
// --months and --format.
type reportFlags struct {
	cmd                string
	tz, months, format *string
}

func addReportFlags(fs *flag.FlagSet, cmd, tzUsage string) *reportFlags {
	return &reportFlags{
		cmd:    cmd,
		tz:     fs.String("tz", "UTC", tzUsage),
		months: fs.String("months", "", "one range per calendar month: YYYY-MM..YYYY-MM"),
		format: fs.String("format", "text", "text, csv or json"),
	}
}

// ranges are --months' and the arguments' ranges, in --tz.
func (r *reportFlags) ranges(args []string) ([]report.Range, *time.Location, error) {
	if *r.format != "text" && *r.format != "csv" && *r.format != "json" {
		return nil, nil, fmt.Errorf("invalid --format %q: want text, csv or json", *r.format)
	}
	loc, err := time.LoadLocation(*r.tz)
	if err != nil {
		return nil, nil, fmt.Errorf("invalid --tz %q: %w", *r.tz, err)
	}
	var ranges []report.Range
	if *r.months != "" {
		a, b, _ := strings.Cut(*r.months, "..")
		if ranges, err = report.Months(a, b, loc); err != nil {
			return nil, nil, err
		}
	}
	for _, s := range args {
		rg, err := report.ParseRange(s, loc)
		if err != nil {
			return nil, nil, err
		}
		ranges = append(ranges, rg)
	}
	if len(ranges) == 0 {
		return nil, nil, fmt.Errorf("give a RANGE or --months (see mailtick %s -h)", r.cmd)
	}
	return ranges, loc, nil
}

// write writes a report in --format.
func (r *reportFlags) write(w io.Writer, t report.Table, by []string, ranges []report.Range, writeJSON func(io.Writer) error) error {
	switch *r.format {
	case "csv":
		return t.WriteCSV(w, by)
	case "json":
		return writeJSON(w)
	}
	return t.WriteText(w, by, ranges)
}

// list splits a comma-separated flag value, dropping empty items.
func list(s string) []string {
	var out []string
	for _, v := range strings.Split(s, ",") {
		if v = strings.TrimSpace(v); v != "" {
			out = append(out, v)
		}
	}
	return out
}

const traceUsage = `Usage: mailtick trace [flags] (--message-id ID | --queue-id ID | --recipient ADDR | --sender ADDR)

What happened to a message, from one DC's database of raw events (where
addresses are in clear: run it in the DC): every event that matches, and
those of the queue ids and message-ids they carry (the MTA's lines of the
same queue id, the mailer's and the providers' events of the same
message-id), oldest first, with the time since the previous one. Several
keys narrow the lookup (all must match). Each lookup reads every event of
the range (the keys are not indexed): keep --from and --to close to the
message's time.

Flags:
`

// trace prints a message's timeline from a DC's raw events.
func (c command) trace(args []string) error {
	fs := flag.NewFlagSet("trace", flag.ContinueOnError)
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), traceUsage)
		fs.PrintDefaults()
	}
	connect := influxFlags(fs, time.Minute, "how long to wait for InfluxDB")
	db := fs.String("db", "mail", "the DC's database of raw events")
	var k trace.Key
	fs.StringVar(&k.MessageID, "message-id", "", "the Message-ID (with or without <>)")
	fs.StringVar(&k.QueueID, "queue-id", "", "the MTA's queue id (Postfix) or message id (Exim)")
	fs.StringVar(&k.Recipient, "recipient", "", "a recipient's address")
	fs.StringVar(&k.Sender, "sender", "", "the sender's address")
	from := fs.String("from", "", "start of the range (RFC 3339; default: 24h before --to)")
	to := fs.String("to", "", "end of the range (RFC 3339; default: now)")
	format := fs.String("format", "text", "text or json")
	if err := c.parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q: the keys are flags", fs.Args())
	}
	if *format != "text" && *format != "json" {
		return fmt.Errorf("invalid --format %q: want text or json", *format)
	}
	start, end, err := timeRange(*from, *to, 24*time.Hour)
	if err != nil {
		return err
	}
	q, err := connect()
	if err != nil {
		return err
	}
	steps, err := trace.Source{Querier: q, Database: *db}.Trace(k, start, end)
	if err != nil {
		return err
	}
	if *format == "json" {
		return json.NewEncoder(c.stdout).Encode(steps)
	}
	return trace.Write(c.stdout, steps)
}

// timeRange reads --from and --to (RFC 3339): to defaults to now, from to
// span before to (a span of 0: --from is required); from must come first.
func timeRange(fromS, toS string, span time.Duration) (from, to time.Time, err error) {
	to = time.Now()
	if toS != "" {
		if to, err = time.Parse(time.RFC3339Nano, toS); err != nil {
			return from, to, fmt.Errorf("invalid --to %q: want an RFC 3339 time, e.g. 2026-11-23T16:00:00Z", toS)
		}
	}
	switch {
	case fromS != "":
		if from, err = time.Parse(time.RFC3339Nano, fromS); err != nil {
			return from, to, fmt.Errorf("invalid --from %q: want an RFC 3339 time, e.g. 2026-11-23T16:00:00Z", fromS)
		}
	case span > 0:
		from = to.Add(-span)
	default:
		return from, to, fmt.Errorf("--from is required")
	}
	if !from.Before(to) {
		return from, to, fmt.Errorf("invalid range --from %s --to %s: from must come first", from.Format(time.RFC3339), to.Format(time.RFC3339))
	}
	return from, to, nil
}
