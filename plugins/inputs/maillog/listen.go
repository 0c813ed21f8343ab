package maillog

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/influxdata/telegraf"

	ml "github.com/mailtick/mailtick/internal/maillog"
)

// listener receives syslog messages over UDP or TCP (newline-delimited or
// octet-counted, RFC 6587) and reads them as log lines, with one
// correlator per sending host: queue ids are unique only on their host.
type listener struct {
	m     *MailLog
	addr  string
	udp   net.PacketConn
	tcp   net.Listener
	mu    sync.Mutex
	hosts map[string]*ml.Correlator
	st    *stats
	conns sync.WaitGroup
}

// listen opens "udp://host:port" or "tcp://host:port".
func (m *MailLog) listen(addr string) (*listener, error) {
	u, err := url.Parse(addr)
	if err != nil || u.Host == "" {
		return nil, fmt.Errorf("invalid %q value %q: want udp://host:port or tcp://host:port", "listen", addr)
	}
	l := &listener{m: m, addr: addr, hosts: map[string]*ml.Correlator{}, st: m.newStats(addr)}
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

func (l *listener) close() {
	if l.udp != nil {
		l.udp.Close()
	} else {
		l.tcp.Close()
	}
	l.conns.Wait()
}

func (l *listener) run() {
	if l.udp != nil {
		buf := make([]byte, 64<<10)
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
		if err != nil {
			return
		}
		l.conns.Add(1)
		go func() {
			defer l.conns.Done()
			defer c.Close()
			l.stream(c)
		}()
	}
}

// stream reads one TCP connection: octet-counted frames ("123 <msg>") or
// newline-delimited ones, told apart by the first byte of each frame.
func (l *listener) stream(c io.Reader) {
	r := bufio.NewReaderSize(c, 64<<10)
	for {
		b, err := r.Peek(1)
		if err != nil {
			return
		}
		if b[0] >= '1' && b[0] <= '9' {
			if n, ok := octetCount(r); ok {
				frame := make([]byte, n)
				if _, err := io.ReadFull(r, frame); err != nil {
					return
				}
				l.line(strings.TrimRight(string(frame), "\r\n"))
				continue
			}
		}
		s, err := r.ReadString('\n')
		if s = strings.TrimRight(s, "\r\n"); s != "" {
			l.line(s)
		}
		if err != nil {
			return
		}
	}
}

// octetCount reads "123 " when the frame is octet-counted.
func octetCount(r *bufio.Reader) (int, bool) {
	b, _ := r.Peek(8)
	i := 0
	for i < len(b) && b[i] >= '0' && b[i] <= '9' {
		i++
	}
	if i == 0 || i >= len(b) || b[i] != ' ' {
		return 0, false
	}
	n, err := strconv.Atoi(string(b[:i]))
	if err != nil || n > 1<<20 {
		return 0, false
	}
	_, _ = r.Discard(i + 1)
	return n, true
}

// line reads one message with the correlator of its host.
func (l *listener) line(s string) {
	l.st.lines.Incr(1)
	host := syslogHost(s)
	l.mu.Lock()
	c, ok := l.hosts[host]
	if !ok {
		c = l.m.newCorrelator()
		l.hosts[host] = c
	}
	evs, reason := c.Line(s, time.Now(), l.m.loc)
	l.mu.Unlock()
	if reason != "" {
		l.st.refused(reason)
		return
	}
	if len(evs) == 0 {
		return
	}
	ms := make([]telegraf.Metric, 0, len(evs))
	for i := range evs {
		ms = append(ms, evs[i].Metric())
	}
	l.st.events.Incr(int64(len(ms)))
	if !l.m.emit(ms, l.st) {
		l.st.rejected.Incr(1) // the agent stops: nothing can be read again
	}
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

var errNoSource = errors.New(`set "files" or "listen"`)
