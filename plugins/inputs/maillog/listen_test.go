package maillog

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"runtime"
	"strings"
	"testing"
	"time"

	telegrafconfig "github.com/influxdata/telegraf/config"
	"github.com/influxdata/telegraf/plugins/inputs"
	"github.com/influxdata/telegraf/selfstat"
	"github.com/influxdata/telegraf/testutil"
	"github.com/stretchr/testify/require"

	ml "github.com/mailtick/mailtick/plugins/common/maillog"
)

// listening starts the plugin with the factory's defaults, changed by
// set, on a UDP (m.lns[0]) and a TCP (m.lns[1]) listener on loopback, with
// outputs that take every event.
func listening(t *testing.T, set func(*MailLog)) (*MailLog, *testutil.Accumulator) {
	t.Helper()
	m := inputs.Inputs["maillog"]().(*MailLog)
	m.Listen, m.Timezone, m.Log = []string{"udp://127.0.0.1:0", "tcp://127.0.0.1:0"}, "UTC", testutil.Logger{}
	if set != nil {
		set(m)
	}
	require.NoError(t, m.Init())
	acc := &testutil.Accumulator{}
	require.NoError(t, m.Start(acc))
	t.Cleanup(m.Stop)
	ctx := m.ctx
	go func() { // the outputs
		seen := 0
		for ctx.Err() == nil {
			time.Sleep(2 * time.Millisecond)
			ms := acc.GetTelegrafMetrics()
			for _, x := range ms[seen:] {
				x.Accept()
			}
			seen = len(ms)
		}
	}()
	return m, acc
}

// counts are a listener's self-metrics that attacks move.
func counts(l *listener) map[string]int64 {
	noProgram := selfstat.Register("maillog_refused", "lines", map[string]string{"file": l.addr, "reason": ml.ReasonNoProgram})
	return map[string]int64{
		"lines_cut":             l.st.cut.Get(),
		"connections_refused":   l.refused.Get(),
		"connections_timed_out": l.timedOut.Get(),
		"hosts_evicted":         l.hostsEvicted.Get(),
		"queue_ids_evicted":     l.st.evicted.Get(),
		"refused_no_program":    noProgram.Get(),
	}
}

func dial(t *testing.T, network, addr string) net.Conn {
	t.Helper()
	c, err := net.Dial(network, addr)
	require.NoError(t, err)
	t.Cleanup(func() { c.Close() })
	return c
}

func send(t *testing.T, c net.Conn, parts ...string) {
	t.Helper()
	for _, p := range parts {
		_, err := io.WriteString(c, p)
		require.NoError(t, err)
	}
}

// closedByServer waits until the server closed c: a read ends (EOF or
// reset) on its own, not by the test's deadline.
func closedByServer(t *testing.T, c net.Conn) {
	t.Helper()
	require.NoError(t, c.SetReadDeadline(time.Now().Add(time.Minute)))
	_, err := c.Read(make([]byte, 1))
	require.Error(t, err)
	require.False(t, errors.Is(err, os.ErrDeadlineExceeded), "the server kept the connection open")
}

// spoofed is a line of a host of its own that opens a queue id (smtpd's
// client=) and makes no event.
func spoofed(i int) string {
	return fmt.Sprintf("Nov 23 16:30:00 spoof%d postfix/smtpd[1]: %X: client=x[192.0.2.9]", i, 0x100000+i)
}

// frame is an octet-counted frame (RFC 6587 3.4.1).
func frame(msg string) string { return fmt.Sprintf("%d %s", len(msg), msg) }

