package mailevent

import (
	"bytes"
	"errors"
	"fmt"
	"path"
	"strings"
	"time"

	"github.com/valyala/fastjson"

	"github.com/mailtick/mailtick/plugins/common/eventtime"
)

// document turns one JSON document into events: the value itself, or the
// values at events_path; an array is one event per element.
func (d *Decoder) document(sc *Scratch, v *fastjson.Value, published time.Time, raw []byte, out *Decoded) {
	if d.jsonKeys != nil && v.Type() == fastjson.TypeObject {
		if err := d.unwrap(sc, v); err != nil {
			out.Bad = append(out.Bad, BadEvent{ReasonMalformed, err, bytes.Clone(raw)})
			return
		}
	}
	if d.eventsPath != nil {
		if v.Type() == fastjson.TypeArray { // a batch of documents
			arr, _ := v.Array()
			if len(arr) == 0 {
				out.Bad = append(out.Bad, BadEvent{ReasonEmpty, errors.New("empty array"), bytes.Clone(raw)})
			}
			for _, elem := range arr {
				d.document(sc, elem, published, elem.MarshalTo(nil), out)
			}
			return
		}
		found := selectPath(v, d.eventsPath, nil)
		if len(found) == 0 {
			out.Bad = append(out.Bad, BadEvent{ReasonNoEvents,
				fmt.Errorf("nothing at events_path %q", strings.Join(d.eventsPath, ".")), bytes.Clone(raw)})
			return
		}
		for _, f := range found {
			d.events(sc, f, published, nil, out)
		}
		return
	}
	d.events(sc, v, published, raw, out)
}

// unwrap parses the strings at json_keys that hold JSON (SNS carries the
// event as a string in "Message") and puts the values in their place.
func (d *Decoder) unwrap(sc *Scratch, v *fastjson.Value) error {
	if len(sc.inner) < len(d.jsonKeys) {
		sc.inner = make([]fastjson.Parser, len(d.jsonKeys))
	}
	for i, segs := range d.jsonKeys {
		parent := v
		for _, seg := range segs[:len(segs)-1] {
			if parent = parent.Get(seg); parent == nil {
				break
			}
		}
		if parent == nil {
			continue
		}
		obj, err := parent.Object()
		if err != nil {
			continue
		}
		last := segs[len(segs)-1]
		s := obj.Get(last)
		if s == nil || s.Type() != fastjson.TypeString {
			continue
		}
		text, _ := s.StringBytes()
		parsed, err := sc.inner[i].ParseBytes(text)
		if err == nil {
			err = d.duplicates(sc, parsed)
		}
		if err != nil {
			return fmt.Errorf("json_keys %q: %w", strings.Join(segs, "."), err)
		}
		obj.Set(last, parsed)
	}
	return nil
}

// events turns a value into events: one, or one per element of an array.
func (d *Decoder) events(sc *Scratch, v *fastjson.Value, published time.Time, raw []byte, out *Decoded) {
	if v.Type() != fastjson.TypeArray {
		d.event(sc, v, published, raw, out)
		return
	}
	arr, _ := v.Array()
	if len(arr) == 0 {
		out.Bad = append(out.Bad, BadEvent{ReasonEmpty, errors.New("empty array"), v.MarshalTo(nil)})
	}
	for _, elem := range arr {
		d.event(sc, elem, published, nil, out)
	}
}

// selectPath appends the values at the dotted path segs under v; a segment
// may be a glob ("*_event") matching any key of its object.
func selectPath(v *fastjson.Value, segs []string, found []*fastjson.Value) []*fastjson.Value {
	if len(segs) == 0 {
		return append(found, v)
	}
	obj, err := v.Object()
	if err != nil {
		return found
	}
	seg := segs[0]
	if !strings.ContainsAny(seg, "*?[") {
		if inner := obj.Get(seg); inner != nil {
			found = selectPath(inner, segs[1:], found)
		}
		return found
	}
	obj.Visit(func(k []byte, inner *fastjson.Value) {
		if ok, _ := path.Match(seg, string(k)); ok {
			found = selectPath(inner, segs[1:], found)
		}
	})
	return found
}

// isNDJSON tells whether b has several lines and each that is not blank
// starts an object: only then is a body that is not one JSON value taken as
// newline-delimited events. A broken pretty-printed body stays one message,
// dead-lettered whole.
func isNDJSON(b []byte) bool {
	if bytes.IndexByte(b, '\n') < 0 {
		return false
	}
	for line := range bytes.SplitSeq(b, []byte{'\n'}) {
		if line = trimSpace(line); len(line) > 0 && line[0] != '{' {
			return false
		}
	}
	return true
}

