// Package nsqsub is a lean NSQ subscriber (protocol V2) for one topic and
// channel over any number of nsqd, found directly or through nsqlookupd.
//
// Why not go-nsq's Consumer: it writes and flushes every FIN with its own
// write syscall, which measured ~40% of mailevents' CPU. Here answers
// (FIN, REQ, TOUCH) queue to one writer per connection that flushes once per
// burst, and reads need no per-frame deadline (a heartbeat watchdog closes
// dead connections instead). go-nsq still encodes the handshake commands.
package nsqsub

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/bits"
	"net"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nsqio/go-nsq"
)

// Logger is what the subscriber logs through (telegraf.Logger fits).
type Logger interface {
	Debugf(format string, args ...any)
	Infof(format string, args ...any)
	Warnf(format string, args ...any)
	Errorf(format string, args ...any)
}

// Config describes a subscription.
type Config struct {
	Topic             string
	Channel           string
	Nsqd              []string // TCP addresses, reconnected forever
	Lookupd           []string // HTTP addresses, polled every ReconnectInterval
	MaxInFlight       int      // spread over the connections
	MsgTimeout        time.Duration
	HeartbeatInterval time.Duration
	ReconnectInterval time.Duration
	DialTimeout       time.Duration
	TLS               *tls.Config
	AuthSecret        string
	UserAgent         string
	Log               Logger

	// TimedOut, if set, is called once for each message given up because
	// it was held unanswered too close to nsqd's max_msg_timeout (see
	// Message.Expired), from the goroutine that found it so: it must not
	// block.
	TimedOut func(*Message)
}

// Message is one NSQ message. At most one of Finish and Requeue takes
// effect, and neither once the message was given up (Expired); Touch is
// ignored once it was answered or given up.
type Message struct {
	ID        [16]byte
	Body      []byte
	Timestamp int64 // publish time, ns
	Attempts  uint16
	NSQDAddr  string

	frame   *[]byte // Body's buffer, until ReleaseBody
	sess    *session
	expires int64         // given up from then on (clock); 0: never
	state   atomic.Uint32 // msgPending, msgAnswered or msgExpired
}

// A message's state: unanswered, answered (FIN or REQ sent), or given up
// (Expired).
const (
	msgPending uint32 = iota
	msgAnswered
	msgExpired
)

// epoch starts the clock that message deadlines are kept on: monotonic,
// and 8 bytes a message where a time.Time would take 24.
var epoch = time.Now()

func clock(t time.Time) int64 { return int64(t.Sub(epoch)) }

// ReleaseBody hands Body's buffer on to a later message: call it once
// nothing points into Body any more (what is kept was copied). Body is nil
// afterwards. Optional: a body never released is garbage collected.
func (m *Message) ReleaseBody() {
	if m.frame != nil {
		putFrame(m.frame)
	}
	m.Body, m.frame = nil, nil
}

// Frame buffers are reused by size class: multiples of 64 bytes up to
// 2 KiB (mail events are mostly a few hundred bytes, and rounding them up
// further would add to the memory of every message waiting to be
// decoded), then powers of two up to 64 KiB. A message's frame is most of
// what reading it allocates, and it is garbage as soon as the message is
// decoded. Each class keeps at most 256 KiB of them: a sync.Pool would
// keep the frames of every message of a burst (100,000 held for the
// outputs) until the next garbage collection, which an agent waiting for
// its outputs does not start.
const (
	fineStep    = 64
	fineClasses = 2048 / fineStep
	maxPooled   = 64 << 10
	classBytes  = 256 << 10
)

var framePools = func() (p [fineClasses + 6]chan *[]byte) {
	for c := 1; c < len(p); c++ {
		p[c] = make(chan *[]byte, max(classBytes/frameCap(c), 1))
	}
	return p
}()

// frameClass is the class of a frame of n bytes (0: none, not pooled).
func frameClass(n int) int {
	switch {
	case n <= 0 || n > maxPooled:
		return 0
	case n <= fineClasses*fineStep:
		return (n + fineStep - 1) / fineStep
	}
	return fineClasses + bits.Len(uint(n-1)) - bits.Len(fineClasses*fineStep-1) // 4 KiB: fineClasses+1
}

