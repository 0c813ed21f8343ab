package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/mailtick/mailtick/internal/gen"
	"github.com/mailtick/mailtick/internal/testutil/stack"
	"github.com/mailtick/mailtick/plugins/common/agentconf"
)

// Options set the size of a benchmark run.
type Options struct {
	Events     int    // events drained by each agent
	Pairs      int    // times stock and mailevents drain into discard, alternating (the machine's speed drifts)
	BatchSizes []int  // metric_batch_size values mailevents also drains with, into discard
	Raw        bool   // also the full raw path into InfluxDB, stock beside the shipped telegraf.conf
	InFlight   int    // events held in flight for the memory figure (0: skip)
	Seed       uint64 // generator seed
	Dir        string // work folder (default: a temporary one, removed after)
	Profile    string // if set, a CPU profile of each drain is written here
}

// Result is one agent's figures.
type Result struct {
	Name      string
	Output    string // discard, or influxdb (the raw path)
	Pair      int    // which of the alternating stock/mailevents pairs into discard (from 0)
	BatchSize int    // the agent's metric_batch_size
	Events    int
	Wall      time.Duration // from 5% of the events finished to 95% (see drain)
	CPU       time.Duration // user+system CPU of the agent in that span
	NSQDCPU   time.Duration // nsqd's, in that span
	PeakRSS   int64         // bytes (VmHWM)
}

// finish reads the CPU the process pid used since cpu0, and its peak RSS.
func (r *Result) finish(pid int, cpu0 time.Duration) error {
	cpu1, err := cpuTime(pid)
	if err != nil {
		return err
	}
	r.CPU = cpu1 - cpu0
	r.PeakRSS, err = procStatus(pid, "VmHWM")
	return err
}

// PerCPUSecond is events per CPU-second.
func (r Result) PerCPUSecond() float64 { return float64(r.Events) / r.CPU.Seconds() }

// PerWallSecond is events per wall-clock second.
func (r Result) PerWallSecond() float64 { return float64(r.Events) / r.Wall.Seconds() }

// Report is what a run measured.
type Report struct {
	Agent       string   // the shipped telegraf.conf's [agent] settings every agent ran with
	Results     []Result // stock first, then mailevents, per output
	InFlight    int      // events held by the outputs in the memory scenario
	InFlightRSS int64    // bytes (VmRSS) with InFlight events held
}

// Every agent runs with the [agent] table of the shipped telegraf.conf,
// only metric_batch_size (and, for the memory figure, metric_buffer_limit)
// changed where a scenario says so.
func stockConfig(agent, nsqd, channel, output string) string {
	return agent + fmt.Sprintf(`
[[inputs.nsq_consumer]]
  nsqd = [%q]
  topic = "mail_events"
  channel = %q
  max_in_flight = 2500
  max_undelivered_messages = 10000
  data_format = "json_v2"
`, nsqd, channel) + StockJSONv2For("inputs.nsq_consumer") + output
}

// maileventsConfig leaves mailevents' queue settings at their defaults,
// as the shipped telegraf.conf does, unless inFlight asks for more.
func maileventsConfig(agent, nsqd, topic, channel string, inFlight int, output string) string {
	conf := agent + fmt.Sprintf(`
[[inputs.mailevents]]
  nsqd = [%q]
  topics = [%q]
  channel = %q
`, nsqd, topic, channel)
	if inFlight > 0 {
		conf += fmt.Sprintf("  max_undelivered_messages = %d\n", inFlight)
	}
	return conf + output
}

const discard = "\n[[outputs.discard]]\n"

