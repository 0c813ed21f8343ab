package nsqsub

import (
	"sync/atomic"
	"time"
)

// Message is one NSQ message. At most one of Finish and Requeue takes
// effect, and neither once the message was given up (Expired). Until then
// the subscriber keeps it alive in nsqd (see unanswered).
type Message struct {
	ID        [16]byte
	Body      []byte
	Timestamp int64 // publish time, ns
	Attempts  uint16
	NSQDAddr  string

	frame   *[]byte // Body's buffer, until ReleaseBody
	sess    *session
	expires int64         // given up from then on (clock); 0: never
	touched int64         // read or last touched (clock), kept by sweep
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

// timeout is nsqd's message timeout on the connection the message came
// on (its --msg-timeout, or the msg_timeout asked for in IDENTIFY): a
// message not answered or touched within it is redelivered.
func (m *Message) timeout() time.Duration { return m.sess.msgTimeout }

// touch resets nsqd's timeout of the message, but never past nsqd's
// max_msg_timeout after nsqd sent it (see Expired).
func (m *Message) touch() {
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
// on the new one. So the subscriber asks this of each unanswered message
// as it decides whether to touch it, and a consumer that held a message a
// long time asks it before it acts on it: once it is true the message is
// forgotten, and the new delivery is processed as any message.
//
// The first call at or after the deadline gives the message up: Finish,
// Requeue and touch do nothing from then on, and Config.TimedOut is
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