// frameCap is the size of the frames of class c.
func frameCap(c int) int {
	if c <= fineClasses {
		return c * fineStep
	}
	return fineClasses * fineStep << (c - fineClasses)
}

func getFrame(n int) *[]byte {
	c := frameClass(n)
	if c == 0 {
		b := make([]byte, n)
		return &b
	}
	select {
	case p := <-framePools[c]:
		*p = (*p)[:n]
		return p
	default:
		b := make([]byte, n, frameCap(c))
		return &b
	}
}

func putFrame(p *[]byte) {
	if c := frameClass(cap(*p)); c != 0 && cap(*p) == frameCap(c) {
		select {
		case framePools[c] <- p:
		default: // full: left to the garbage collector
		}
	}
}

// Finish tells nsqd the message is done with. It reports whether it did:
// not if the message was answered or given up (Expired) before.
func (m *Message) Finish() bool {
	if !m.state.CompareAndSwap(msgPending, msgAnswered) {
		return false
	}
	m.sess.send(command{op: opFin, id: m.ID})
	return true
}

// Requeue hands the message back to nsqd for redelivery after delay. It
// reports whether it did, as Finish does.
func (m *Message) Requeue(delay time.Duration) bool {
	if !m.state.CompareAndSwap(msgPending, msgAnswered) {
		return false
	}
	m.sess.send(command{op: opReq, id: m.ID, delay: delay})
	return true
}

// Timeout is nsqd's message timeout on the connection the message came
// on (its --msg-timeout, or the msg_timeout asked for in IDENTIFY): a
// message not answered or touched within it is redelivered.
func (m *Message) Timeout() time.Duration { return m.sess.msgTimeout }

// Touch resets nsqd's timeout of the message, but never past nsqd's
// max_msg_timeout after nsqd sent it (see Expired).
func (m *Message) Touch() {
	if m.state.Load() == msgPending {
		m.sess.send(command{op: opTouch, id: m.ID})
	}
}

// Expired reports whether the message was given up: held unanswered for
// nearly nsqd's max_msg_timeout (its --max-msg-timeout, 15m by default,
// announced in IDENTIFY). nsqd caps every TOUCH at that long after it sent
// the message, then times the message out and sends it again (the same
// ID, one attempt more), to this subscriber or another; the FIN, REQ or
// TOUCH of the old copy would then fail, or, on the same connection, act
// on the new one. So whoever holds an unanswered message asks this each
// time it looks at it (as it decides whether to touch it), and forgets it
// once it is true: the new delivery is processed as any message.
//
// The first call at or after the deadline gives the message up: Finish,
// Requeue and Touch do nothing from then on, and Config.TimedOut is
// called, once. The deadline is ahead of nsqd's own by a margin (see
// holdFor), so that nothing is sent for the message once nsqd took it
// back. A message that was answered is never given up.
func (m *Message) Expired(now time.Time) bool {
	switch m.state.Load() {
	case msgExpired:
		return true
	case msgAnswered:
		return false
	}
	if m.expires == 0 || clock(now) < m.expires {
		return false
	}
	if !m.state.CompareAndSwap(msgPending, msgExpired) {
		return m.state.Load() == msgExpired
	}
	if f := m.sess.timedOut; f != nil {
		f(m)
	}
	return true
}

// Subscriber delivers messages of its topic to its channel, in batches
// (Next).
type Subscriber struct {
	cfg  Config
	ctx  context.Context
	stop context.CancelFunc
	wg   sync.WaitGroup

	mu    sync.Mutex
	conns map[connKey]*conn

	// Messages read wait here until the consumer takes them, touched
	// while they wait: a read loop never blocks on a slow consumer (so
	// heartbeats are always read), and no waiting message times out.
	// queue[head:] is waiting; the array is reused once it is empty.
	qmu   sync.Mutex
	queue []queued
	head  int
	wake  chan struct{}
}

type queued struct {
	m     *Message
	since time.Time // read, or last touched
}

