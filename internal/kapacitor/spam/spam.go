// Package spam is the Kapacitor UDF behind tickscripts/mail_spam.tick: it
// counts, per sender and per sender domain and window, what the spam
// signals need, and emits one point per sender and per domain when their
// window closes.
//
// Kapacitor's own nodes (groupBy + window + distinct + count) would hold
// every point twice (a window by sender, a window by domain) with its
// tags, and every node after the groupBy would keep state for every
// sender. Here a sender's minute is three counters and two small sets of
// 64-bit hashes, and Kapacitor holds one point per sender per window
// (what that costs: the tickscripts README, Performance).
//
// Windows close as Kapacitor's aligned stream windows do: a key's window
// [start, start+window) is emitted, stamped with its end, when the key's
// next point at or after the end arrives. A key whose traffic stops is
// emitted once the stream's time has passed its window's end by another
// window (Kapacitor would hold it until the key's next point, forever for
// a sender that never returns). A point for a window already emitted is
// dropped, as Kapacitor drops it, and counted in the log.
//
// The stream's time never runs ahead of the wall clock by more than
// MaxAhead: a point stamped later than that is refused (left out of every
// window) and counted in the log. One point stamped an hour ahead would otherwise move
// the clock an hour on: no window would be swept until real time caught up,
// every sender in between would be held, and the real points of its sender
// and domain would be dropped as late.
//
// Each point carries the key's volume (events in the window) and
// previous_volume (in the key's window emitted before, while the key is
// still held): the TICKscript lets only keys with enough mail to cross a
// threshold, now or in the window before (so that an alert recovers),
// reach its alerts, because Kapacitor keeps state for every group it has
// seen, for as long as the task runs.
//
// Values are counted by 64-bit hashes (hash/maphash, seeded per process):
// two distinct values of one key in one window collide with probability
// below n²/2⁶⁵, one in 10¹³ for a thousand values.
package spam

import (
	"errors"
	"fmt"
	"hash/maphash"
	"io"
	"maps"
	"slices"
	"time"

	"github.com/influxdata/kapacitor/udf/agent"
)

// MaxAhead is how far past the wall clock a point may be stamped and still
// be counted: well above the skew between clocks kept by NTP (milliseconds)
// and small against a one-minute window, so that a point a little ahead
// closes its key's window at most that much early.
const MaxAhead = 10 * time.Second

// Handler is the UDF's agent.Handler. Kapacitor calls it from one goroutine.
type Handler struct {
	out    chan<- *agent.Response
	log    io.Writer
	window int64 // ns
	seed   maphash.Seed
	groups map[string]*group // Kapacitor's groups (by dc)
	now    func() time.Time  // the wall clock (time.Now but in tests)
}

// kind is what is counted per key of one tag.
type kind struct {
	tag      string    // the key's tag
	distinct [2]string // fields whose distinct values are counted ("": none)
	names    [2]string // and the fields that count is written as
	ratio    bool      // write bad_ratio (the share of points with bad > 0)
}

var kinds = [...]kind{
	{tag: "sender", distinct: [2]string{"recipient", "helo"}, names: [2]string{"distinct_recipients", "distinct_helos"}},
	{tag: "sender_domain", distinct: [2]string{"sender_ip"}, names: [2]string{"distinct_ips"}, ratio: true},
}

// group is one input group's keys and clock.
type group struct {
	dims  []string
	tags  map[string]string // the group's own tags (dc)
	clock int64             // the latest counted point's time
	swept int64             // the window boundary idle keys were last swept at
	keys  [len(kinds)]map[string]*window
	late  int   // points dropped since the last log, their window written
	ahead int   // points refused since the last log, stamped past MaxAhead
	last  int64 // the latest time among those refused
}

// window is one key's counts in its current window.
type window struct {
	start       int64
	distinct    [2]set
	volume, bad int64
	previous    int64 // the volume of the window written before, if any
	lastEmitted int64 // end of the last window written, to drop late points
}

// set is a set of hashes: a short list while small, a map when large.
type set struct {
	small []uint64
	large map[uint64]struct{}
}

const smallSet = 16

func (s *set) add(h uint64) {
	if s.large != nil {
		s.large[h] = struct{}{}
		return
	}
	for _, x := range s.small {
		if x == h {
			return
		}
	}
	if len(s.small) < smallSet {
		s.small = append(s.small, h)
		return
	}
	s.large = make(map[uint64]struct{}, 2*smallSet)
	for _, x := range s.small {
		s.large[x] = struct{}{}
	}
	s.large[h] = struct{}{}
	s.small = nil
}

func (s *set) len() int64 {
	if s.large != nil {
		return int64(len(s.large))
	}
	return int64(len(s.small))
}

// New is a Handler answering on out and logging to log.
func New(out chan<- *agent.Response, log io.Writer) *Handler {
	return &Handler{out: out, log: log, seed: maphash.MakeSeed(), groups: map[string]*group{}, now: time.Now}
}

// Info says: points in, points out; the option is the window.
func (h *Handler) Info() (*agent.InfoResponse, error) {
	return &agent.InfoResponse{Wants: agent.EdgeType_STREAM, Provides: agent.EdgeType_STREAM, Options: map[string]*agent.OptionInfo{
		"window": {ValueTypes: []agent.ValueType{agent.ValueType_DURATION}},
	}}, nil
}

