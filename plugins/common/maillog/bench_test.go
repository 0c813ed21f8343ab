package maillog

import (
	"fmt"
	"runtime"
	"strings"
	"testing"
	"time"
)

// benchLog is a realistic Postfix log: the real Postfix run's 26 lines
// (testdata), repeated with distinct queue ids, as a busy relay writes it.
func benchLog(b *testing.B, copies int) []string {
	lines := readLines(&testing.T{}, "testdata/postfix-3.7.11-debian12.log")
	var out []string
	for i := 0; i < copies; i++ {
		r := strings.NewReplacer("68ABA984896", fmt.Sprintf("%011X", 3*i), "6A4C6984897", fmt.Sprintf("%011X", 3*i+1), "814F398489C", fmt.Sprintf("%011X", 3*i+2))
		for _, l := range lines {
			out = append(out, r.Replace(l))
		}
	}
	return out
}

// BenchmarkPostfixLines reads a realistic log: ns per line, and the
// events it makes into metrics.
func BenchmarkPostfixLines(b *testing.B) {
	log := benchLog(b, 1000)
	now := time.Date(2026, 11, 23, 17, 0, 0, 0, time.UTC)
	c := NewCorrelator(Options{})
	b.ReportAllocs()
	n := 0
	for i := 0; b.Loop(); i++ {
		evs, _ := c.Line(log[i%len(log)], now, time.UTC)
		for j := range evs {
			_ = evs[j].Metric()
		}
		n++
	}
	b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "lines/s")
}

// TestOpenQueueIDMemory reports the heap each open queue id costs, with
// 200,000 messages queued and not yet delivered (-v shows it), as a relay
// sees them: from 50 client addresses and 5,000 senders, each with its own
// message-id. It checks only that the state holds them all.
func TestOpenQueueIDMemory(t *testing.T) {
	if testing.Short() {
		t.Skip("measures memory")
	}
	const n = 200000
	now := time.Date(2026, 11, 23, 17, 0, 0, 0, time.UTC)
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	c := NewCorrelator(Options{MaxMessages: n})
	for i := 0; i < n; i++ {
		id := fmt.Sprintf("%011X", i)
		c.Line(fmt.Sprintf("Nov 23 16:26:55 mx1 postfix/smtpd[1]: %s: client=mail%d.example.org[192.0.2.%d]", id, i%50, i%50), now, time.UTC)
		c.Line("Nov 23 16:26:55 mx1 postfix/cleanup[1]: "+id+": message-id=<"+id+"@mail.example.org>", now, time.UTC)
		c.Line(fmt.Sprintf("Nov 23 16:26:55 mx1 postfix/qmgr[1]: %s: from=<newsletter%d@example.com>, size=2417, nrcpt=1 (queue active)", id, i%5000), now, time.UTC)
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	require := func(cond bool) {
		if !cond {
			t.Fatalf("want %d open queue ids, have %d", n, c.Open())
		}
	}
	require(c.Open() == n)
	t.Logf("%d open queue ids: %.0f bytes each", n, float64(after.HeapAlloc-before.HeapAlloc)/n)
	runtime.KeepAlive(c)
}