// Run publishes the events once into one nsqd, with one channel per
// agent, then lets each agent drain its channel alone, and measures it.
func Run(ctx context.Context, opt Options, log io.Writer) (Report, error) {
	var rep Report
	dir := opt.Dir
	if dir == "" {
		d, err := os.MkdirTemp("", "mailtick-bench-")
		if err != nil {
			return rep, err
		}
		defer os.RemoveAll(d)
		dir = d
	}
	root, err := stack.Root()
	if err != nil {
		return rep, err
	}
	shippedPath := filepath.Join(root, "telegraf.conf")
	shipped, err := os.ReadFile(shippedPath)
	if err != nil {
		return rep, err
	}
	agent, err := agentTable(string(shipped))
	if err != nil {
		return rep, err
	}
	rep.Agent = agentSettings(agent)
	// The batch as mailevents reads it from the agent's configuration.
	batch, err := agentconf.LargestBatch([]string{shippedPath})
	if err != nil {
		return rep, err
	}
	fmt.Fprintf(log, "bench: agent settings of telegraf.conf: %s\n", rep.Agent)

	lookupd, err := stack.StartNSQLookupd(filepath.Join(dir, "nsqlookupd"))
	if err != nil {
		return rep, err
	}
	defer lookupd.Stop(10 * time.Second)
	// Everything in memory: disk queues would measure nsqd, not the agents.
	nsqd, err := stack.StartNSQD(filepath.Join(dir, "nsqd"), stack.NSQDOptions{
		Lookupd: []string{lookupd.TCPAddr},
		Args:    []string{fmt.Sprintf("--mem-queue-size=%d", 2*max(opt.Events, opt.InFlight))}})
	if err != nil {
		return rep, err
	}
	defer nsqd.Stop(10 * time.Second)

	type scenario struct {
		res     Result
		channel string
		conf    string
		env     []string
	}
	var runs []scenario
	shippedBatch := batch.Size
	for pair := range max(opt.Pairs, 1) {
		stockCh, oursCh := "stock", "discard"
		if pair > 0 {
			stockCh, oursCh = fmt.Sprintf("stock_%d", pair), fmt.Sprintf("discard_%d", pair)
		}
		runs = append(runs,
			scenario{Result{Name: "stock", Output: "discard", BatchSize: shippedBatch, Pair: pair}, stockCh,
				stockConfig(agent, nsqd.TCPAddr, stockCh, discard), nil},
			scenario{Result{Name: "mailevents", Output: "discard", BatchSize: shippedBatch, Pair: pair}, oursCh,
				maileventsConfig(agent, nsqd.TCPAddr, "mail_events", oursCh, 0, discard), nil})
	}
	for _, b := range opt.BatchSizes {
		if b == shippedBatch {
			continue
		}
		ch := fmt.Sprintf("discard%d", b)
		runs = append(runs, scenario{Result{Name: "mailevents", Output: "discard", BatchSize: b}, ch,
			maileventsConfig(withSetting(agent, "metric_batch_size", strconv.Itoa(b)), nsqd.TCPAddr, "mail_events", ch, 0, discard), nil})
	}
	var db *stack.InfluxDB
	if opt.Raw {
		if db, err = stack.StartInfluxDB(filepath.Join(dir, "influxdb"), "mail", "stock"); err != nil {
			return rep, err
		}
		defer db.Stop(10 * time.Second)
		port, err := stack.FreePort()
		if err != nil {
			return rep, err
		}
		out := fmt.Sprintf("\n[[outputs.influxdb]]\n  urls = [%q]\n  database = \"stock\"\n  timeout = \"10s\"\n", db.URL)
		runs = append(runs,
			scenario{Result{Name: "stock", Output: "influxdb", BatchSize: shippedBatch}, "stock_raw",
				stockConfig(agent, nsqd.TCPAddr, "stock_raw", out), nil},
			// The shipped telegraf.conf itself: its topic and channel.
			scenario{Result{Name: "mailevents", Output: "influxdb", BatchSize: shippedBatch}, "mailtick",
				string(shipped), []string{"MAILTICK_DC=bench", "NSQLOOKUPD_HTTP=" + lookupd.HTTPAddr,
					"DC_INFLUXDB_URL=" + db.URL, fmt.Sprintf("LISTEN_ADDRESS=127.0.0.1:%d", port), "MAILTICK_LISTENER_PASSWORD=bench",
					"CENTRAL_INFLUXDB_URL=" + db.URL, "MAILTICK_PII_KEY=bench-key-0123456789", "MAILTICK_PII_KEY_ID=bench",
					"SPOOL_DIR=" + filepath.Join(dir, "spool"), "MAILLOG_FILE=" + filepath.Join(dir, "no-mail.log"),
					"MAILLOG_STATE_DIR=" + filepath.Join(dir, "maillog")}})
	}

	for _, r := range runs {
		if err := createChannel(nsqd, "mail_events", r.channel); err != nil {
			return rep, err
		}
	}
	fmt.Fprintf(log, "bench: publishing %d events\n", opt.Events)
	if err := publish(ctx, nsqd, "mail_events", opt.Seed, opt.Events); err != nil {
		return rep, err
	}
	for i, r := range runs {
		fmt.Fprintf(log, "bench: %s -> %s, metric_batch_size %d\n", r.res.Name, r.res.Output, r.res.BatchSize)
		name := fmt.Sprintf("%d-%s-%s-%d", i, r.res.Name, r.res.Output, r.res.BatchSize)
		res, err := drain(ctx, r.res, filepath.Join(dir, name), r.conf, r.env, nsqd, r.channel, opt.Events, opt.Profile)
		if err != nil {
			return rep, err
		}
		fmt.Fprintf(log, "bench: %+v\n", res)
		rep.Results = append(rep.Results, res)
	}

	if opt.InFlight > 0 {
		fmt.Fprintf(log, "bench: memory with %d events in flight\n", opt.InFlight)
		rep.InFlight = opt.InFlight
		if rep.InFlightRSS, err = holdInFlight(ctx, dir, agent, shippedBatch, nsqd, opt); err != nil {
			return rep, err
		}
	}
	return rep, nil
}