// TestListenerAttacks: what a hostile sender does to the syslog listeners
// (TCP newline-delimited, TCP octet-counted, UDP), with what must follow:
// the connection closed, the message cut and counted, hosts evicted and
// counted; never an event but the good lines' (each attack ends with
// one, on the same connection where it must show the stream still in
// step, or on a new one where the attack closed it).
func TestListenerAttacks(t *testing.T) {
	huge := strings.Repeat("x", 4<<20)
	tests := []struct {
		name   string
		set    func(*MailLog)
		attack func(t *testing.T, udp, tcp string)
		events int // good lines: their events, and no other
		want   map[string]int64
	}{
		{
			name: "tcp newline: 4 MiB without newline, then a line",
			attack: func(t *testing.T, _, tcp string) {
				send(t, dial(t, "tcp", tcp), huge, "\n", reject(1)+"\n")
			},
			events: 1, want: map[string]int64{"lines_cut": 1},
		},
		{
			name: "tcp newline: one byte over the limit, then a line at the limit, then a line",
			attack: func(t *testing.T, _, tcp string) {
				send(t, dial(t, "tcp", tcp), huge[:maxLineBytes+1]+"\r\n", huge[:maxLineBytes]+"\n", reject(1)+"\n")
			},
			events: 1, want: map[string]int64{"lines_cut": 1, "refused_no_program": 1},
		},
		{
			name: "tcp octet-counted: a 100 KiB frame is skipped whole, the next frame read",
			attack: func(t *testing.T, _, tcp string) {
				send(t, dial(t, "tcp", tcp), frame(huge[:100<<10]), frame(reject(1)))
			},
			events: 1, want: map[string]int64{"lines_cut": 1},
		},
		{
			name: "tcp octet-counted: a frame announcing 999,999,999 bytes, a few sent",
			set:  func(m *MailLog) { m.ReadTimeout = telegrafconfig.Duration(100 * time.Millisecond) },
			attack: func(t *testing.T, _, tcp string) {
				c := dial(t, "tcp", tcp)
				send(t, c, "999999999 "+huge[:1000])
				closedByServer(t, c)
				send(t, dial(t, "tcp", tcp), frame(reject(1)))
			},
			events: 1, want: map[string]int64{"lines_cut": 1, "connections_timed_out": 1},
		},
		{
			name: "tcp octet-counted: a slow sender stops mid-frame",
			set:  func(m *MailLog) { m.ReadTimeout = telegrafconfig.Duration(100 * time.Millisecond) },
			attack: func(t *testing.T, _, tcp string) {
				c := dial(t, "tcp", tcp)
				send(t, c, fmt.Sprintf("%d %s", len(reject(0)), reject(0)[:20]))
				closedByServer(t, c)
				send(t, dial(t, "tcp", tcp), frame(reject(1)))
			},
			events: 1, want: map[string]int64{"connections_timed_out": 1},
		},
		{
			name: "tcp newline: a slow sender stops mid-line",
			set:  func(m *MailLog) { m.ReadTimeout = telegrafconfig.Duration(100 * time.Millisecond) },
			attack: func(t *testing.T, _, tcp string) {
				c := dial(t, "tcp", tcp)
				send(t, c, reject(0)[:40])
				closedByServer(t, c)
				send(t, dial(t, "tcp", tcp), reject(1)+"\n")
			},
			events: 1, want: map[string]int64{"connections_timed_out": 1},
		},
		{
			name: "tcp: connections beyond max_connections are closed, those open go on",
			set:  func(m *MailLog) { m.MaxConnections = 3 },
			attack: func(t *testing.T, _, tcp string) {
				var open []net.Conn
				for range 3 {
					c := dial(t, "tcp", tcp)
					send(t, c, "\n") // read: the server holds it
					open = append(open, c)
				}
				for range 2 {
					closedByServer(t, dial(t, "tcp", tcp))
				}
				send(t, open[2], reject(1)+"\n")
			},
			events: 1, want: map[string]int64{"connections_refused": 2},
		},
		{
			// As a frame it would swallow the line after it.
			name: "tcp: ten digits and a space are a line, not a frame",
			attack: func(t *testing.T, _, tcp string) {
				send(t, dial(t, "tcp", tcp), "1234567890 x\n", reject(1)+"\n")
			},
			events: 1, want: map[string]int64{},
		},
		{
			name: "udp: 50 spoofed hostnames over max_hosts 5",
			set:  func(m *MailLog) { m.MaxHosts = 5 },
			attack: func(t *testing.T, udp, _ string) {
				c := dial(t, "udp", udp)
				for i := range 50 {
					send(t, c, spoofed(i))
				}
				send(t, c, reject(1))
			},
			// 50 spoofed hosts and mx1: 46 go, each with its queue id.
			events: 1, want: map[string]int64{"hosts_evicted": 46, "queue_ids_evicted": 46},
		},
		{
			name: "udp: hosts idle for queue_id_ttl go",
			set:  func(m *MailLog) { m.QueueIDTTL = 1 },
			attack: func(t *testing.T, udp, _ string) {
				c := dial(t, "udp", udp)
				send(t, c, spoofed(0))
				time.Sleep(time.Millisecond) // the clock moves past the 1 ns ttl
				send(t, c, reject(1))
			},
			events: 1, want: map[string]int64{"hosts_evicted": 1, "queue_ids_evicted": 1},
		},
		{
			name: "udp: a datagram of 65,000 bytes of garbage",
			attack: func(t *testing.T, udp, _ string) {
				c := dial(t, "udp", udp)
				send(t, c, huge[:65000], reject(1))
			},
			events: 1, want: map[string]int64{"refused_no_program": 1},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, acc := listening(t, tt.set)
			udp, tcp := m.lns[0], m.lns[1]
			before := map[*listener]map[string]int64{udp: counts(udp), tcp: counts(tcp)}
			tt.attack(t, udp.Addr().String(), tcp.Addr().String())
			acc.Wait(tt.events)
			got := map[string]int64{}
			for _, l := range []*listener{udp, tcp} {
				for k, v := range counts(l) {
					if d := v - before[l][k]; d != 0 {
						got[k] += d
					}
				}
			}
			require.Equal(t, tt.want, got)
			require.Equal(t, wantRecipients(1, 2), recipients(acc), "the good line's event, no other")
		})
	}
}