// Init reads the window, which is required.
func (h *Handler) Init(r *agent.InitRequest) (*agent.InitResponse, error) {
	for _, o := range r.Options {
		if o.Name == "window" {
			h.window = o.Values[0].Value.(*agent.OptionValue_DurationValue).DurationValue
		}
	}
	if h.window <= 0 {
		return &agent.InitResponse{Success: false, Error: fmt.Sprintf("mail_spam: invalid window %v: give .window(), > 0", time.Duration(h.window))}, nil
	}
	return &agent.InitResponse{Success: true}, nil
}

// Snapshot: the open windows are not kept across a restart of the task.
func (h *Handler) Snapshot() (*agent.SnapshotResponse, error) {
	return &agent.SnapshotResponse{}, nil
}

// Restore: nothing to restore.
func (h *Handler) Restore(*agent.RestoreRequest) (*agent.RestoreResponse, error) {
	return &agent.RestoreResponse{Success: true}, nil
}

// BeginBatch: the UDF wants a stream.
func (h *Handler) BeginBatch(*agent.BeginBatch) error {
	return errors.New("mail_spam: wants a stream, got a batch")
}

// EndBatch: the UDF wants a stream.
func (h *Handler) EndBatch(*agent.EndBatch) error {
	return errors.New("mail_spam: wants a stream, got a batch")
}

// Point counts one event: its tags sender and sender_domain, its fields
// recipient, helo, sender_ip and bad (1 for a rejected or bounced event).
// A point stamped more than MaxAhead past the wall clock is refused.
func (h *Handler) Point(p *agent.Point) error {
	g := h.groups[p.Group]
	if g == nil {
		g = &group{dims: p.Dimensions, tags: map[string]string{}}
		for _, d := range p.Dimensions {
			g.tags[d] = p.Tags[d]
		}
		for i := range g.keys {
			g.keys[i] = map[string]*window{}
		}
		h.groups[p.Group] = g
	}
	if p.Time > h.now().Add(MaxAhead).UnixNano() {
		g.ahead++
		g.last = max(g.last, p.Time)
		return nil
	}
	late := false
	for i, k := range kinds {
		if key := p.Tags[k.tag]; key != "" && !h.count(g, i, key, p) {
			late = true
		}
	}
	if late {
		g.late++
	}
	g.clock = max(g.clock, p.Time)
	h.sweep(g)
	return nil
}

// count adds the point to the window of the key of kinds[i]; false if the
// point came after its window was written.
func (h *Handler) count(g *group, i int, key string, p *agent.Point) bool {
	t := p.Time
	start := t - mod(t, h.window)
	w := g.keys[i][key]
	if w == nil {
		w = &window{start: start}
		g.keys[i][key] = w
	}
	if t < w.lastEmitted || t < w.start {
		return false
	}
	if t >= w.start+h.window {
		h.emit(g, i, key, w)
		*w = window{start: start, previous: w.volume, lastEmitted: w.start + h.window}
	}
	for j, field := range kinds[i].distinct {
		if v, ok := p.FieldsString[field]; ok && field != "" {
			w.distinct[j].add(maphash.String(h.seed, v))
		}
	}
	w.volume++
	if p.FieldsDouble["bad"] > 0 {
		w.bad++
	}
	return true
}

// sweep writes and forgets the keys whose window ended a window or more
// before the group's clock; it looks once per window boundary the clock
// passes.
func (h *Handler) sweep(g *group) {
	boundary := g.clock - mod(g.clock, h.window)
	if boundary <= g.swept {
		return
	}
	g.swept = boundary
	for i := range kinds {
		for _, key := range slices.Sorted(maps.Keys(g.keys[i])) {
			if w := g.keys[i][key]; w.start+2*h.window <= g.clock {
				h.emit(g, i, key, w)
				delete(g.keys[i], key)
			}
		}
	}
	h.report(g)
}

// report logs, and resets, the group's points dropped late and refused
// ahead since its last report.
func (h *Handler) report(g *group) {
	if g.late > 0 {
		fmt.Fprintf(h.log, "mail_spam: dropped %d points of group %v that came after their window was written\n", g.late, g.tags)
		g.late = 0
	}
	if g.ahead > 0 {
		fmt.Fprintf(h.log, "mail_spam: refused %d points of group %v stamped more than %v past the wall clock (the latest at %s)\n",
			g.ahead, g.tags, MaxAhead, time.Unix(0, g.last).UTC().Format(time.RFC3339Nano))
		g.ahead, g.last = 0, 0
	}
}

// emit writes one key's window as a point, stamped with the window's end
// (as Kapacitor's window stamps a batch), with the group's tags and the
// key's.
func (h *Handler) emit(g *group, i int, key string, w *window) {
	k := kinds[i]
	tags := maps.Clone(g.tags)
	tags[k.tag] = key
	ints := map[string]int64{"volume": w.volume, "previous_volume": w.previous}
	for j, name := range k.names {
		if name != "" {
			ints[name] = w.distinct[j].len()
		}
	}
	var doubles map[string]float64
	if k.ratio {
		doubles = map[string]float64{"bad_ratio": float64(w.bad) / float64(w.volume)}
	}
	h.out <- &agent.Response{Message: &agent.Response_Point{Point: &agent.Point{
		Time:         w.start + h.window,
		Name:         "mail_spam",
		Tags:         tags,
		Dimensions:   g.dims,
		FieldsInt:    ints,
		FieldsDouble: doubles,
	}}}
}

// Stop is called when Kapacitor stops the task: it logs the points
// dropped and refused since the last sweep.
func (h *Handler) Stop() {
	for _, name := range slices.Sorted(maps.Keys(h.groups)) {
		h.report(h.groups[name])
	}
	close(h.out)
}

func mod(t, w int64) int64 {
	m := t % w
	if m < 0 {
		m += w
	}
	return m
}