// agentTable is the [agent] table of a Telegraf config, as text.
func agentTable(conf string) (string, error) {
	i := strings.Index(conf, "\n[agent]\n")
	if i < 0 {
		return "", errors.New("telegraf.conf has no [agent] table")
	}
	table := conf[i+1:]
	if j := strings.Index(table, "\n["); j >= 0 {
		table = table[:j+1]
	}
	return table, nil
}

// withSetting sets one key of an [agent] table.
func withSetting(agent, key, value string) string {
	line := regexp.MustCompile(`(?m)^\s*` + key + `\s*=.*$`)
	if line.MatchString(agent) {
		return line.ReplaceAllString(agent, "  "+key+" = "+value)
	}
	return agent + "  " + key + " = " + value + "\n"
}

// agentSettings lists an [agent] table's settings on one line.
func agentSettings(agent string) string {
	var kv []string
	for _, l := range strings.Split(agent, "\n") {
		l = strings.TrimSpace(l)
		if l == "" || l[0] == '#' || l[0] == '[' {
			continue
		}
		kv = append(kv, strings.Join(strings.Fields(l), ""))
	}
	return strings.Join(kv, " ")
}

func createChannel(nsqd *stack.NSQD, topic, channel string) error {
	for _, u := range []string{
		fmt.Sprintf("http://%s/topic/create?topic=%s", nsqd.HTTPAddr, topic),
		fmt.Sprintf("http://%s/channel/create?topic=%s&channel=%s", nsqd.HTTPAddr, topic, channel),
	} {
		resp, err := http.Post(u, "", nil)
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("POST %s: %s", u, resp.Status)
		}
	}
	return nil
}

func publish(ctx context.Context, nsqd *stack.NSQD, topic string, seed uint64, n int) error {
	_, err := gen.Publish(ctx, nsqd.TCPAddr, topic, gen.Config{Seed: seed, Count: n, Interval: time.Microsecond}, 0, 500, nil)
	return err
}

