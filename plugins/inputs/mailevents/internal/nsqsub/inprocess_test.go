package nsqsub

import (
	"bufio"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/influxdata/telegraf/testutil"
	"github.com/nsqio/nsq/nsqd"
	"github.com/stretchr/testify/require"
)

// These tests run nsqd in-process (the nsqd package of github.com/nsqio/nsq
// on 127.0.0.1:0, as nsq's own tests do); mailevents' integration tests run
// the nsqd binary.

const topic, channel = "t", "c"

// startNSQD runs an nsqd in-process until the test ends. addr "" takes a
// free port.
func startNSQD(t *testing.T, addr string, edit func(*nsqd.Options)) *nsqd.NSQD {
	t.Helper()
	opts := nsqd.NewOptions()
	opts.TCPAddress = "127.0.0.1:0"
	if addr != "" {
		opts.TCPAddress = addr
	}
	opts.HTTPAddress, opts.HTTPSAddress = "127.0.0.1:0", "127.0.0.1:0"
	opts.DataPath = t.TempDir()
	opts.Logger = testLogger{t}
	if edit != nil {
		edit(opts)
	}
	n, err := nsqd.New(opts)
	require.NoError(t, err, "nsqd must start for this test")
	go func() { _ = n.Main() }()
	t.Cleanup(n.Exit)
	return n
}

type testLogger struct{ t *testing.T }

func (l testLogger) Output(_ int, s string) error { l.t.Log(s); return nil }

func publish(t *testing.T, n *nsqd.NSQD, count int, prefix string) {
	t.Helper()
	tp := n.GetTopic(topic)
	for i := 0; i < count; i++ {
		require.NoError(t, tp.PutMessage(nsqd.NewMessage(tp.GenerateID(), []byte(fmt.Sprintf("%s%d", prefix, i)))))
	}
}

func channelStats(n *nsqd.NSQD) (nsqd.ChannelStats, bool) {
	for _, tp := range n.GetStats(topic, channel, true).Topics {
		for _, c := range tp.Channels {
			return c, true
		}
	}
	return nsqd.ChannelStats{}, false
}

func readyCounts(n *nsqd.NSQD) []int64 {
	c, _ := channelStats(n)
	var out []int64
	for _, cl := range c.Clients {
		if s, ok := cl.(nsqd.ClientV2Stats); ok {
			out = append(out, s.ReadyCount)
		}
	}
	return out
}

func newSub(t *testing.T, cfg Config) *Subscriber {
	t.Helper()
	cfg.Topic, cfg.Channel = topic, channel
	if cfg.Log == nil {
		cfg.Log = testutil.Logger{}
	}
	if cfg.ReconnectInterval == 0 {
		cfg.ReconnectInterval = 100 * time.Millisecond
	}
	s, err := New(cfg)
	require.NoError(t, err)
	s.Start()
	t.Cleanup(s.Stop)
	return s
}

// take receives n messages, leaving them unanswered: no more than RDY.
func take(t *testing.T, s *Subscriber, n int) []*Message {
	t.Helper()
	return receive(t, s, n, false)
}

// finish receives n messages and finishes each as it comes.
func finish(t *testing.T, s *Subscriber, n int) []*Message {
	t.Helper()
	return receive(t, s, n, true)
}

func receive(t *testing.T, s *Subscriber, n int, fin bool) []*Message {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var got []*Message
	for len(got) < n {
		batch := s.Next(ctx, nil, n-len(got))
		if len(batch) == 0 {
			t.Fatalf("received %d of %d messages", len(got), n)
		}
		for _, m := range batch {
			if fin {
				m.Finish()
			}
			got = append(got, m)
		}
	}
	return got
}

