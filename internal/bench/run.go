package bench

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/mailtick/mailtick/internal/gen"
	"github.com/mailtick/mailtick/internal/stack"
)

// Options set the size of a benchmark run.
type Options struct {
	Events   int    // events drained by each agent
	InFlight int    // events held in flight for the memory figure (0: skip)
	Seed     uint64 // generator seed
	Dir      string // work folder (default: a temporary one, removed after)
}

// Result is one agent's figures.
type Result struct {
	Name    string
	Events  int
	Wall    time.Duration // first message taken to last message finished
	CPU     time.Duration // user+system CPU of the agent in that span
	PeakRSS int64         // bytes (VmHWM)
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
	Stock, Mailevents Result
	InFlight          int   // events held by the outputs in the memory scenario
	InFlightRSS       int64 // bytes (VmRSS) with InFlight events held
}

// A batch is written as soon as it is full; max_in_flight must exceed it,
// or each flush_interval passes with fewer messages than a batch in hand.
// The last, partial batch waits for flush_interval: kept short, so that
// the tail does not dominate the drain time.
const agentHead = `[agent]
  interval = "10s"
  flush_interval = "100ms"
  flush_jitter = "0s"
  metric_batch_size = 1000
  metric_buffer_limit = %d
  omit_hostname = true
`

// Both inputs get the same queue settings, tuned for throughput.
func stockConfig(nsqd string) string {
	return fmt.Sprintf(agentHead, 200000) + fmt.Sprintf(`
[[inputs.nsq_consumer]]
  nsqd = [%q]
  topic = "mail_events"
  channel = "stock"
  max_in_flight = 2500
  max_undelivered_messages = 10000
  data_format = "json_v2"
`, nsqd) + StockJSONv2For("inputs.nsq_consumer") + `
[[outputs.discard]]
`
}

func maileventsConfig(nsqd, topic string, inFlight int, output string) string {
	return fmt.Sprintf(agentHead, max(200000, 2*inFlight)) + fmt.Sprintf(`
[[inputs.mailevents]]
  nsqd = [%q]
  topics = [%q]
  channel = "mailtick"
  max_in_flight = %d
  max_undelivered_messages = %d
`, nsqd, topic, max(2500, inFlight), max(10000, inFlight)) + output
}

// Run publishes the events once into one nsqd, with one channel per agent,
// then lets each agent drain its channel alone, and measures it.
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
	// Everything in memory: disk queues would measure nsqd, not the agents.
	nsqd, err := stack.StartNSQD(filepath.Join(dir, "nsqd"), stack.NSQDOptions{
		Args: []string{fmt.Sprintf("--mem-queue-size=%d", 2*max(opt.Events, opt.InFlight)),
			fmt.Sprintf("--max-rdy-count=%d", max(2500, opt.InFlight))}})
	if err != nil {
		return rep, err
	}
	defer nsqd.Stop(10 * time.Second)

	for _, ch := range []string{"stock", "mailtick"} {
		if err := createChannel(nsqd, "mail_events", ch); err != nil {
			return rep, err
		}
	}
	fmt.Fprintf(log, "bench: publishing %d events\n", opt.Events)
	if err := publish(ctx, nsqd, "mail_events", opt.Seed, opt.Events); err != nil {
		return rep, err
	}

	fmt.Fprintf(log, "bench: stock Telegraf nsq_consumer + json_v2 -> discard\n")
	if rep.Stock, err = drain(ctx, "stock", filepath.Join(dir, "stock"), stockConfig(nsqd.TCPAddr), nsqd, "stock", opt.Events); err != nil {
		return rep, err
	}
	fmt.Fprintf(log, "bench: %+v\n", rep.Stock)
	fmt.Fprintf(log, "bench: mailtick mailevents -> discard\n")
	conf := maileventsConfig(nsqd.TCPAddr, "mail_events", 0, "\n[[outputs.discard]]\n")
	if rep.Mailevents, err = drain(ctx, "mailevents", filepath.Join(dir, "mailevents"), conf, nsqd, "mailtick", opt.Events); err != nil {
		return rep, err
	}
	fmt.Fprintf(log, "bench: %+v\n", rep.Mailevents)

	if opt.InFlight > 0 {
		fmt.Fprintf(log, "bench: memory with %d events in flight\n", opt.InFlight)
		rep.InFlight = opt.InFlight
		if rep.InFlightRSS, err = holdInFlight(ctx, dir, nsqd, opt); err != nil {
			return rep, err
		}
	}
	return rep, nil
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

