package maillog

import (
	"bufio"
	"bytes"
	"container/list"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/influxdata/telegraf/selfstat"

	ml "github.com/mailtick/mailtick/plugins/common/maillog"
)

// listener receives syslog messages over UDP or TCP (newline-delimited or
// octet-counted, RFC 6587) and reads them as log lines, with one
// correlator per sending host: queue ids are unique only on their host.
// Whatever a sender does, it holds at most max_connections connections,
// each with at most one message of maxLineBytes, and max_hosts
// correlators.
type listener struct {
	m    *MailLog
	addr string
	udp  net.PacketConn
	tcp  net.Listener
	st   *stats

	mu           sync.Mutex               // the hosts and their correlators
	hosts        map[string]*list.Element // of *host, in lru
	lru          list.List                // the host heard from last first
	open         int64                    // queue ids open, all hosts together
	hostsOpen    selfstat.Stat            // hosts_open
	hostsEvicted selfstat.Stat            // hosts_evicted

	connMu   sync.Mutex
	conns    map[net.Conn]bool
	closing  bool
	connsWG  sync.WaitGroup
	refused  selfstat.Stat // connections_refused: over max_connections
	timedOut selfstat.Stat // connections_timed_out: a message not whole within read_timeout
	warned   bool          // the first refusal is logged, the others counted
}

// host is one sending host's correlation state.
type host struct {
	name string
	c    *ml.Correlator
	seen time.Time
}

// listen opens "udp://host:port" or "tcp://host:port".
func (m *MailLog) listen(addr string) (*listener, error) {
	u, err := url.Parse(addr)
	if err != nil || u.Host == "" {
		return nil, fmt.Errorf("invalid %q value %q: want udp://host:port or tcp://host:port", "listen", addr)
	}
	tags := map[string]string{"file": addr}
	l := &listener{m: m, addr: addr, hosts: map[string]*list.Element{}, st: m.newStats(addr), conns: map[net.Conn]bool{},
		hostsOpen:    selfstat.Register("maillog", "hosts_open", tags),
		hostsEvicted: selfstat.Register("maillog", "hosts_evicted", tags),
		refused:      selfstat.Register("maillog", "connections_refused", tags),
		timedOut:     selfstat.Register("maillog", "connections_timed_out", tags),
	}
	switch u.Scheme {
	case "udp", "udp4", "udp6":
		l.udp, err = net.ListenPacket(u.Scheme, u.Host)
	case "tcp", "tcp4", "tcp6":
		l.tcp, err = net.Listen(u.Scheme, u.Host)
	default:
		return nil, fmt.Errorf("invalid %q value %q: want udp://host:port or tcp://host:port", "listen", addr)
	}
	if err != nil {
		return nil, fmt.Errorf("listen %q: %w", addr, err)
	}
	return l, nil
}

// Addr is where it listens (the port chosen for ":0").
func (l *listener) Addr() net.Addr {
	if l.udp != nil {
		return l.udp.LocalAddr()
	}
	return l.tcp.Addr()
}

// close stops listening and closes the open connections: a forwarder
// that keeps its connection open (rsyslog does, idle or not) must not
// hold up a stop or a reload.
func (l *listener) close() {
	if l.udp != nil {
		l.udp.Close()
		return
	}
	l.tcp.Close()
	l.connMu.Lock()
	l.closing = true
	for c := range l.conns {
		c.Close()
	}
	l.connMu.Unlock()
	l.connsWG.Wait()
}

func (l *listener) run() {
	if l.udp != nil {
		buf := make([]byte, 64<<10) // a datagram's largest payload fits
		for {
			n, _, err := l.udp.ReadFrom(buf)
			if err != nil {
				return
			}
			l.line(strings.TrimRight(string(buf[:n]), "\r\n"))
		}
	}
	for {
		c, err := l.tcp.Accept()
		if errors.Is(err, net.ErrClosed) {
			return
		}
		if err != nil { // out of file descriptors: wait for some to close
			l.m.Log.Errorf("%s: accepting a connection: %v", l.addr, err)
			time.Sleep(250 * time.Millisecond)
			continue
		}
		if !l.track(c) {
			c.Close()
			continue
		}
		go func() {
			defer l.untrack(c)
			l.serve(c)
		}()
	}
}

// track counts a new connection in, or refuses it: over max_connections,
// or once the listener is closing.
func (l *listener) track(c net.Conn) bool {
	l.connMu.Lock()
	defer l.connMu.Unlock()
	if l.closing {
		return false
	}
	if len(l.conns) >= l.m.MaxConnections {
		l.refused.Incr(1)
		if !l.warned { // once: the counter says how many
			l.warned = true
			l.m.Log.Warnf("%s: %d connections open, refused one from %s (max_connections); such refusals are counted in internal_maillog's connections_refused",
				l.addr, len(l.conns), c.RemoteAddr())
		}
		return false
	}
	l.conns[c] = true
	l.connsWG.Add(1)
	return true
}

func (l *listener) untrack(c net.Conn) {
	c.Close()
	l.connMu.Lock()
	delete(l.conns, c)
	l.connMu.Unlock()
	l.connsWG.Done()
}

// serve reads one TCP connection's messages. Waiting for a message has no
// deadline (forwarders keep idle connections; TCP keep-alive finds the
// dead ones); from its first byte, a message has read_timeout to arrive
// whole, else the connection is closed.
func (l *listener) serve(c net.Conn) {
	r := bufio.NewReaderSize(c, 4<<10)
	var buf []byte
	for {
		_ = c.SetReadDeadline(time.Time{})
		if _, err := r.Peek(1); err != nil {
			return
		}
		_ = c.SetReadDeadline(time.Now().Add(time.Duration(l.m.ReadTimeout)))
		msg, cut, err := readMessage(r, buf, maxLineBytes)
		switch {
		case cut:
			l.st.cut.Incr(1)
		case err == nil && len(msg) > 0:
			l.line(string(msg))
		}
		if errors.Is(err, os.ErrDeadlineExceeded) {
			l.timedOut.Incr(1)
		}
		if err != nil {
			return
		}
		if buf = msg[:0]; cap(buf) > 16<<10 {
			buf = nil // an idle connection keeps no large buffer
		}
	}
}