// max_in_flight is spread over the nsqd connected; every FIN reaches nsqd.
func TestRDYSpreadAndFinish(t *testing.T) {
	a, b := startNSQD(t, "", nil), startNSQD(t, "", nil)
	publish(t, a, 50, "a")
	publish(t, b, 50, "b")
	s := newSub(t, Config{Nsqd: []string{a.RealTCPAddr().String(), b.RealTCPAddr().String()}, MaxInFlight: 10})
	require.Eventually(t, func() bool {
		ra, rb := readyCounts(a), readyCounts(b)
		return len(ra) == 1 && len(rb) == 1 && ra[0] == 5 && rb[0] == 5
	}, 10*time.Second, 10*time.Millisecond, "RDY 5 on each of two nsqd")
	finish(t, s, 100)
	for _, n := range []*nsqd.NSQD{a, b} {
		require.Eventually(t, func() bool {
			c, _ := channelStats(n)
			return c.MessageCount == 50 && c.InFlightCount == 0 && c.Depth == 0 && c.RequeueCount == 0
		}, 10*time.Second, 10*time.Millisecond, "every message finished once")
	}
}

// max_in_flight above nsqd's max_rdy_count is reached through more
// connections to that nsqd: that many messages are held unanswered at once.
func TestMaxInFlightAboveMaxRdyCount(t *testing.T) {
	n := startNSQD(t, "", func(o *nsqd.Options) { o.MaxRdyCount = 10 })
	publish(t, n, 40, "m")
	s := newSub(t, Config{Nsqd: []string{n.RealTCPAddr().String()}, MaxInFlight: 25})
	require.Eventually(t, func() bool {
		r := readyCounts(n)
		return len(r) == 3 && r[0] == 8 && r[1] == 8 && r[2] == 8
	}, 10*time.Second, 10*time.Millisecond, "three connections of RDY 8 (25 over 3, at most 10 each)")
	held := take(t, s, 24)
	c, _ := channelStats(n)
	require.EqualValues(t, 24, c.InFlightCount)
	for _, m := range held {
		m.Finish()
	}
	finish(t, s, 16)
	require.Eventually(t, func() bool { c, _ := channelStats(n); return c.InFlightCount == 0 && c.Depth == 0 },
		10*time.Second, 10*time.Millisecond, "every message finished")
}

// Bodies whose buffers were released and reused arrive intact, in every
// size class of the frame pool, on either side of a class's limit, and
// above the largest.
func TestReleasedBodiesReused(t *testing.T) {
	n := startNSQD(t, "", nil)
	tp := n.GetTopic(topic)
	var want []string
	for c := 1; c < len(framePools)+1; c++ {
		limit := maxPooled + 100
		if c < len(framePools) {
			limit = frameCap(c)
		}
		for _, frame := range []int{limit - 1, limit, limit + 1} {
			body := strings.Repeat(strconv.Itoa(c%10), frame-26) // frame = 26 + body
			want = append(want, body, body)
			for range 2 {
				require.NoError(t, tp.PutMessage(nsqd.NewMessage(tp.GenerateID(), []byte(body))))
			}
		}
	}
	s := newSub(t, Config{Nsqd: []string{n.RealTCPAddr().String()}, MaxInFlight: 7})
	got := map[string]int{}
	for _, m := range finish(t, s, len(want)) {
		got[string(m.Body)]++
		m.ReleaseBody()
		require.Nil(t, m.Body)
		m.ReleaseBody() // twice: nothing happens
	}
	for _, b := range want {
		got[b]--
	}
	for b, n := range got {
		require.Zero(t, n, "body of %d bytes starting %q: received minus sent is %d", len(b), b[:1], n)
	}
}

func TestFrameClasses(t *testing.T) {
	for _, c := range []struct{ n, cap int }{
		{0, 0}, {1, 64}, {64, 64}, {65, 128}, {600, 640}, {2048, 2048}, {2049, 4096},
		{4096, 4096}, {4097, 8192}, {65536, 65536}, {65537, 65537},
	} {
		f := getFrame(c.n)
		require.Len(t, *f, c.n)
		require.Equal(t, c.cap, cap(*f), "frame of %d bytes", c.n)
		putFrame(f)
	}
	// What a burst leaves behind is kept up to classBytes a class.
	c := frameClass(600)
	for range 2 * classBytes / frameCap(c) {
		b := make([]byte, frameCap(c))
		putFrame(&b)
	}
	require.Len(t, framePools[c], classBytes/frameCap(c))
}