// drain runs one agent until its channel is empty and nothing is in
// flight. The figures are the steady state: from the moment 5% of the
// events are finished to the moment 95% are, so that neither the start
// (connecting, a cold heap) nor the last partial batch (which waits for
// flush_interval, a second in the shipped telegraf.conf) is counted. With
// a profile folder it also takes a CPU profile of the agent in that span.
func drain(ctx context.Context, res Result, dir, conf string, env []string, nsqd *stack.NSQD, channel string, n int, profile string) (Result, error) {
	t := &stack.Telegraf{Env: env}
	if profile != "" {
		port, err := stack.FreePort()
		if err != nil {
			return res, err
		}
		t.PprofAddr = fmt.Sprintf("127.0.0.1:%d", port)
	}
	agent, err := t.Start(dir, conf)
	if err != nil {
		return res, err
	}
	defer agent.Stop(10 * time.Second)

	edge := int64(n / 20)
	var start time.Time
	var cpu0, nsqdCPU0 time.Duration
	profiled := make(chan error, 1)
	deadline := time.Now().Add(10 * time.Minute)
	for time.Now().Before(deadline) {
		if err := ctx.Err(); err != nil {
			return res, err
		}
		st, err := nsqd.TopicStats("mail_events")
		if err != nil {
			return res, err
		}
		ch, _ := st.Channel(channel)
		now := time.Now()
		left := ch.Depth + ch.InFlight + ch.Deferred
		switch {
		case start.IsZero() && left <= int64(n)-edge:
			start = now
			if cpu0, err = cpuTime(agent.Pid()); err != nil {
				return res, err
			}
			if nsqdCPU0, err = cpuTime(nsqd.Pid()); err != nil {
				return res, err
			}
			if profile != "" {
				file := filepath.Join(profile, filepath.Base(dir)+".pprof")
				// A drain into discard lasts about two seconds; one into
				// InfluxDB several times that.
				seconds := 2
				if res.Output == "influxdb" {
					seconds = 10
				}
				go func() { profiled <- cpuProfile(agent.PprofAddr, file, seconds) }()
			}
		case !start.IsZero() && res.Wall == 0 && left <= edge:
			res.Wall = now.Sub(start)
			res.Events = n - 2*int(edge)
			if err := res.finish(agent.Pid(), cpu0); err != nil {
				return res, err
			}
			nsqdCPU, err := cpuTime(nsqd.Pid())
			if err != nil {
				return res, err
			}
			res.NSQDCPU = nsqdCPU - nsqdCPU0
		case res.Wall != 0 && left == 0:
			if profile != "" {
				if err := <-profiled; err != nil {
					return res, err
				}
				// What the drain allocated, by where (-sample_index=alloc_space).
				return res, fetch("http://"+agent.PprofAddr+"/debug/pprof/allocs", filepath.Join(profile, filepath.Base(dir)+"-allocs.pprof"))
			}
			return res, nil
		}
		select {
		case <-agent.Exited():
			return res, fmt.Errorf("%s agent exited; its log ends:\n%s", res.Name, agent.LogTail(20))
		case <-time.After(5 * time.Millisecond):
		}
	}
	return res, fmt.Errorf("%s did not drain %d events in 10 minutes", res.Name, n)
}

// cpuProfile takes a CPU profile through Telegraf's --pprof-addr.
func cpuProfile(addr, file string, seconds int) error {
	return fetch(fmt.Sprintf("http://%s/debug/pprof/profile?seconds=%d", addr, seconds), file)
}

// get is the body of a GET of url that answered 200 OK.
func get(url string) (io.ReadCloser, error) {
	resp, err := http.Get(url)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		resp.Body.Close()
		return nil, fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	return resp.Body, nil
}

// fetch writes what a GET of url answers into file.
func fetch(url, file string) error {
	body, err := get(url)
	if err != nil {
		return err
	}
	defer body.Close()
	if err := os.MkdirAll(filepath.Dir(file), 0o755); err != nil {
		return err
	}
	f, err := os.Create(file)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, body); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// holdInFlight lets mailevents take opt.InFlight events while its only
// output cannot write (nothing listens at its URL), and reads its memory.
func holdInFlight(ctx context.Context, dir, agent string, batch int, nsqd *stack.NSQD, opt Options) (int64, error) {
	const topic = "mail_hold"
	if err := createChannel(nsqd, topic, "mailtick"); err != nil {
		return 0, err
	}
	if err := publish(ctx, nsqd, topic, opt.Seed+1, opt.InFlight); err != nil {
		return 0, err
	}
	port, err := stack.FreePort()
	if err != nil {
		return 0, err
	}
	out := fmt.Sprintf("\n[[outputs.influxdb]]\n  urls = [\"http://127.0.0.1:%d\"]\n  skip_database_creation = true\n  timeout = \"1s\"\n", port)
	agent = withSetting(agent, "metric_buffer_limit", strconv.Itoa(max(batch, opt.InFlight)))
	t := &stack.Telegraf{}
	if opt.Profile != "" {
		if port, err = stack.FreePort(); err != nil {
			return 0, err
		}
		t.PprofAddr = fmt.Sprintf("127.0.0.1:%d", port)
	}
	a, err := t.Start(filepath.Join(dir, "inflight"), maileventsConfig(agent, nsqd.TCPAddr, topic, "mailtick", opt.InFlight, out))
	if err != nil {
		return 0, err
	}
	defer a.Stop(10 * time.Second)
	deadline := time.Now().Add(5 * time.Minute)
	for time.Now().Before(deadline) {
		st, err := nsqd.TopicStats(topic)
		if err != nil {
			return 0, err
		}
		if ch, _ := st.Channel("mailtick"); ch.InFlight >= int64(opt.InFlight) {
			time.Sleep(2 * time.Second) // let the output's retries settle
			if opt.Profile != "" {
				if err := fetch("http://"+t.PprofAddr+"/debug/pprof/heap?gc=1", filepath.Join(opt.Profile, "inflight-heap.pprof")); err != nil {
					return 0, err
				}
			}
			return procStatus(a.Pid(), "VmRSS")
		}
		select {
		case <-ctx.Done():
			return 0, ctx.Err()
		case <-a.Exited():
			return 0, fmt.Errorf("in-flight agent exited; its log ends:\n%s", a.LogTail(20))
		case <-time.After(50 * time.Millisecond):
		}
	}
	return 0, fmt.Errorf("mailevents did not take %d events in flight in 5 minutes", opt.InFlight)
}

