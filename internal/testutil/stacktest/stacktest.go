// Package stacktest starts stack servers for a test: each in the test's own
// temporary folder, stopped when the test ends. A server that cannot start
// fails the test with the reason; it is never skipped.
package stacktest

import (
	"fmt"
	"math"
	"os"
	"os/exec"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/influxdata/telegraf"
	"github.com/influxdata/telegraf/plugins/serializers/influx"
	"github.com/nsqio/go-nsq"
	"github.com/stretchr/testify/require"

	"github.com/mailtick/mailtick/internal/gen"
	"github.com/mailtick/mailtick/internal/testutil/stack"
)

const grace = 15 * time.Second

// NSQD starts an nsqd with default options.
func NSQD(t testing.TB) *stack.NSQD {
	t.Helper()
	return NSQDWith(t, stack.NSQDOptions{})
}

// NSQDWith starts an nsqd with the given options.
func NSQDWith(t testing.TB, opt stack.NSQDOptions) *stack.NSQD {
	t.Helper()
	s, err := stack.StartNSQD(t.TempDir(), opt)
	require.NoError(t, err, "nsqd must start for this test")
	t.Cleanup(func() { stop(t, s.Process) })
	return s
}

// NSQLookupd starts an nsqlookupd.
func NSQLookupd(t testing.TB) *stack.NSQLookupd {
	t.Helper()
	s, err := stack.StartNSQLookupd(t.TempDir())
	require.NoError(t, err, "nsqlookupd must start for this test")
	t.Cleanup(func() { stop(t, s.Process) })
	return s
}

// InfluxDB starts an influxd 1.8 with Flux enabled, with the databases
// named created.
func InfluxDB(t testing.TB, databases ...string) *stack.InfluxDB {
	t.Helper()
	s, err := stack.StartInfluxDB(t.TempDir(), databases...)
	require.NoError(t, err, "influxd must start for this test")
	t.Cleanup(func() { stop(t, s.Process) })
	return s
}

// Kapacitor starts a kapacitord reading influxURL, writing also to extra.
func Kapacitor(t testing.TB, influxURL string, extra ...stack.Cluster) *stack.Kapacitor {
	t.Helper()
	s, err := stack.StartKapacitor(t.TempDir(), influxURL, extra...)
	require.NoError(t, err, "kapacitord must start for this test")
	t.Cleanup(func() { stop(t, s.Process) })
	return s
}

// Telegraf runs bin/telegraf with config; after a Restart, the test's
// cleanup stops the process that runs then.
func Telegraf(t testing.TB, config string, env ...string) *stack.Telegraf {
	t.Helper()
	s, err := stack.StartTelegraf(t.TempDir(), config, env...)
	require.NoError(t, err, "bin/telegraf must start for this test")
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("telegraf log ends:\n%s", s.LogTail(40))
		}
		stop(t, s.Process)
	})
	return s
}

func stop(t testing.TB, p *stack.Process) {
	if err := p.Stop(grace); err != nil {
		t.Errorf("stopping %s: %v", p.Name, err)
	}
}

// SeedEvents writes n generated mail events, ending about now and spaced
// 600 ms apart (20 minutes for 2000), into database as the agent would
// store them, tagged dc1; it returns them for the test to compute from.
func SeedEvents(t testing.TB, db *stack.InfluxDB, database string, seed uint64, n int) []gen.Message {
	t.Helper()
	const interval = 600 * time.Millisecond
	start := time.Now().Add(-time.Duration(n) * interval).Truncate(time.Minute)
	g, err := gen.New(gen.Config{Seed: seed, Interval: interval, Start: start})
	require.NoError(t, err)
	var lines strings.Builder
	events := make([]gen.Message, n)
	for i := range events {
		events[i] = g.Next()
		lines.WriteString(events[i].Line("dc1"))
	}
	require.NoError(t, db.Write(database, lines.String()))
	return events
}