// maxLenDigits bounds MSG-LEN: frames up to 999,999,999 bytes are read
// (and, over maxLineBytes, skipped); a longer run of digits is a line.
const maxLenDigits = 9

// readMessage reads the next message of a TCP stream into buf[:0]: an
// octet-counted frame when the stream goes on with one (RFC 6587 3.4.1:
// MSG-LEN SP SYSLOG-MSG, MSG-LEN a decimal without leading zero), else a
// line up to LF (3.4.2). A message longer than limit is skipped whole and
// reported cut: at most limit bytes of it are held, and only as they
// arrive, not as announced. msg is a whole message when err is nil.
func readMessage(r *bufio.Reader, buf []byte, limit int) (msg []byte, cut bool, err error) {
	msg = buf[:0]
	for {
		c, err := r.ReadByte()
		if err != nil {
			return msg, false, err
		}
		if c == ' ' && len(msg) > 0 {
			n, _ := strconv.Atoi(string(msg))
			return readFrame(r, msg[:0], n, limit)
		}
		if c < '0' || c > '9' || (c == '0' && len(msg) == 0) || len(msg) == maxLenDigits {
			_ = r.UnreadByte()
			return readLine(r, msg, limit)
		}
		msg = append(msg, c)
	}
}

// readFrame reads a frame of n bytes.
func readFrame(r *bufio.Reader, buf []byte, n, limit int) ([]byte, bool, error) {
	if n > limit {
		_, err := r.Discard(n)
		return nil, true, err
	}
	for len(buf) < n {
		if r.Buffered() == 0 {
			if _, err := r.Peek(1); err != nil {
				return nil, false, err
			}
		}
		b, _ := r.Peek(min(n-len(buf), r.Buffered()))
		buf = append(buf, b...)
		_, _ = r.Discard(len(b))
	}
	return bytes.TrimRight(buf, "\r\n"), false, nil
}

// readLine reads up to LF, appending to buf; the last line of a stream
// may end without one.
func readLine(r *bufio.Reader, buf []byte, limit int) ([]byte, bool, error) {
	cut := false
	for {
		chunk, err := r.ReadSlice('\n')
		n := len(buf) + len(chunk) // the line's length, and its LF if err is nil
		if err == nil {
			n--
		}
		if !cut && n > limit {
			cut, buf = true, buf[:0]
		}
		if !cut {
			buf = append(buf, chunk...)
		}
		switch {
		case errors.Is(err, bufio.ErrBufferFull):
			continue
		case err == nil, errors.Is(err, io.EOF) && len(buf) > 0:
			return bytes.TrimRight(buf, "\r\n"), cut, nil
		}
		return nil, cut, err
	}
}

// line reads one message with the correlator of its host.
func (l *listener) line(s string) {
	l.st.lines.Incr(1)
	now := time.Now()
	l.mu.Lock()
	c := l.correlator(syslogHost(s), now)
	open, evicted := c.Open(), c.Evicted
	evs, reason := c.Line(s, now, l.m.loc)
	l.open += int64(c.Open() - open)
	l.st.open.Set(l.open)
	l.st.evicted.Incr(c.Evicted - evicted)
	l.mu.Unlock()
	if reason != "" {
		l.st.refused(reason)
		return
	}
	if len(evs) == 0 {
		return
	}
	l.st.events.Incr(int64(len(evs)))
	if !l.m.emit(metricsOf(evs), l.st) {
		l.st.rejected.Incr(1) // the agent stops: nothing can be read again
	}
}

// correlator returns the correlator of a host, new if need be. Hosts not
// heard from for queue_id_ttl go first (their queue ids would have
// expired), then, to make room for a new one, the one heard from last
// longest ago; their open queue ids count as evicted. Under l.mu.
func (l *listener) correlator(name string, now time.Time) *ml.Correlator {
	ttl := time.Duration(l.m.QueueIDTTL)
	for e := l.lru.Back(); e != nil && now.Sub(e.Value.(*host).seen) > ttl; e = l.lru.Back() {
		l.evict(e)
	}
	if e, ok := l.hosts[name]; ok {
		h := e.Value.(*host)
		h.seen = now
		l.lru.MoveToFront(e)
		return h.c
	}
	if l.lru.Len() >= l.m.MaxHosts {
		l.evict(l.lru.Back())
	}
	h := &host{name: strings.Clone(name), c: l.m.newCorrelator(), seen: now}
	l.hosts[h.name] = l.lru.PushFront(h)
	l.hostsOpen.Set(int64(l.lru.Len()))
	return h.c
}

func (l *listener) evict(e *list.Element) {
	h := l.lru.Remove(e).(*host)
	delete(l.hosts, h.name)
	l.open -= int64(h.c.Open())
	l.st.open.Set(l.open)
	l.st.evicted.Incr(int64(h.c.Open()))
	l.hostsEvicted.Incr(1)
	l.hostsOpen.Set(int64(l.lru.Len()))
}

// syslogHost is the host a syslog line names, or "" (one correlator for
// lines that name none).
func syslogHost(s string) string {
	line, err := ml.SplitLine(s, time.Now(), time.UTC)
	if err != nil {
		return ""
	}
	return line.Host
}

var errNoSource = errors.New(`set "files", "listen" or "journal"`)
