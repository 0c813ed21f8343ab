package bench

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	client "github.com/influxdata/kapacitor/client/v1"

	"github.com/mailtick/mailtick/internal/gen"
	"github.com/mailtick/mailtick/internal/kapacitor/tasks"
	"github.com/mailtick/mailtick/internal/testutil/stack"
)

// SpamResult is kapacitord's memory with mail_spam.tick holding one
// minute of events from many distinct senders.
type SpamResult struct {
	Script           string // "v2": tickscripts/mail_spam.tick; "v1": testdata/mail_spam_v1.tick
	Senders          int
	RSSBefore, After int64 // kapacitord's VmRSS, bytes
	Peak             int64 // kapacitord's VmHWM
	UDFBefore, UDF   int64 // VmRSS of kapacitord's children (the UDF processes), before and after
	// Once the minute is written (an event two minutes later closes it),
	// when the alert state per sender is in Kapacitor. Version 2 only: 0
	// for version 1, which holds a sender's minute until the sender mails
	// again.
	WrittenRSS, WrittenUDF int64
	// kapacitord's live heap after a forced GC (runtime HeapAlloc): what
	// it retains, whatever its collector has not yet returned. Read after
	// the RSS each time, idle, holding the minute and once written.
	LiveBefore, Live, WrittenLive int64
}

// SpamScripts are the versions of mail_spam.tick SpamMemory measures: the
// shipped one, and version 1 (Kapacitor's own nodes) to compare with.
var SpamScripts = map[string]string{
	"v2": filepath.Join("tickscripts", "mail_spam.tick"),
	"v1": filepath.Join("internal", "dev", "bench", "testdata", "mail_spam_v1.tick"),
}