// New checks cfg; Start connects.
func New(cfg Config) (*Subscriber, error) {
	if !nsq.IsValidTopicName(cfg.Topic) || !nsq.IsValidChannelName(cfg.Channel) {
		return nil, fmt.Errorf("invalid topic %q or channel %q", cfg.Topic, cfg.Channel)
	}
	if cfg.MaxInFlight <= 0 {
		cfg.MaxInFlight = 1
	}
	if cfg.HeartbeatInterval <= 0 {
		cfg.HeartbeatInterval = 30 * time.Second
	}
	if cfg.ReconnectInterval <= 0 {
		cfg.ReconnectInterval = 10 * time.Second
	}
	if cfg.DialTimeout <= 0 {
		cfg.DialTimeout = 5 * time.Second
	}
	if cfg.UserAgent == "" {
		cfg.UserAgent = "mailtick-nsqsub"
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &Subscriber{
		cfg: cfg, ctx: ctx, stop: cancel,
		conns: make(map[connKey]*conn),
		wake:  make(chan struct{}, 1),
	}, nil
}

// Queued is how many messages wait for Next.
func (s *Subscriber) Queued() int {
	s.qmu.Lock()
	defer s.qmu.Unlock()
	return len(s.queue) - s.head
}

// Next waits for messages and returns up to max of them, in the order
// read, appended to buf[:0]; it returns none once ctx ends or the
// subscriber stops. Several goroutines may call it at once. A message
// whose connection closed while it waited is left out: nsqd has taken it
// back.
func (s *Subscriber) Next(ctx context.Context, buf []*Message, max int) []*Message {
	buf = buf[:0]
	for {
		s.qmu.Lock()
		for s.head < len(s.queue) && len(buf) < max {
			m := s.queue[s.head].m
			s.queue[s.head] = queued{}
			s.head++
			if !m.sess.closed() {
				buf = append(buf, m)
			}
		}
		more := s.head < len(s.queue)
		if !more {
			s.queue, s.head = s.queue[:0], 0
		}
		s.qmu.Unlock()
		if more { // pass the wake-up on to the next consumer
			s.signal()
		}
		if len(buf) > 0 {
			return buf
		}
		select {
		case <-ctx.Done():
			return buf
		case <-s.ctx.Done():
			return buf
		case <-s.wake:
		}
	}
}

func (s *Subscriber) signal() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// Start connects to every nsqd and starts polling nsqlookupd. An nsqd that
// is down is retried in the background; Start itself does not fail on it.
func (s *Subscriber) Start() {
	s.wg.Add(1)
	go s.touchQueued()
	for _, addr := range s.cfg.Nsqd {
		s.keep(connKey{addr, 0}, true)
	}
	if len(s.cfg.Lookupd) > 0 {
		s.wg.Add(1)
		go s.pollLookupd()
	}
}

// Stop closes every connection after writing the answers already queued.
// Messages left unanswered are redelivered by nsqd after their timeout.
func (s *Subscriber) Stop() {
	s.stop()
	s.mu.Lock()
	for _, c := range s.conns {
		c.close()
	}
	s.mu.Unlock()
	s.wg.Wait()
}

// enqueue adds messages read from nsqd to the queue.
func (s *Subscriber) enqueue(ms []*Message) {
	now := time.Now()
	s.qmu.Lock()
	if s.head > 0 && len(s.queue)+len(ms) > cap(s.queue) {
		// Slide what waits to the front rather than grow the array.
		n := copy(s.queue, s.queue[s.head:])
		clear(s.queue[n:])
		s.queue, s.head = s.queue[:n], 0
	}
	for _, m := range ms {
		s.queue = append(s.queue, queued{m: m, since: now})
	}
	s.qmu.Unlock()
	s.signal()
}

// touchQueued touches messages that have waited in the queue for half
// their timeout, and drops those given up (Message.Expired): nsqd sends
// them again, and a stale copy must not stay in the queue meanwhile.
func (s *Subscriber) touchQueued() {
	defer s.wg.Done()
	t := time.NewTicker(touchCheck)
	defer t.Stop()
	for {
		select {
		case <-s.ctx.Done():
			return
		case now := <-t.C:
			var touch, gone []*Message
			s.qmu.Lock()
			kept := s.head
			for i := s.head; i < len(s.queue); i++ {
				q := s.queue[i]
				if q.m.Expired(now) {
					gone = append(gone, q.m)
					continue
				}
				if now.Sub(q.since) >= q.m.Timeout()/2 {
					touch = append(touch, q.m)
					q.since = now
				}
				s.queue[kept] = q
				kept++
			}
			clear(s.queue[kept:])
			s.queue = s.queue[:kept]
			if kept == s.head {
				s.queue, s.head = s.queue[:0], 0
			}
			s.qmu.Unlock()
			for _, m := range gone {
				m.ReleaseBody() // nobody took it from the queue
			}
			for _, m := range touch { // outside the lock: a full writer queue must not stall the reader
				m.Touch()
			}
		}
	}
}

// touchCheck is how often waiting messages are looked at; nsqd's message
// timeout is at least 1s.
const touchCheck = 250 * time.Millisecond

// connKey names one connection to an nsqd: its address, and its number
// there. A connection's RDY cannot exceed the max_rdy_count nsqd announces
// (its --max-rdy-count, 2500 by default), so where max_in_flight gives an
// nsqd more, the subscriber opens as many connections to it as that takes.
type connKey struct {
	addr string
	n    int
}

// keep runs one nsqd connection: connect, serve, and (if persistent, or
// while nsqlookupd still lists it) reconnect when it breaks.
func (s *Subscriber) keep(key connKey, persistent bool) {
	s.mu.Lock()
	if _, ok := s.conns[key]; ok || s.ctx.Err() != nil {
		s.mu.Unlock()
		return
	}
	c := &conn{addr: key.addr, sub: s, persistent: persistent}
	s.conns[key] = c
	s.wg.Add(1)
	s.mu.Unlock()

	go func() {
		defer s.wg.Done()
		defer func() {
			s.mu.Lock()
			delete(s.conns, key)
			s.mu.Unlock()
			s.updateRDY()
		}()
		for attempt := 0; ; attempt++ {
			err := c.run()
			if s.ctx.Err() != nil {
				return
			}
			if attempt == 0 || !errors.Is(err, errConnect) {
				s.cfg.Log.Warnf("NSQ connection to %q for topic %q: %v; retrying every %s", key.addr, s.cfg.Topic, err, s.cfg.ReconnectInterval)
			}
			s.updateRDY() // the other connections take over its share
			if !persistent {
				return // nsqlookupd will list it again if it is still there
			}
			select {
			case <-s.ctx.Done():
				return
			case <-time.After(s.cfg.ReconnectInterval):
			}
		}
	}()
}

// updateRDY spreads max_in_flight over the nsqd connected, and each nsqd's
// share over its connections, opening more where the share exceeds what
// nsqd allows one connection.
func (s *Subscriber) updateRDY() {
	s.mu.Lock()
	type group struct {
		live       []*conn
		all        int // connecting ones too
		maxRdy     int
		persistent bool
	}
	groups := make(map[string]*group)
	for k, c := range s.conns {
		g := groups[k.addr]
		if g == nil {
			g = &group{}
			groups[k.addr] = g
		}
		g.all++
		if k.n == 0 {
			g.persistent = c.persistent
		}
		if sess := c.cur.Load(); sess != nil {
			g.live = append(g.live, c)
			g.maxRdy = sess.maxRdy
		}
	}
	live := 0
	for _, g := range groups {
		if len(g.live) > 0 {
			live++
		}
	}
	if live == 0 {
		s.mu.Unlock()
		return
	}
	share := max(1, s.cfg.MaxInFlight/live)
	var more []connKey
	var persistent []bool
	for addr, g := range groups {
		if len(g.live) == 0 {
			continue
		}
		want := (share + g.maxRdy - 1) / g.maxRdy
		for n := 0; g.all < want; n++ {
			if _, ok := s.conns[connKey{addr, n}]; !ok {
				more = append(more, connKey{addr, n})
				persistent = append(persistent, g.persistent)
				g.all++
			}
		}
		// Divided by every connection wanted, not only the live ones, so
		// the nsqd never has more than its share out while more connect.
		per := max(1, share/max(want, len(g.live)))
		for _, c := range g.live {
			c.setRDY(per)
		}
	}
	s.mu.Unlock()
	for i, k := range more {
		s.keep(k, persistent[i])
	}
}

func (s *Subscriber) pollLookupd() {
	defer s.wg.Done()
	client := &http.Client{Timeout: s.cfg.DialTimeout}
	for {
		for _, l := range s.cfg.Lookupd {
			addrs, err := lookup(client, l, s.cfg.Topic)
			if err != nil {
				s.cfg.Log.Warnf("Querying nsqlookupd %q for topic %q: %v", l, s.cfg.Topic, err)
				continue
			}
			for _, a := range addrs {
				s.keep(connKey{a, 0}, false)
			}
		}
		select {
		case <-s.ctx.Done():
			return
		case <-time.After(s.cfg.ReconnectInterval):
		}
	}
}

func lookup(client *http.Client, lookupd, topic string) ([]string, error) {
	u := lookupd
	if !hasScheme(u) {
		u = "http://" + u
	}
	resp, err := client.Get(u + "/lookup?topic=" + url.QueryEscape(topic))
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusNotFound {
		return nil, nil // the topic has no producer yet
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET /lookup: %s", resp.Status)
	}
	var r struct {
		Producers []struct {
			BroadcastAddress string `json:"broadcast_address"`
			TCPPort          int    `json:"tcp_port"`
		} `json:"producers"`
	}
	// A broken or hostile nsqlookupd's endless answer is not held whole.
	if err := json.NewDecoder(io.LimitReader(resp.Body, maxLookupBytes)).Decode(&r); err != nil {
		return nil, fmt.Errorf("decoding /lookup (at most %d bytes): %w", maxLookupBytes, err)
	}
	addrs := make([]string, 0, len(r.Producers))
	for _, p := range r.Producers {
		addrs = append(addrs, net.JoinHostPort(p.BroadcastAddress, strconv.Itoa(p.TCPPort)))
	}
	return addrs, nil
}

// maxLookupBytes bounds an nsqlookupd answer: a producer takes about 200
// bytes of it.
const maxLookupBytes = 1 << 20

func hasScheme(u string) bool {
	return len(u) > 7 && (u[:7] == "http://" || (len(u) > 8 && u[:8] == "https://"))
}

var errConnect = errors.New("connect")

const (
	opFin = iota
	opReq
	opTouch
	opRdy
	opNop
	opCls
)

type command struct {
	op    int
	id    [16]byte
	delay time.Duration
	n     int
}

// conn keeps one nsqd address connected; each connection is a session.
type conn struct {
	addr       string
	sub        *Subscriber
	persistent bool
	cur        atomic.Pointer[session] // the live session, if any
	rdy        atomic.Int64
}

// session is one TCP connection. Messages keep the session they came on:
// an answer to a message of a closed session is dropped, as nsqd has
// already taken the message back.
type session struct {
	net        net.Conn
	cmds       chan command
	done       chan struct{}
	once       sync.Once
	msgTimeout time.Duration
	maxRdy     int
	holdFor    time.Duration  // how long a message may be held (0: no limit)
	timedOut   func(*Message) // Config.TimedOut
}

func newSession(nc net.Conn, hs negotiated) *session {
	return &session{net: nc, cmds: make(chan command, sessionQueue), done: make(chan struct{}),
		msgTimeout: hs.msgTimeout, maxRdy: hs.maxRdy, holdFor: hs.holdFor}
}

// sessionQueue is how many answers a session queues for its writer; a
// full queue makes the answering goroutine wait (a burst is written with
// one flush). Sessions multiply with max_in_flight (see connKey), so this
// stays modest.
const sessionQueue = 1024

func (s *session) closed() bool {
	select {
	case <-s.done:
		return true
	default:
		return false
	}
}

func (s *session) send(cmd command) {
	select {
	case s.cmds <- cmd:
	case <-s.done:
	}
}

func (s *session) close() {
	s.once.Do(func() {
		close(s.done)
		_ = s.net.SetReadDeadline(time.Now()) // unblocks the reader
		// Bounds the writer: its last flush, or a write blocked on a peer
		// that stopped reading, ends within closeFlush.
		_ = s.net.SetWriteDeadline(time.Now().Add(closeFlush))
	})
}

// closeFlush is how long a closing session may take to write its last
// answers.
const closeFlush = time.Second

func (c *conn) setRDY(n int) {
	if sess := c.cur.Load(); sess != nil && c.rdy.Swap(int64(n)) != int64(n) {
		sess.send(command{op: opRdy, n: n})
	}
}

func (c *conn) close() {
	if sess := c.cur.Load(); sess != nil {
		sess.close()
	}
}

// run connects, subscribes and serves until the connection ends.
func (c *conn) run() error {
	cfg := &c.sub.cfg
	nc, r, hs, err := c.handshake()
	if err != nil {
		return fmt.Errorf("%w: %w", errConnect, err)
	}
	sess := newSession(nc, hs)
	sess.timedOut = cfg.TimedOut
	c.rdy.Store(0)
	c.cur.Store(sess)
	defer c.cur.Store(nil)
	if c.sub.ctx.Err() != nil { // Stop ran while we connected
		nc.Close()
		return nil
	}
	cfg.Log.Infof("Subscribed to %q/%q on nsqd %q", cfg.Topic, cfg.Channel, c.addr)

	writerDone := make(chan error, 1)
	go func() { writerDone <- sess.writeLoop() }()
	c.sub.updateRDY()

	readErr := c.readLoop(r, sess)
	sess.close()
	werr := <-writerDone
	nc.Close()
	if c.sub.ctx.Err() != nil {
		return nil
	}
	if readErr != nil {
		return readErr
	}
	return werr
}

// negotiated is what nsqd's IDENTIFY answer settles for a connection.
type negotiated struct {
	maxRdy     int
	msgTimeout time.Duration
	holdFor    time.Duration // see holdFor
}

// identifyResponse is nsqd's answer to IDENTIFY (go-nsq's type lacks
// msg_timeout, max_msg_timeout and output_buffer_timeout).
type identifyResponse struct {
	nsq.IdentifyResponse
	MsgTimeout          int64 `json:"msg_timeout"`           // ms
	MaxMsgTimeout       int64 `json:"max_msg_timeout"`       // ms
	OutputBufferTimeout int64 `json:"output_buffer_timeout"` // ms
}

// holdFor is how long after it was read a message may be held unanswered
// (0: no limit). nsqd's TouchMessage caps a message's timeout at
// max_msg_timeout after it sent it (its deliveryTS), then times it out and
// requeues it. It sent it before it was read here: it buffers what it
// writes for up to output_buffer_timeout, and the network adds its delay;
// the holders look at their messages every touchCheck, and a FIN or TOUCH
// queued last takes its time to be written. holdMargin covers those, so
// that no answer for a message reaches nsqd once it took it back. Never
// less than half max_msg_timeout.
func holdFor(maxMsgTimeout, outputBufferTimeout time.Duration) time.Duration {
	if maxMsgTimeout <= 0 {
		return 0
	}
	return max(maxMsgTimeout-outputBufferTimeout-holdMargin, maxMsgTimeout/2)
}

// holdMargin is what holdFor keeps between the subscriber's deadline for a
// message and nsqd's, beyond nsqd's output buffer timeout.
const holdMargin = time.Second

func (c *conn) handshake() (net.Conn, *bufio.Reader, negotiated, error) {
	cfg := &c.sub.cfg
	nc, err := net.DialTimeout("tcp", c.addr, cfg.DialTimeout)
	if err != nil {
		return nil, nil, negotiated{}, err
	}
	fail := func(err error) (net.Conn, *bufio.Reader, negotiated, error) {
		nc.Close()
		return nil, nil, negotiated{}, err
	}
	_ = nc.SetDeadline(time.Now().Add(cfg.DialTimeout))
	if _, err := nc.Write(nsq.MagicV2); err != nil {
		return fail(err)
	}
	host, _ := os.Hostname()
	ident := map[string]any{
		"client_id": host, "hostname": host, "user_agent": cfg.UserAgent,
		"feature_negotiation": true, "tls_v1": cfg.TLS != nil,
		"heartbeat_interval": cfg.HeartbeatInterval.Milliseconds(),
	}
	if cfg.MsgTimeout > 0 {
		ident["msg_timeout"] = cfg.MsgTimeout.Milliseconds()
	}
	cmd, err := nsq.Identify(ident)
	if err != nil {
		return fail(err)
	}
	body, err := roundTrip(nc, nc, cmd)
	if err != nil {
		return fail(fmt.Errorf("IDENTIFY: %w", err))
	}
	var resp identifyResponse
	if len(body) > 0 && body[0] == '{' {
		if err := json.Unmarshal(body, &resp); err != nil {
			return fail(fmt.Errorf("IDENTIFY response: %w", err))
		}
	}
	if cfg.TLS != nil {
		if !resp.TLSv1 {
			return fail(errors.New("TLS is configured but nsqd does not offer it"))
		}
		tc := cfg.TLS.Clone()
		if tc.ServerName == "" {
			tc.ServerName, _, _ = net.SplitHostPort(c.addr)
		}
		tlsConn := tls.Client(nc, tc)
		if err := tlsConn.Handshake(); err != nil {
			return fail(fmt.Errorf("TLS: %w", err))
		}
		nc = tlsConn
		if _, err := readFrame(nc); err != nil { // nsqd's OK after the upgrade
			return fail(fmt.Errorf("TLS: %w", err))
		}
	}
	if resp.AuthRequired {
		if cfg.AuthSecret == "" {
			return fail(errors.New("nsqd requires auth but no auth_secret is set"))
		}
		cmd, err := nsq.Auth(cfg.AuthSecret)
		if err != nil {
			return fail(err)
		}
		if _, err := roundTrip(nc, nc, cmd); err != nil {
			return fail(fmt.Errorf("AUTH: %w", err))
		}
	}
	if _, err := roundTrip(nc, nc, nsq.Subscribe(cfg.Topic, cfg.Channel)); err != nil {
		return fail(fmt.Errorf("SUB: %w", err))
	}
	_ = nc.SetDeadline(time.Time{})
	hs := negotiated{
		maxRdy:     int(resp.MaxRdyCount),
		msgTimeout: time.Duration(resp.MsgTimeout) * time.Millisecond,
		holdFor:    holdFor(time.Duration(resp.MaxMsgTimeout)*time.Millisecond, time.Duration(resp.OutputBufferTimeout)*time.Millisecond),
	}
	if hs.maxRdy <= 0 {
		hs.maxRdy = 2500 // nsqd's default --max-rdy-count
	}
	if hs.msgTimeout <= 0 {
		hs.msgTimeout = cfg.MsgTimeout
	}
	if hs.msgTimeout <= 0 {
		hs.msgTimeout = 60 * time.Second // nsqd's default --msg-timeout
	}
	return nc, bufio.NewReaderSize(nc, 64*1024), hs, nil
}

func roundTrip(w io.Writer, r io.Reader, cmd *nsq.Command) ([]byte, error) {
	if _, err := cmd.WriteTo(w); err != nil {
		return nil, err
	}
	f, err := readFrame(r)
	if err != nil {
		return nil, err
	}
	return f, nil
}

// maxHandshakeFrame bounds what a handshake answer may announce: nsqd's
// are a few hundred bytes, and a peer found through an unauthenticated
// nsqlookupd must not make the agent allocate gigabytes.
const maxHandshakeFrame = 64 << 10

// readFrame reads one handshake frame and returns its data if it is a
// response.
func readFrame(r io.Reader) ([]byte, error) {
	var hdr [8]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return nil, err
	}
	size := binary.BigEndian.Uint32(hdr[:4])
	if size < 4 || size > maxHandshakeFrame {
		return nil, fmt.Errorf("bad handshake frame size %d (at most %d)", size, maxHandshakeFrame)
	}
	typ := int32(binary.BigEndian.Uint32(hdr[4:]))
	data := make([]byte, size-4)
	if _, err := io.ReadFull(r, data); err != nil {
		return nil, err
	}
	if typ == nsq.FrameTypeError {
		return nil, fmt.Errorf("nsqd: %s", data)
	}
	return data, nil
}