// LatencyByMinute computes, independently of InfluxDB and Kapacitor, what
// mail_latency holds per direction and minute: p50 and p99 (InfluxQL's
// nearest rank), max and count, keyed "<direction> <minute, ns>" and
// rendered as InfluxDB's JSON shows a row of them.
func LatencyByMinute(events []gen.Message) map[string]string {
	out := map[string]string{}
	for key, v := range LatencyGroups(events) {
		rank := func(p float64) float64 {
			i := int(math.Floor(float64(len(v))*p/100+0.5)) - 1
			return v[max(0, min(i, len(v)-1))]
		}
		out[key] = fmt.Sprint([]any{rank(50), rank(99), v[len(v)-1], float64(len(v))})
	}
	return out
}

// Consume reads at least n messages of topic from nsqd through a fresh
// channel, and returns their bodies.
func Consume(t testing.TB, nsqd *stack.NSQD, topic string, n int) [][]byte {
	t.Helper()
	c, err := nsq.NewConsumer(topic, "test", nsq.NewConfig())
	require.NoError(t, err)
	c.SetLogger(nil, nsq.LogLevelError)
	var mu sync.Mutex
	var bodies [][]byte
	c.AddHandler(nsq.HandlerFunc(func(m *nsq.Message) error {
		mu.Lock()
		bodies = append(bodies, m.Body)
		mu.Unlock()
		return nil
	}))
	require.NoError(t, c.ConnectToNSQD(nsqd.TCPAddr))
	defer func() { c.Stop(); <-c.StopChan }()
	require.Eventually(t, func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(bodies) >= n
	}, 20*time.Second, 20*time.Millisecond, "want %d messages on %q", n, topic)
	mu.Lock()
	defer mu.Unlock()
	return bodies
}

// LatencyGroups returns the latencies of events by direction and minute,
// keyed "<direction> <minute, ns>", each sorted: the groups the latency
// rollups are computed over.
func LatencyGroups(events []gen.Message) map[string][]float64 {
	groups := map[string][]float64{}
	for _, m := range events {
		key := fmt.Sprintf("%s %d", m.Event.Direction, m.Time.Truncate(time.Minute).UnixNano())
		groups[key] = append(groups[key], m.Event.LatencyMs)
	}
	for _, v := range groups {
		sort.Float64s(v)
	}
	return groups
}

// Postfix starts a real Postfix on loopback relaying to an SMTP sink of
// the test's; on failure the test logs Postfix's maillog.
func Postfix(t testing.TB) (*stack.Postfix, *stack.SMTPSink) {
	t.Helper()
	sink, err := stack.StartSMTPSink()
	require.NoError(t, err, "the SMTP sink must listen for this test")
	t.Cleanup(sink.Close)
	port, err := stack.FreePort()
	require.NoError(t, err)
	pf, err := stack.StartPostfix(t.TempDir(), port, sink.Port())
	require.NoError(t, err, "postfix must start for this test")
	t.Cleanup(func() {
		if t.Failed() {
			log, _ := os.ReadFile(pf.Maillog)
			t.Logf("maillog:\n%s", log)
		}
		if err := pf.Stop(); err != nil {
			t.Errorf("stopping postfix: %v", err)
		}
	})
	return pf, sink
}

// Tmpfs mounts a filesystem of size bytes on dir (made if missing) for the
// test, unmounted when it ends: a disk that fills. It needs root; without
// it the test fails and says so.
func Tmpfs(t testing.TB, dir string, size int) string {
	t.Helper()
	require.NoError(t, os.MkdirAll(dir, 0o750))
	out, err := exec.Command("mount", "-t", "tmpfs", "-o", fmt.Sprintf("size=%d", size), "tmpfs", dir).CombinedOutput()
	require.NoError(t, err, "mounting a %d-byte tmpfs for a full-disk test needs root: %s", size, out)
	t.Cleanup(func() { _ = exec.Command("umount", "-l", dir).Run() })
	return dir
}

// WriteMetrics writes Telegraf metrics into database of db as the agent's
// outputs.influxdb does, each with the tag dc (the agent's global tag).
func WriteMetrics(t testing.TB, db *stack.InfluxDB, database, dc string, ms []telegraf.Metric) {
	t.Helper()
	s := &influx.Serializer{}
	require.NoError(t, s.Init())
	var b strings.Builder
	for _, m := range ms {
		m.AddTag("dc", dc)
		out, err := s.Serialize(m)
		require.NoError(t, err)
		b.Write(out)
	}
	require.NoError(t, db.Write(database, b.String()))
}