// TestListenerStopClosesConnections: an idle forwarder's connection, one
// stopped mid-message, and one whose events wait for the outputs do not
// hold up Stop; the forwarders see their connections closed.
func TestListenerStopClosesConnections(t *testing.T) {
	m := inputs.Inputs["maillog"]().(*MailLog)
	m.Listen, m.Timezone, m.Log, m.MaxUndelivered = []string{"tcp://127.0.0.1:0"}, "UTC", testutil.Logger{}, 1
	require.NoError(t, m.Init())
	acc := &testutil.Accumulator{} // outputs that take nothing
	require.NoError(t, m.Start(acc))
	addr := m.lns[0].Addr().String()
	idle, partial, blocked := dial(t, "tcp", addr), dial(t, "tcp", addr), dial(t, "tcp", addr)
	send(t, idle, "\n")
	send(t, partial, reject(0)[:30])
	send(t, blocked, reject(1)+"\n"+reject(2)+"\n") // the second waits for the first's delivery
	acc.Wait(1)
	stopped := make(chan struct{})
	go func() {
		m.Stop()
		close(stopped)
	}()
	require.Eventually(t, func() bool {
		select {
		case <-stopped:
			return true
		default:
			return false
		}
	}, time.Minute, 10*time.Millisecond, "Stop waits for the connections")
	for _, c := range []net.Conn{idle, partial, blocked} {
		closedByServer(t, c)
	}
}

// TestListenerMemoryBound: the attacks together, at the defaults, every
// connection left open: a line of 128 MiB without its newline yet,
// max_connections each holding a frame of 64 KiB sent but for its last
// byte, 50 connections more, and 50,000 spoofed hostnames. The live heap
// then is within maxGrowth of the heap before (before the limits: +129
// MiB for the line, +84 MiB for the frames and the hosts).
func TestListenerMemoryBound(t *testing.T) {
	if testing.Short() {
		t.Skip("sends 128 MiB")
	}
	const maxGrowth = 48 << 20
	m, acc := listening(t, func(m *MailLog) { m.ReadTimeout = telegrafconfig.Duration(time.Hour) })
	tcp := m.lns[1]
	addr := tcp.Addr().String()
	before := counts(tcp)
	lines := tcp.st.lines.Get()
	base := heap()

	// Once written, all but what the sockets buffer (a few MiB) was read.
	long := dial(t, "tcp", addr)
	chunk := strings.Repeat("x", 1<<20)
	for range 128 {
		send(t, long, chunk)
	}
	held := make([]net.Conn, 0, m.MaxConnections)
	for range m.MaxConnections - 2 { // long and the next one are open too
		c := dial(t, "tcp", addr)
		send(t, c, fmt.Sprintf("%d %s", maxLineBytes, chunk[:maxLineBytes-1]))
		held = append(held, c)
	}
	hosts := dial(t, "tcp", addr)
	var b strings.Builder
	for i := range 50000 {
		b.WriteString(spoofed(i) + "\n")
	}
	send(t, hosts, b.String())
	// The frames, one write each, are read long before 50,000 lines are
	// (were one still in the socket, the bound would only be easier).
	require.Eventually(t, func() bool { return tcp.st.lines.Get()-lines == 50000 }, time.Minute, 10*time.Millisecond)
	for range 50 {
		closedByServer(t, dial(t, "tcp", addr))
	}
	growth := int64(heap()) - int64(base)
	t.Logf("heap: %.1f MiB before, %+.1f MiB with the attacks under way (bound %d MiB)", float64(base)/(1<<20), float64(growth)/(1<<20), maxGrowth>>20)
	require.LessOrEqual(t, growth, int64(maxGrowth))

	send(t, long, "\n", reject(1)+"\n")
	acc.Wait(1)
	after := counts(tcp)
	require.Equal(t, int64(1), after["lines_cut"]-before["lines_cut"])
	require.Equal(t, int64(50), after["connections_refused"]-before["connections_refused"])
	require.Equal(t, int64(50000+1-m.MaxHosts), after["hosts_evicted"]-before["hosts_evicted"])
	require.Equal(t, int64(m.MaxHosts), tcp.hostsOpen.Get())
	require.Equal(t, wantRecipients(1, 2), recipients(acc), "no event but the good line's")
	runtime.KeepAlive(held)
}

// heap is the live heap after a collection.
func heap() uint64 {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}

func TestInitListenerLimits(t *testing.T) {
	tests := []struct {
		name string
		set  func(*MailLog)
		want string
	}{
		{"max_connections", func(m *MailLog) { m.MaxConnections = 0 }, `invalid "max_connections" value "0"`},
		{"read_timeout", func(m *MailLog) { m.ReadTimeout = telegrafconfig.Duration(-time.Second) }, `invalid "read_timeout" value "-1s"`},
		{"max_hosts", func(m *MailLog) { m.MaxHosts = -3 }, `invalid "max_hosts" value "-3"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := inputs.Inputs["maillog"]().(*MailLog)
			m.Listen = []string{"tcp://127.0.0.1:0"}
			require.NoError(t, m.Init(), "the defaults")
			tt.set(m)
			require.ErrorContains(t, m.Init(), tt.want)
		})
	}
}