// maxFrame guards against a corrupt size field; nsqd's --max-msg-size is
// 1MiB by default and configurable, so allow generously.
const maxFrame = 64 << 20

func (c *conn) readLoop(r *bufio.Reader, sess *session) error {
	done := sess.done
	cfg := &c.sub.cfg
	var frames atomic.Uint64
	// Watchdog: nsqd sends a heartbeat every HeartbeatInterval; no frame
	// for two of them means the connection is dead.
	go func() {
		t := time.NewTicker(cfg.HeartbeatInterval)
		defer t.Stop()
		last := frames.Load()
		idle := 0
		for {
			select {
			case <-done:
				return
			case <-t.C:
			}
			if n := frames.Load(); n != last {
				last, idle = n, 0
				continue
			}
			if idle++; idle >= 2 {
				cfg.Log.Warnf("No heartbeat from nsqd %q for %s, reconnecting", c.addr, 2*cfg.HeartbeatInterval)
				sess.close()
				return
			}
		}
	}()

	// Messages read in one burst go to the queue together; their structs
	// are cut from shared blocks. (Bodies are not, as a shared block would
	// stay as long as any of its messages waits: each has a frame buffer
	// of its own, from a pool it goes back to once decoded.)
	var batch []*Message
	var msgs []Message
	var hdr [8]byte
	var readAt int64 // when the batch's first message was read (clock)
	for {
		if len(batch) > 0 && r.Buffered() < len(hdr) {
			c.sub.enqueue(batch) // about to wait for the network
			clear(batch)
			batch = batch[:0]
		}
		if _, err := io.ReadFull(r, hdr[:]); err != nil {
			return c.readErr(err, done)
		}
		frames.Add(1)
		size := binary.BigEndian.Uint32(hdr[:4])
		typ := int32(binary.BigEndian.Uint32(hdr[4:]))
		if size < 4 || size > maxFrame {
			return fmt.Errorf("bad frame size %d", size)
		}
		frame := getFrame(int(size - 4))
		data := *frame
		if _, err := io.ReadFull(r, data); err != nil {
			return c.readErr(err, done)
		}
		switch typ {
		case nsq.FrameTypeMessage:
			if len(data) < 26 {
				return fmt.Errorf("short message frame (%d bytes)", len(data))
			}
			if len(msgs) == 0 {
				msgs = make([]Message, msgBlock)
			}
			m := &msgs[0]
			msgs = msgs[1:]
			if sess.holdFor > 0 {
				// nsqd sent every message of the batch after it sent the
				// first: the first's read time errs early, on the safe side.
				if len(batch) == 0 {
					readAt = clock(time.Now())
				}
				m.expires = readAt + int64(sess.holdFor)
			}
			m.Timestamp = int64(binary.BigEndian.Uint64(data[:8]))
			m.Attempts = binary.BigEndian.Uint16(data[8:10])
			m.Body, m.frame = data[26:], frame
			m.NSQDAddr = c.addr
			m.sess = sess
			copy(m.ID[:], data[10:26])
			batch = append(batch, m)
		case nsq.FrameTypeResponse:
			if string(data) == "_heartbeat_" {
				sess.send(command{op: opNop})
			}
			putFrame(frame)
		case nsq.FrameTypeError:
			// E_FIN_FAILED and friends follow a message that timed out or
			// was answered twice: worth a debug line, not a reconnect.
			cfg.Log.Debugf("nsqd %q: %s", c.addr, data)
			putFrame(frame)
		}
	}
}

