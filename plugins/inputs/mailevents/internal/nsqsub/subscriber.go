// Package nsqsub is a lean NSQ subscriber (protocol V2) for one topic and
// channel over any number of nsqd, found directly or through nsqlookupd.
//
// Why not go-nsq's Consumer: it writes and flushes every FIN with its own
// write syscall, which measured ~40% of mailevents' CPU. Here answers
// (FIN, REQ, TOUCH) queue to one writer per connection that flushes once per
// burst, and reads need no per-frame deadline (a heartbeat watchdog closes
// dead connections instead). go-nsq still encodes the handshake commands.
//
// The subscriber owns every message it read until the message is answered
// (Finish, Requeue) or given up (Message.Expired): it touches each at half
// nsqd's timeout, whether it waits for Next or is held by the consumer,
// gives it up before nsqd's max_msg_timeout, and requeues what is left
// unanswered on Stop. A consumer only answers.
//
// The files follow go-nsq's: message.go (a message and its answers),
// frame.go (body buffers), unanswered.go (what was read and not yet
// answered), subscriber.go (configuration, RDY, nsqlookupd), conn.go (one
// nsqd connection: handshake, reader, writer).
package nsqsub

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"sync"
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

// Subscriber delivers messages of its topic to its channel, in batches
// (Next).
type Subscriber struct {
	cfg  Config
	ctx  context.Context
	stop context.CancelFunc
	wg   sync.WaitGroup

	mu    sync.Mutex
	conns map[connKey]*conn

	un unanswered
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
		un:    unanswered{wake: make(chan struct{}, 1)},
	}, nil
}

// Start connects to every nsqd and starts polling nsqlookupd. An nsqd that
// is down is retried in the background; Start itself does not fail on it.
func (s *Subscriber) Start() {
	s.wg.Add(1)
	go s.keepAlive()
	for _, addr := range s.cfg.Nsqd {
		s.keep(connKey{addr, 0}, true)
	}
	if len(s.cfg.Lookupd) > 0 {
		s.wg.Add(1)
		go s.pollLookupd()
	}
}

// Stop closes the subscription the way NSQ's protocol asks: CLS to every
// nsqd (which then sends nothing more), a REQ for every message left
// unanswered, and for every message still arriving until nsqd's
// CLOSE_WAIT (at once, so that another subscriber of the channel, or this
// one started again, gets it without waiting for its timeout; a REQ sent
// before the CLS would have brought it straight back here), then the
// connections close after writing the answers queued. A connection that
// does not answer within closeWait is closed anyway: what it held comes
// back after nsqd's message timeout. Answers given after Stop are
// dropped.
func (s *Subscriber) Stop() {
	s.stop()
	s.mu.Lock()
	for _, c := range s.conns {
		c.startClose()
	}
	s.mu.Unlock()
	s.requeueUnanswered()
	done := make(chan struct{})
	go func() {
		s.wg.Wait()
		close(done)
	}()
	select {
	case <-done:
		return
	case <-time.After(closeWait):
	}
	s.mu.Lock()
	for _, c := range s.conns {
		c.close()
	}
	s.mu.Unlock()
	<-done
}

// closeWait is how long Stop waits for nsqd's CLOSE_WAIT.
const closeWait = 5 * time.Second

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
	if s.ctx.Err() != nil {
		return // stopping: CLS set RDY 0
	}
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