// event turns one parsed JSON value into a metric (or one per element of
// a list named by explode), or records why not. raw is the event's own
// text when known; otherwise it is rendered from v.
func (d *Decoder) event(sc *Scratch, v *fastjson.Value, published time.Time, raw []byte, out *Decoded) {
	fail := func(reason string, err error) {
		if raw == nil {
			raw = v.MarshalTo(nil)
		} else {
			raw = bytes.Clone(raw)
		}
		out.Bad = append(out.Bad, BadEvent{reason, err, raw})
	}
	obj, err := v.Object()
	if err != nil {
		out.Events++
		fail(ReasonNotObject, fmt.Errorf("event is a JSON %s, not an object", v.Type()))
		return
	}

	var list []*fastjson.Value
	var skip string
	if d.explode != nil {
		list, skip = d.exploded(v)
		if len(list) > d.maxExploded {
			out.Events++
			fail(ReasonOversized, fmt.Errorf("list %q of %d elements exceeds max_exploded %d", skip, len(list), d.maxExploded))
			return
		}
	}
	b := sc.start(d, published, obj.Len())
	b.skip = skip
	b.object(obj, "", kindField)
	sc.end(&b)
	if b.err != nil {
		out.Events++
		fail(b.reason, b.err)
		return
	}
	sum := eventSum{v: v}
	if len(list) == 0 {
		d.finish(&b, &sum, -1, published, out, fail)
		return
	}
	// Each element's metric repeats the event's tags and fields (and
	// events=1): what one body may explode into is bounded by their
	// product, checked before anything is copied.
	shared := b.m.(*eventMetric)
	keys := len(shared.tags) + len(shared.fields) + 1
	if budget := explodedFields * d.maxExploded; len(list) > (budget-out.exploded)/keys {
		out.Events++
		fail(ReasonOversized, fmt.Errorf("list %q: %d elements times %d tags and fields exceeds the %d left of the %d (%d times max_exploded %d) one body may explode into",
			skip, len(list), keys, budget-out.exploded, budget, explodedFields, d.maxExploded))
		return
	}
	out.exploded += len(list) * keys
	// The event's keys were mapped once; each element's metric copies
	// them, with room for the element's own.
	for i, elem := range list {
		eb := b
		eb.m = shared.copyWithRoom(elemKeys(elem) + len(d.captures) + len(d.rules) + 1)
		eb.walk(elem, skip)
		d.finish(&eb, &sum, i, published, out, fail)
	}
}

// elemKeys is how many keys an element of an exploded list adds, about.
func elemKeys(elem *fastjson.Value) int {
	if o, err := elem.Object(); err == nil {
		return o.Len()
	}
	return 1
}

// eventSum is the hash of an event's JSON that time_fill fills its time
// with: rendered and hashed once per event, whatever the elements it
// explodes into.
type eventSum struct {
	v    *fastjson.Value
	sum  uint64
	done bool
}

func (s *eventSum) get() uint64 {
	if !s.done {
		s.sum, s.done = eventtime.Sum(s.v.MarshalTo(nil)), true
	}
	return s.sum
}

// exploded returns the list at the first explode path the event has, and
// that path.
func (d *Decoder) exploded(v *fastjson.Value) ([]*fastjson.Value, string) {
	for _, segs := range d.explode {
		if l := v.Get(segs...); l != nil && l.Type() == fastjson.TypeArray {
			arr, _ := l.Array()
			if len(arr) > 0 {
				return arr, strings.Join(segs, ".")
			}
		}
	}
	return nil, ""
}

// finish turns what the builder gathered into a metric: captures, value
// rules, the checks, and the time. elem is the element's place in an
// exploded list, or -1.
func (d *Decoder) finish(b *builder, sum *eventSum, elem int, published time.Time, out *Decoded, fail func(string, error)) {
	index := out.Events
	out.Events++
	m := b.m
	if b.err != nil {
		fail(b.reason, b.err)
		return
	}
	if err := d.capture(m); err != nil {
		fail(ReasonWrongType, err)
		return
	}
	d.applyRules(m)
	if len(m.FieldList()) == 0 {
		fail(ReasonNoFields, errors.New("event has no field besides its tags and time"))
		return
	}
	// Every event carries events=1, whatever else it has: what the rollups
	// count (a queue id, a latency, any other field may be missing).
	m.AddField(EventsField, int64(1))
	out.RepairedUTF += b.repaired
	tm := published.Add(time.Duration(index))
	switch {
	case b.hasTime:
		tm = b.tm
		if d.fillTime || elem > 0 {
			tm = d.fill(tm, sum, elem)
		}
	case d.missingAsDLQ:
		fail(ReasonMissingTime, fmt.Errorf("event has none of the time keys %q", d.timeKeys))
		return
	default:
		out.MissingTime++
	}
	m.SetTime(tm)
	out.Metrics = append(out.Metrics, m)
}

// fill makes the times of distinct events in one series distinct, so that
// InfluxDB keeps each instead of overwriting one with the other. Where the
// provider gives whole seconds (or milli-, or microseconds), time_fill =
// "event_hash" fills the digits below with a hash of the event's JSON,
// rendered compactly (whitespace, and whether it came through SNS, change
// nothing): the same event, delivered again, lands on the same point. The
// elements of an exploded list differ by their place in it too.
func (d *Decoder) fill(tm time.Time, sum *eventSum, elem int) time.Time {
	if !d.fillTime {
		return tm.Add(time.Duration(max(elem, 0)))
	}
	return eventtime.FillSum(tm, sum.get(), max(elem, 0))
}

// trimSpace trims JSON whitespace; bytes.TrimSpace also knows Unicode
// spaces, which JSON does not allow outside strings, and is slower.
func trimSpace(b []byte) []byte {
	for len(b) > 0 && isSpace(b[0]) {
		b = b[1:]
	}
	for len(b) > 0 && isSpace(b[len(b)-1]) {
		b = b[:len(b)-1]
	}
	return b
}

func isSpace(c byte) bool { return c == ' ' || c == '\n' || c == '\r' || c == '\t' }
