package nsqsub

import (
	"context"
	"sync"
	"time"
)

// unanswered holds every message read and not yet answered nor given up,
// in the order read: msgs[:next] were handed out by Next, msgs[next:] wait
// for it. A read loop never blocks on a slow consumer (so heartbeats are
// always read), and no message times out in nsqd while it waits here or
// with the consumer: keepAlive touches them all. Answering a message does
// not take the lock; keepAlive drops answered ones as it passes.
type unanswered struct {
	mu       sync.Mutex
	msgs     []*Message
	next     int
	stopping bool // Stop requeued what was here: requeue what comes
	wake     chan struct{}
}

// enqueue adds messages read from nsqd.
func (s *Subscriber) enqueue(ms []*Message) {
	u := &s.un
	u.mu.Lock()
	if u.stopping {
		u.mu.Unlock()
		for _, m := range ms {
			m.Requeue(0)
			m.ReleaseBody()
		}
		return
	}
	u.msgs = append(u.msgs, ms...)
	u.mu.Unlock()
	s.signal()
}

// Queued is how many messages wait for Next.
func (s *Subscriber) Queued() int {
	s.un.mu.Lock()
	defer s.un.mu.Unlock()
	return len(s.un.msgs) - s.un.next
}

// Next waits for messages and returns up to max of them, in the order
// read, appended to buf[:0]; it returns none once ctx ends or the
// subscriber stops. Several goroutines may call it at once. A message
// whose connection closed while it waited is left out: nsqd has taken it
// back.
func (s *Subscriber) Next(ctx context.Context, buf []*Message, max int) []*Message {
	buf = buf[:0]
	u := &s.un
	for {
		u.mu.Lock()
		for u.next < len(u.msgs) && len(buf) < max {
			m := u.msgs[u.next]
			u.next++
			if m.sess.closed() {
				m.ReleaseBody()
				continue
			}
			buf = append(buf, m)
		}
		more := u.next < len(u.msgs)
		u.mu.Unlock()
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
		case <-u.wake:
		}
	}
}

func (s *Subscriber) signal() {
	select {
	case s.un.wake <- struct{}{}:
	default:
	}
}

// keepAlive looks at every unanswered message each touchCheck: it forgets
// those answered or whose connection closed, gives up those held too
// close to nsqd's max_msg_timeout (Message.Expired: nsqd sends them
// again, and a stale copy must not be answered), and touches those not
// touched for half nsqd's message timeout.
func (s *Subscriber) keepAlive() {
	defer s.wg.Done()
	t := time.NewTicker(touchCheck)
	defer t.Stop()
	var touch []*Message
	for {
		select {
		case <-s.ctx.Done():
			return
		case now := <-t.C:
			touch = s.un.sweep(now, touch[:0])
			for i, m := range touch { // outside the lock: a full writer queue must not stall the readers
				m.touch()
				touch[i] = nil
			}
		}
	}
}

// sweep drops what needs nothing more and returns, appended to touch,
// what is due for a touch.
func (u *unanswered) sweep(now time.Time, touch []*Message) []*Message {
	at := clock(now)
	u.mu.Lock()
	defer u.mu.Unlock()
	kept, next := 0, u.next
	for i, m := range u.msgs {
		waiting := i >= u.next
		if m.state.Load() != msgPending || m.sess.closed() || m.Expired(now) {
			if waiting {
				m.ReleaseBody() // nobody took it
			} else {
				next--
			}
			continue
		}
		if at-m.touched >= int64(m.timeout()/2) {
			touch = append(touch, m)
			m.touched = at
		}
		u.msgs[kept] = m
		kept++
	}
	clear(u.msgs[kept:])
	u.msgs, u.next = u.msgs[:kept], next
	return touch
}

// requeueUnanswered requeues every message unanswered, and from now on
// each message read (see Stop).
func (s *Subscriber) requeueUnanswered() {
	u := &s.un
	u.mu.Lock()
	u.stopping = true
	msgs := u.msgs
	u.msgs, u.next = nil, 0
	u.mu.Unlock()
	for _, m := range msgs {
		m.Requeue(0)
	}
}

// touchCheck is how often unanswered messages are looked at; nsqd's
// message timeout is at least 1s.
const touchCheck = 250 * time.Millisecond