// drain runs one agent until its channel is empty and nothing is in flight.
func drain(ctx context.Context, name, dir, conf string, nsqd *stack.NSQD, channel string, n int) (Result, error) {
	res := Result{Name: name, Events: n}
	agent, err := stack.StartTelegraf(dir, conf)
	if err != nil {
		return res, err
	}
	defer agent.Stop(10 * time.Second)

	var start time.Time
	var cpu0 time.Duration
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
		if start.IsZero() && ch.Depth < int64(n) {
			start = now
			if cpu0, err = cpuTime(agent.Pid()); err != nil {
				return res, err
			}
		}
		if !start.IsZero() && ch.Depth == 0 && ch.InFlight == 0 {
			res.Wall = now.Sub(start)
			return res, res.finish(agent.Pid(), cpu0)
		}
		select {
		case <-agent.Exited():
			return res, fmt.Errorf("%s agent exited; its log ends:\n%s", name, agent.LogTail(20))
		case <-time.After(5 * time.Millisecond):
		}
	}
	return res, fmt.Errorf("%s did not drain %d events in 10 minutes", name, n)
}

// holdInFlight lets mailevents take opt.InFlight events while its only
// output cannot write (nothing listens at its URL), and reads its memory.
func holdInFlight(ctx context.Context, dir string, nsqd *stack.NSQD, opt Options) (int64, error) {
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
	agent, err := stack.StartTelegraf(filepath.Join(dir, "inflight"), maileventsConfig(nsqd.TCPAddr, topic, opt.InFlight, out))
	if err != nil {
		return 0, err
	}
	defer agent.Stop(10 * time.Second)
	deadline := time.Now().Add(5 * time.Minute)
	for time.Now().Before(deadline) {
		st, err := nsqd.TopicStats(topic)
		if err != nil {
			return 0, err
		}
		if ch, _ := st.Channel("mailtick"); ch.InFlight >= int64(opt.InFlight) {
			time.Sleep(2 * time.Second) // let the output's retries settle
			return procStatus(agent.Pid(), "VmRSS")
		}
		select {
		case <-ctx.Done():
			return 0, ctx.Err()
		case <-agent.Exited():
			return 0, fmt.Errorf("in-flight agent exited; its log ends:\n%s", agent.LogTail(20))
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

// Print writes the report as a table.
func (rep Report) Print(w io.Writer) {
	fmt.Fprintf(w, "\n%-12s %9s %10s %12s %14s %14s\n", "agent", "events", "wall s", "CPU s", "events/CPU-s", "events/wall-s")
	for _, r := range []Result{rep.Stock, rep.Mailevents} {
		fmt.Fprintf(w, "%-12s %9d %10.2f %12.2f %14.0f %14.0f   peak RSS %d MB\n",
			r.Name, r.Events, r.Wall.Seconds(), r.CPU.Seconds(), r.PerCPUSecond(), r.PerWallSecond(), r.PeakRSS>>20)
	}
	fmt.Fprintf(w, "\nmailevents / stock: %.1fx events per CPU-second, %.1fx events per wall-second\n",
		rep.Mailevents.PerCPUSecond()/rep.Stock.PerCPUSecond(), rep.Mailevents.PerWallSecond()/rep.Stock.PerWallSecond())
	if rep.InFlight > 0 {
		fmt.Fprintf(w, "mailevents RSS with %d events in flight: %d MB\n", rep.InFlight, rep.InFlightRSS>>20)
	}
}