// msgBlock is how many message structs are allocated at once.
const msgBlock = 64

func (c *conn) readErr(err error, done <-chan struct{}) error {
	select {
	case <-done:
		return nil // closed on purpose
	default:
		return err
	}
}

// writeLoop writes queued commands and flushes once the queue is empty, so
// a burst of FINs costs one syscall. On close it writes what was queued,
// then CLS.
func (s *session) writeLoop() error {
	maxRdy := s.maxRdy
	cmds, done := s.cmds, s.done
	w := bufio.NewWriterSize(s.net, 32*1024)
	var line []byte
	write := func(cmd command) {
		line = line[:0]
		switch cmd.op {
		case opFin:
			line = append(append(append(line, "FIN "...), cmd.id[:]...), '\n')
		case opReq:
			line = append(append(append(line, "REQ "...), cmd.id[:]...), ' ')
			line = append(strconv.AppendInt(line, cmd.delay.Milliseconds(), 10), '\n')
		case opTouch:
			line = append(append(append(line, "TOUCH "...), cmd.id[:]...), '\n')
		case opRdy:
			line = append(strconv.AppendInt(append(line, "RDY "...), int64(min(cmd.n, maxRdy)), 10), '\n')
		case opNop:
			line = append(line, "NOP\n"...)
		case opCls:
			line = append(line, "CLS\n"...)
		}
		w.Write(line)
	}
	for {
		select {
		case cmd := <-cmds:
			write(cmd)
			for n := len(cmds); n > 0; n-- {
				write(<-cmds)
			}
			if err := w.Flush(); err != nil {
				s.close()
				return err
			}
		case <-done:
			for n := len(cmds); n > 0; n-- {
				write(<-cmds)
			}
			write(command{op: opCls})
			_ = s.net.SetWriteDeadline(time.Now().Add(time.Second))
			return w.Flush()
		}
	}
}
