package mailevents

import (
	"cmp"
	"slices"

	"github.com/influxdata/telegraf"

	"github.com/mailtick/mailtick/plugins/inputs/mailevents/internal/nsqsub"
)

// pending is a message whose metrics are on their way to the outputs, or
// (msg nil) an entry answered out of order. A message nsqd took back (its
// max_msg_timeout, see nsqsub.Message.Expired) keeps its entry, and its
// slot of max_undelivered_messages, until Telegraf reports its metrics, as
// Telegraf tracks no more than that many at once; answering it then does
// nothing.
type pending struct {
	id  telegraf.TrackingID
	msg *nsqsub.Message // nil once answered
	st  *topicStats
}

func (p *pending) answered() bool { return p.msg == nil }

// window holds the messages whose metrics are with the outputs, in the
// order of their tracking IDs. Telegraf hands IDs out in increasing order
// and they are taken under one lock, so adding is an append; outputs
// deliver mostly in that order too, so the answered ones leave from the
// front. A lookup is a binary search over a slice: cheaper than a map
// whose keys only ever grow (profiled: the map's inserts and lookups were
// 6% of the agent's CPU), and 32 bytes a message.
type window struct {
	items []pending // items[head:] are in flight, or answered out of order
	head  int
	live  int // in flight
}

func newWindow() *window {
	return &window{}
}

// add records a message. Its id is normally greater than every id before
// it; one that is not is put in its place (a copy of the rest, but never
// wrong).
func (w *window) add(id telegraf.TrackingID, msg *nsqsub.Message, st *topicStats) {
	e := pending{id: id, msg: msg, st: st}
	w.live++
	if n := len(w.items); n > w.head && w.items[n-1].id >= id {
		i, _ := w.search(id)
		w.items = slices.Insert(w.items, w.head+i, e)
		return
	}
	if len(w.items) == cap(w.items) && w.live <= len(w.items)/2 {
		// At least half is answered: keep what is in flight, in order,
		// rather than grow (a straggler at the front stops the head).
		n := 0
		for _, p := range w.items[w.head:] {
			if !p.answered() {
				w.items[n] = p
				n++
			}
		}
		clear(w.items[n:])
		w.items, w.head = w.items[:n], 0
	}
	w.items = append(w.items, e)
}

// take removes the entry of id and returns it, or ok=false if the window
// does not hold it.
func (w *window) take(id telegraf.TrackingID) (p pending, ok bool) {
	i, found := w.search(id)
	rest := w.items[w.head:]
	if !found || rest[i].answered() {
		return pending{}, false
	}
	p = rest[i]
	rest[i] = pending{id: id}
	w.live--
	for w.head < len(w.items) && w.items[w.head].answered() {
		w.items[w.head] = pending{}
		w.head++
	}
	if w.head == len(w.items) {
		w.items, w.head = w.items[:0], 0
	}
	return p, true
}

// search finds id's place in items[head:].
func (w *window) search(id telegraf.TrackingID) (int, bool) {
	return slices.BinarySearchFunc(w.items[w.head:], id, func(p pending, id telegraf.TrackingID) int {
		return cmp.Compare(p.id, id)
	})
}

// each calls f with every message in flight, in ID order.
func (w *window) each(f func(p *pending)) {
	for i := w.head; i < len(w.items); i++ {
		if w.items[i].msg != nil {
			f(&w.items[i])
		}
	}
}

// clear forgets every message.
func (w *window) clear() {
	clear(w.items)
	w.items, w.head, w.live = w.items[:0], 0, 0
}