// A requeued message comes back after its delay, one attempt more.
func TestRequeueDelay(t *testing.T) {
	n := startNSQD(t, "", nil)
	publish(t, n, 1, "m")
	s := newSub(t, Config{Nsqd: []string{n.RealTCPAddr().String()}, MaxInFlight: 1})
	first := take(t, s, 1)[0]
	require.Equal(t, uint16(1), first.Attempts)
	first.Requeue(300 * time.Millisecond)
	require.Eventually(t, func() bool { c, _ := channelStats(n); return c.DeferredCount == 1 || c.RequeueCount == 1 },
		10*time.Second, 5*time.Millisecond, "nsqd defers it")
	again := take(t, s, 1)[0]
	require.Equal(t, first.ID, again.ID)
	require.Equal(t, uint16(2), again.Attempts)
	first.Finish() // answered already: no effect
	again.Finish()
	require.Eventually(t, func() bool { c, _ := channelStats(n); return c.InFlightCount == 0 && c.Depth == 0 },
		10*time.Second, 10*time.Millisecond)
	c, _ := channelStats(n)
	require.Equal(t, uint64(1), c.RequeueCount)
}

// The subscriber keeps every unanswered message alive, whether it waits
// for Next or the consumer holds it: it touches it at half the timeout
// nsqd announced in its IDENTIFY answer.
func TestUnansweredTouched(t *testing.T) {
	n := startNSQD(t, "", func(o *nsqd.Options) { o.MsgTimeout = time.Second })
	publish(t, n, 3, "m")
	s := newSub(t, Config{Nsqd: []string{n.RealTCPAddr().String()}, MaxInFlight: 3})
	m := take(t, s, 1)[0] // held by the consumer; two wait for Next
	require.Equal(t, time.Second, m.timeout(), "msg_timeout from nsqd's IDENTIFY answer")
	require.Eventually(t, func() bool { return s.Queued() == 2 }, 10*time.Second, 10*time.Millisecond)
	require.Never(t, func() bool { c, _ := channelStats(n); return c.TimeoutCount > 0 },
		3*time.Second, 50*time.Millisecond, "an unanswered message timed out in nsqd")
	for _, m := range append(take(t, s, 2), m) {
		require.True(t, m.Finish())
	}
	require.Eventually(t, func() bool { c, _ := channelStats(n); return c.InFlightCount == 0 && c.Depth == 0 },
		10*time.Second, 10*time.Millisecond)
	c, _ := channelStats(n)
	require.Zero(t, c.TimeoutCount)
	require.Zero(t, c.RequeueCount)
}

// Stop requeues what is unanswered, held or waiting, at once; what was
// answered stays answered, and an answer after Stop is dropped.
func TestStopRequeuesUnanswered(t *testing.T) {
	n := startNSQD(t, "", nil) // msg_timeout 60s: only a REQ brings them back soon
	publish(t, n, 4, "m")
	cfg := Config{Topic: topic, Channel: channel, Nsqd: []string{n.RealTCPAddr().String()}, MaxInFlight: 4,
		Log: testutil.Logger{}}
	s, err := New(cfg)
	require.NoError(t, err)
	s.Start()
	held := take(t, s, 2)
	require.True(t, held[0].Finish())
	require.Eventually(t, func() bool { return s.Queued() == 2 }, 10*time.Second, 10*time.Millisecond)
	s.Stop()
	require.False(t, held[1].Finish(), "requeued by Stop")

	c, _ := channelStats(n)
	require.EqualValues(t, 3, c.RequeueCount, "one held and two waiting, requeued")
	again := newSub(t, Config{Nsqd: []string{n.RealTCPAddr().String()}, MaxInFlight: 4})
	for _, m := range finish(t, again, 3) {
		require.Equal(t, uint16(2), m.Attempts)
	}
	require.Eventually(t, func() bool { c, _ := channelStats(n); return c.InFlightCount == 0 && c.Depth == 0 },
		10*time.Second, 10*time.Millisecond)
}