// cpuTime reads user+system CPU time of a process from /proc.
func cpuTime(pid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// Fields after the command name, which is in parentheses.
	fields := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+2:]))
	utime, err1 := strconv.ParseInt(fields[11], 10, 64)
	stime, err2 := strconv.ParseInt(fields[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("parsing /proc/%d/stat", pid)
	}
	const ticksPerSecond = 100 // USER_HZ on Linux
	return time.Duration(utime+stime) * time.Second / ticksPerSecond, nil
}

// procStatus reads a memory figure (kB in /proc) in bytes.
func procStatus(pid int, key string) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, key+":"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return kb * 1024, err
		}
	}
	return 0, fmt.Errorf("no %s in /proc/%d/status", key, pid)
}

// Print writes the report as a table, with the settings the agents ran with.
func (rep Report) Print(w io.Writer) {
	fmt.Fprintf(w, "\nagent settings (telegraf.conf [agent]): %s\n", rep.Agent)
	fmt.Fprintf(w, "mailevents: its defaults (max_in_flight, max_undelivered_messages); stock nsq_consumer: max_in_flight 2500, max_undelivered_messages 10000\n")
	fmt.Fprintf(w, "\n%-10s %-9s %6s %9s %8s %7s %13s %14s %9s %11s\n", "agent", "output", "batch", "events", "wall s", "CPU s", "events/CPU-s", "events/wall-s", "peak RSS", "nsqd CPU s")
	for _, r := range rep.Results {
		fmt.Fprintf(w, "%-10s %-9s %6d %9d %8.2f %7.2f %13.0f %14.0f %6d MB %11.2f\n",
			r.Name, r.Output, r.BatchSize, r.Events, r.Wall.Seconds(), r.CPU.Seconds(), r.PerCPUSecond(), r.PerWallSecond(), r.PeakRSS>>20, r.NSQDCPU.Seconds())
	}
	fmt.Fprintln(w)
	for _, out := range []string{"discard", "influxdb"} {
		var perCPU, perWall []float64
		for pair := 0; ; pair++ {
			stock, ok1 := rep.find("stock", out, pair)
			ours, ok2 := rep.find("mailevents", out, pair)
			if !ok1 || !ok2 {
				break
			}
			perCPU = append(perCPU, ours.PerCPUSecond()/stock.PerCPUSecond())
			perWall = append(perWall, ours.PerWallSecond()/stock.PerWallSecond())
		}
		switch len(perCPU) {
		case 0:
		case 1:
			fmt.Fprintf(w, "mailevents / stock into %s: %.1fx events per CPU-second, %.1fx events per wall-second\n",
				out, perCPU[0], perWall[0])
		default:
			fmt.Fprintf(w, "mailevents / stock into %s, median of %d alternating pairs: %.1fx events per CPU-second (%s), %.1fx events per wall-second (%s)\n",
				out, len(perCPU), median(perCPU), ratios(perCPU), median(perWall), ratios(perWall))
		}
	}
	if rep.InFlight > 0 {
		fmt.Fprintf(w, "mailevents RSS with %d events in flight: %d MB\n", rep.InFlight, rep.InFlightRSS>>20)
	}
}

// find is the result of an agent into an output in one pair, at the
// shipped metric_batch_size.
func (rep Report) find(name, output string, pair int) (Result, bool) {
	for _, r := range rep.Results {
		if r.Name == name && r.Output == output && r.Pair == pair {
			return r, true
		}
	}
	return Result{}, false
}

func median(xs []float64) float64 {
	s := slices.Sorted(slices.Values(xs))
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// ratios lists ratios as "8.1x 9.0x 8.7x".
func ratios(xs []float64) string {
	parts := make([]string, len(xs))
	for i, x := range xs {
		parts[i] = fmt.Sprintf("%.1fx", x)
	}
	return strings.Join(parts, " ")
}