// SpamMemory deploys a version of mail_spam.tick (SpamScripts) on a real
// Kapacitor and streams `senders` events from as many distinct senders
// into one minute; with a profile folder, it also writes Kapacitor's heap
// profile (after a GC) there.
func SpamMemory(ctx context.Context, script string, senders int, profile string, log io.Writer) (SpamResult, error) {
	res := SpamResult{Script: script, Senders: senders}
	root, err := stack.Root()
	if err != nil {
		return res, err
	}
	path, ok := SpamScripts[script]
	if !ok {
		return res, fmt.Errorf("no mail_spam.tick version %q", script)
	}
	dir, err := os.MkdirTemp("", "mailtick-spam-")
	if err != nil {
		return res, err
	}
	defer os.RemoveAll(dir)
	db, err := stack.StartInfluxDB(filepath.Join(dir, "influxdb"), "mail")
	if err != nil {
		return res, err
	}
	defer db.Stop(10 * time.Second)
	kapa, err := stack.StartKapacitor(filepath.Join(dir, "kapacitor"), db.URL)
	if err != nil {
		return res, err
	}
	defer kapa.Stop(10 * time.Second)

	tasksFile := filepath.Join(dir, "tasks.toml")
	conf := fmt.Sprintf("[kapacitor]\n  url = %q\n[[task]]\n  name = \"mail_spam\"\n  script = %q\n  [task.vars]\n    log_path = %q\n",
		kapa.URL, filepath.Join(root, path), filepath.Join(dir, "spam.log"))
	if err := os.WriteFile(tasksFile, []byte(conf), 0o600); err != nil {
		return res, err
	}
	plan, c, err := tasks.ApplyFile(tasksFile, false, tasks.Options{})
	if err != nil {
		return res, err
	}
	time.Sleep(time.Second) // the task subscribes
	if res.RSSBefore, err = procStatus(kapa.Pid(), "VmRSS"); err != nil {
		return res, err
	}
	if res.UDFBefore, err = childrenRSS(kapa.Pid()); err != nil {
		return res, err
	}
	if res.LiveBefore, err = liveHeap(kapa.URL); err != nil {
		return res, err
	}

	fmt.Fprintf(log, "spam %s: %d events from %d distinct senders into one minute\n", script, senders, senders)
	t0 := time.Now().Add(-10 * time.Minute).Truncate(time.Minute)
	g, err := gen.New(gen.Config{Seed: 3, Senders: senders})
	if err != nil {
		return res, err
	}
	step := time.Minute / time.Duration(senders+1)
	for i := 0; i < senders; i += 5000 {
		var body strings.Builder
		for j := i; j < min(i+5000, senders); j++ {
			m := g.Next()
			m.Event.Sender = fmt.Sprintf("sender%d@example%d.org", j, j%97)
			m.Time = t0.Add(time.Duration(j) * step)
			body.WriteString(m.Line("dc1"))
		}
		if err := db.Write("mail", body.String()); err != nil {
			return res, err
		}
		// The next batch once Kapacitor has taken this one in, as a
		// Kapacitor keeping up with its DC would: written in one burst, a
		// minute's points wait in InfluxDB's subscription writes and in
		// kapacitord, and RSS measures that queue, not the task.
		if err := waitCollected(ctx, c, plan[0].ID, min(i+5000, senders), time.Minute); err != nil {
			return res, err
		}
	}
	if profile != "" {
		file := filepath.Join(profile, fmt.Sprintf("kapacitor-spam-%s-%d-heap.pprof", script, senders))
		if err := fetch(kapa.URL+"/kapacitor/v1/debug/pprof/heap?gc=1", file); err != nil {
			return res, err
		}
	}
	if res.After, err = procStatus(kapa.Pid(), "VmRSS"); err != nil {
		return res, err
	}
	if res.UDF, err = childrenRSS(kapa.Pid()); err != nil {
		return res, err
	}
	if res.Live, err = liveHeap(kapa.URL); err != nil {
		return res, err
	}

	if script == "v1" {
		// Version 1's windows close only on the group's next point: an
		// event two minutes later closes none but its own sender's.
		res.Peak, err = procStatus(kapa.Pid(), "VmHWM")
		return res, err
	}
	// An event two windows later closes every sender's minute: the UDF
	// writes one point per sender, and the alerts take them in.
	m := g.Next()
	m.Time = t0.Add(3 * time.Minute)
	if err := db.Write("mail", m.Line("dc1")); err != nil {
		return res, err
	}
	for deadline := time.Now().Add(time.Minute + time.Duration(senders)*200*time.Microsecond); time.Now().Before(deadline); {
		n, err := db.Count("mail", `SELECT count("distinct_recipients") FROM mail_spam`)
		if err == nil && n >= int64(senders) {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	time.Sleep(time.Second) // the alert nodes after the output
	if res.WrittenRSS, err = procStatus(kapa.Pid(), "VmRSS"); err != nil {
		return res, err
	}
	if res.WrittenUDF, err = childrenRSS(kapa.Pid()); err != nil {
		return res, err
	}
	if res.WrittenLive, err = liveHeap(kapa.URL); err != nil {
		return res, err
	}
	res.Peak, err = procStatus(kapa.Pid(), "VmHWM")
	return res, err
}

// waitCollected waits until the task's from node has taken in n points.
func waitCollected(ctx context.Context, c *client.Client, id string, n int, limit time.Duration) error {
	for deadline := time.Now().Add(limit); ; time.Sleep(20 * time.Millisecond) {
		tk, err := c.Task(c.TaskLink(id), nil)
		if err != nil {
			return err
		}
		got, _ := tk.ExecutionStats.NodeStats["from1"]["collected"].(float64)
		if int(got) >= n {
			return nil
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("kapacitor task %s took in %d of %d points in %v", id, int(got), n, limit)
		}
	}
}

// liveHeap has Kapacitor collect its garbage (its pprof heap endpoint with
// gc=1 runs the collector first) and returns its live heap: the HeapAlloc
// of the memstats in its /debug/vars.
func liveHeap(kapacitorURL string) (int64, error) {
	body, err := get(kapacitorURL + "/kapacitor/v1/debug/pprof/heap?gc=1")
	if err != nil {
		return 0, err
	}
	_, err = io.Copy(io.Discard, body)
	body.Close()
	if err != nil {
		return 0, err
	}
	if body, err = get(kapacitorURL + "/kapacitor/v1/debug/vars"); err != nil {
		return 0, err
	}
	defer body.Close()
	var vars struct {
		Memstats *struct{ HeapAlloc int64 } `json:"memstats"`
	}
	if err := json.NewDecoder(body).Decode(&vars); err != nil {
		return 0, fmt.Errorf("kapacitor /debug/vars: %w", err)
	}
	if vars.Memstats == nil {
		return 0, errors.New("kapacitor /debug/vars has no memstats")
	}
	return vars.Memstats.HeapAlloc, nil
}

// childrenRSS sums the VmRSS of a process's children (those of every
// thread).
func childrenRSS(pid int) (int64, error) {
	tasks, err := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/children", pid))
	if err != nil {
		return 0, err
	}
	var sum int64
	for _, t := range tasks {
		b, err := os.ReadFile(t)
		if err != nil {
			return 0, err
		}
		for _, f := range strings.Fields(string(b)) {
			child, err := strconv.Atoi(f)
			if err != nil {
				return 0, err
			}
			rss, err := procStatus(child, "VmRSS")
			if err != nil {
				return 0, err
			}
			sum += rss
		}
	}
	return sum, nil
}

// perSender is KB per distinct sender: growth over the idle task, of
// kapacitord (kapa, from kapaBefore) and its UDF processes together.
func (r SpamResult) perSender(kapaBefore, kapa, udf int64) float64 {
	return float64(kapa-kapaBefore+udf-r.UDFBefore) / 1024 / float64(r.Senders)
}

// KBHoldingRSS, KBWrittenRSS, KBHoldingLive and KBWrittenLive are the per-sender
// figures: by RSS (what the collector has not returned counts too), and
// retained (kapacitord's live heap after a GC, plus the UDF's RSS).
func (r SpamResult) KBHoldingRSS() float64 { return r.perSender(r.RSSBefore, r.After, r.UDF) }
func (r SpamResult) KBWrittenRSS() float64 {
	return r.perSender(r.RSSBefore, r.WrittenRSS, r.WrittenUDF)
}
func (r SpamResult) KBHoldingLive() float64 { return r.perSender(r.LiveBefore, r.Live, r.UDF) }
func (r SpamResult) KBWrittenLive() float64 {
	return r.perSender(r.LiveBefore, r.WrittenLive, r.WrittenUDF)
}

// PrintSpam writes each run's figures, then version 1 against the version
// 2 run right after it at the same number of senders.
func PrintSpam(w io.Writer, runs []SpamResult) {
	for _, r := range runs {
		fmt.Fprintf(w, "\nmail_spam.tick %s, one minute of %d distinct senders: kapacitord RSS %d MB -> %d MB and its UDF %d MB -> %d MB holding the minute (%.2f KB per sender)",
			r.Script, r.Senders, r.RSSBefore>>20, r.After>>20, r.UDFBefore>>20, r.UDF>>20, r.KBHoldingRSS())
		if r.WrittenRSS > 0 {
			fmt.Fprintf(w, "; %d MB and %d MB once written (%.2f KB per sender)", r.WrittenRSS>>20, r.WrittenUDF>>20, r.KBWrittenRSS())
		}
		fmt.Fprintf(w, "; peak %d MB\n  retained (kapacitord's live heap after a GC, plus the UDF's RSS): kapacitord %d MB -> %d MB holding (%.2f KB per sender)",
			r.Peak>>20, r.LiveBefore>>20, r.Live>>20, r.KBHoldingLive())
		if r.WrittenRSS > 0 {
			fmt.Fprintf(w, ", %d MB once written (%.2f KB per sender)", r.WrittenLive>>20, r.KBWrittenLive())
		}
		fmt.Fprintln(w)
	}
	for i := 1; i < len(runs); i++ { // v1 then v2, at one number of senders
		v1, v2 := runs[i-1], runs[i]
		if v1.Script != "v1" || v2.Script != "v2" || v1.Senders != v2.Senders {
			continue
		}
		fmt.Fprintf(w, "\nmail_spam.tick v1 / v2 at %d senders, per sender holding the minute: %.1fx by RSS, %.1fx retained; peak %.1fx\n",
			v2.Senders, v1.KBHoldingRSS()/v2.KBHoldingRSS(), v1.KBHoldingLive()/v2.KBHoldingLive(), float64(v1.Peak)/float64(v2.Peak))
	}
}