// nsqlookupd answers 404 until the topic has a producer, then lists one
// nsqd, then another: the subscriber follows.
func TestLookupdProducersChange(t *testing.T) {
	a, b := startNSQD(t, "", nil), startNSQD(t, "", nil)
	var listed atomic.Value
	listed.Store("")
	lookupd := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		addr := listed.Load().(string)
		if addr == "" {
			http.Error(w, `{"message":"TOPIC_NOT_FOUND"}`, http.StatusNotFound)
			return
		}
		host, port, _ := net.SplitHostPort(addr)
		fmt.Fprintf(w, `{"channels":["c"],"producers":[{"broadcast_address":%q,"tcp_port":%s}]}`, host, port)
	}))
	defer lookupd.Close()
	log := &testutil.CaptureLogger{}
	s := newSub(t, Config{Lookupd: []string{lookupd.URL}, MaxInFlight: 4, Log: log})
	require.Never(t, func() bool { return len(log.Warnings()) > 0 }, 300*time.Millisecond, 20*time.Millisecond,
		"a 404 (no producer yet) is no error")

	publish(t, a, 3, "a")
	listed.Store(a.RealTCPAddr().String())
	for _, m := range finish(t, s, 3) {
		require.True(t, strings.HasPrefix(string(m.Body), "a"))
	}
	publish(t, b, 3, "b")
	listed.Store(b.RealTCPAddr().String())
	for _, m := range finish(t, s, 3) {
		require.True(t, strings.HasPrefix(string(m.Body), "b"))
	}
}

// An nsqd that goes away and comes back on the same address is
// reconnected, and its messages are consumed.
func TestReconnect(t *testing.T) {
	first := startNSQD(t, "", nil)
	addr := first.RealTCPAddr().String()
	s := newSub(t, Config{Nsqd: []string{addr}, MaxInFlight: 2})
	require.Eventually(t, func() bool { return len(readyCounts(first)) == 1 }, 10*time.Second, 10*time.Millisecond)
	first.Exit()
	second := startNSQD(t, addr, nil)
	publish(t, second, 2, "x")
	finish(t, s, 2)
	require.Eventually(t, func() bool { c, _ := channelStats(second); return c.MessageCount == 2 && c.InFlightCount == 0 },
		10*time.Second, 10*time.Millisecond)
}

// Stop with messages in flight returns, and nsqd gets them back.
func TestStopWithMessagesInFlight(t *testing.T) {
	n := startNSQD(t, "", func(o *nsqd.Options) { o.MsgTimeout = time.Second })
	publish(t, n, 5, "m")
	s, err := New(Config{Topic: topic, Channel: channel, Nsqd: []string{n.RealTCPAddr().String()}, MaxInFlight: 5, Log: testutil.Logger{}})
	require.NoError(t, err)
	s.Start()
	take(t, s, 2)
	done := make(chan struct{})
	go func() { s.Stop(); close(done) }()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("Stop hangs with messages in flight")
	}
	require.Eventually(t, func() bool { c, _ := channelStats(n); return c.InFlightCount == 0 && c.Depth == 5 },
		10*time.Second, 20*time.Millisecond, "nsqd has every message back")
}

// A connection that stays open but carries no heartbeat is closed by the
// watchdog after two heartbeat intervals, and connected again.
func TestHeartbeatWatchdog(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	var conns atomic.Int32
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			conns.Add(1)
			go silentNSQD(c)
		}
	}()
	log := &testutil.CaptureLogger{}
	newSub(t, Config{Nsqd: []string{ln.Addr().String()}, MaxInFlight: 1, HeartbeatInterval: 200 * time.Millisecond, Log: log})
	require.Eventually(t, func() bool { return conns.Load() >= 2 }, 30*time.Second, 20*time.Millisecond,
		"the silent connection is dropped and made again")
	require.Contains(t, strings.Join(log.Warnings(), "\n"), "No heartbeat from nsqd")
}

