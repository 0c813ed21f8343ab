package nsqsub

import (
	"bufio"
	"crypto/tls"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nsqio/go-nsq"
)

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

// startClose sends CLS: nsqd sends no more messages (RDY 0), still takes
// answers, and answers CLOSE_WAIT once it sent its last message, on which
// the reader ends.
func (c *conn) startClose() {
	if sess := c.cur.Load(); sess != nil {
		sess.send(command{op: opCls})
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
			// nsqd sent every message of the batch after it sent the
			// first: the first's read time errs early, on the safe side.
			if len(batch) == 0 {
				readAt = clock(time.Now())
			}
			m.touched = readAt
			if sess.holdFor > 0 {
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
			switch string(data) {
			case "_heartbeat_":
				sess.send(command{op: opNop})
			case "CLOSE_WAIT":
				// nsqd's answer to CLS (see Subscriber.Stop): every message
				// it sent is read, and it sends no more.
				putFrame(frame)
				c.sub.enqueue(batch)
				return nil
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
	closing := false // CLS sent
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
			if closing {
				return // nsqd refuses a second CLS
			}
			closing = true
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
			if !closing {
				write(command{op: opCls})
			}
			_ = s.net.SetWriteDeadline(time.Now().Add(time.Second))
			return w.Flush()
		}
	}
}