// silentNSQD answers the handshake as nsqd does, then says nothing more.
func silentNSQD(c net.Conn) {
	defer c.Close()
	r := bufio.NewReader(c)
	magic := make([]byte, 4)
	if _, err := r.Read(magic); err != nil {
		return
	}
	respond := func(body string) {
		var hdr [8]byte
		binary.BigEndian.PutUint32(hdr[:4], uint32(4+len(body)))
		c.Write(append(hdr[:], body...)) // frame type 0: response
	}
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			return
		}
		switch {
		case strings.HasPrefix(line, "IDENTIFY"):
			var size [4]byte
			if _, err := r.Read(size[:]); err != nil {
				return
			}
			body := make([]byte, binary.BigEndian.Uint32(size[:]))
			if _, err := io.ReadFull(r, body); err != nil {
				return
			}
			respond(`{"max_rdy_count":2500,"msg_timeout":` + strconv.Itoa(60000) + `}`)
		case strings.HasPrefix(line, "SUB"):
			respond("OK")
		}
	}
}

// nsqd keeps no message past its max_msg_timeout after it sent it: TOUCH
// is capped there (channel.TouchMessage), then nsqd times the message out
// and sends it again, and the old copy's FIN or TOUCH fails (or, on the
// same connection, acts on the new copy). The subscriber learns
// max_msg_timeout from IDENTIFY and gives a message held that long up
// shortly before nsqd's deadline: it sends nothing more for it, drops it
// from its queue and counts it (TimedOut); the new copy is delivered and
// finished as any message.
func TestMaxMsgTimeoutGivesUp(t *testing.T) {
	n := startNSQD(t, "", func(o *nsqd.Options) {
		o.MsgTimeout, o.MaxMsgTimeout = time.Second, 3*time.Second
	})
	publish(t, n, 3, "m")
	log := &testutil.CaptureLogger{}
	var timedOut atomic.Int64
	s := newSub(t, Config{Nsqd: []string{n.RealTCPAddr().String()}, MaxInFlight: 3, Log: log,
		TimedOut: func(*Message) { timedOut.Add(1) }})

	// One message is taken and held unanswered; two wait for Next. The
	// subscriber touches all three.
	held := take(t, s, 1)[0]
	require.Equal(t, 3*time.Second-250*time.Millisecond-holdMargin, held.sess.holdFor,
		"max_msg_timeout and output_buffer_timeout from nsqd's IDENTIFY answer")
	require.Eventually(t, func() bool { return s.Queued() == 2 }, 10*time.Second, 10*time.Millisecond)
	ids := map[[16]byte]bool{held.ID: true}
	s.un.mu.Lock()
	for _, m := range s.un.msgs[s.un.next:] {
		ids[m.ID] = true
	}
	s.un.mu.Unlock()
	require.Len(t, ids, 3)

	require.Eventually(t, func() bool { return held.state.Load() == msgExpired }, 30*time.Second, 50*time.Millisecond,
		"the subscriber never gives the held message up")
	c, _ := channelStats(n)
	require.Zero(t, c.TimeoutCount, "given up before nsqd's own deadline")
	require.False(t, held.Finish(), "a message given up is not answered")
	held.touch() // nothing is sent
	require.Eventually(t, func() bool { return s.Queued() == 0 && timedOut.Load() == 3 },
		10*time.Second, 10*time.Millisecond, "the queued copies are given up and dropped too, each counted once")

	// nsqd times the three out and sends them again: processed as new.
	for _, m := range finish(t, s, 3) {
		require.True(t, ids[m.ID], "a message published")
		delete(ids, m.ID)
		require.Equal(t, uint16(2), m.Attempts)
		require.False(t, m.Expired(time.Now()), "answered: never given up")
	}
	require.Eventually(t, func() bool { c, _ := channelStats(n); return c.InFlightCount == 0 && c.Depth == 0 },
		10*time.Second, 10*time.Millisecond, "every message finished")
	c, _ = channelStats(n)
	require.EqualValues(t, 3, c.TimeoutCount)
	require.EqualValues(t, 3, timedOut.Load())
	for _, e := range log.Messages() {
		require.NotContains(t, e.String(), "E_FIN_FAILED", "a FIN for a copy nsqd took back")
		require.NotContains(t, e.String(), "E_TOUCH_FAILED", "a TOUCH for a copy nsqd took back")
	}
}
