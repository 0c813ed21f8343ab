// Package mailevents is the mapping of mail events into mail_event
// metrics: one decoder of a body (JSON, JSON arrays, NDJSON, or a form
// holding JSON), whatever brought it: inputs.mailevents runs it on NSQ
// messages, inputs.mailwebhooks on the providers' webhook requests, and
// the parser (data_format = "mailevents") on what any stock input hands it
// (an HTTP body, a line of a tailed file, a Kafka message).
package mailevents

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"net/url"
	"path"
	"regexp"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
	"unsafe"

	"github.com/influxdata/telegraf"
	"github.com/influxdata/telegraf/filter"
	"github.com/valyala/fastjson"
	"github.com/valyala/fastjson/fastfloat"

	"github.com/mailtick/mailtick/plugins/common/box"
	"github.com/mailtick/mailtick/plugins/common/eventtime"
)

// Reasons an event is not turned into a metric. They are the values of the
// "reason" tag of the internal_mailevents_errors self-metric and of the
// dead letters.
const (
	ReasonMalformed     = "malformed_json"
	ReasonNotObject     = "not_object"
	ReasonWrongType     = "wrong_type"
	ReasonBadTime       = "bad_time"
	ReasonMissingTime   = "missing_time"
	ReasonOversized     = "oversized"
	ReasonEmpty         = "empty"
	ReasonNoFields      = "no_fields" // only tags and time: nothing a database can store
	ReasonNoEvents      = "no_events" // nothing at events_path
	ReasonMalformedForm = "malformed_form"
)

// AllReasons lists every reason an event is refused for.
var AllReasons = []string{
	ReasonMalformed, ReasonNotObject, ReasonWrongType, ReasonBadTime,
	ReasonMissingTime, ReasonOversized, ReasonEmpty, ReasonNoFields, ReasonNoEvents, ReasonMalformedForm,
}

type fieldType int

const (
	typeAuto fieldType = iota
	typeString
	typeInt
	typeUint
	typeFloat
	typeBool
)

var fieldTypeNames = map[string]fieldType{
	"auto": typeAuto, "string": typeString, "int": typeInt,
	"uint": typeUint, "float": typeFloat, "bool": typeBool,
}

type timeFormat int

const (
	timeAuto timeFormat = iota
	timeRFC3339
	timeUnix
	timeUnixMs
	timeUnixUs
	timeUnixNs
	timeLayout
)

var timeFormatNames = map[string]timeFormat{
	"auto": timeAuto, "rfc3339": timeRFC3339, "unix": timeUnix,
	"unix_ms": timeUnixMs, "unix_us": timeUnixUs, "unix_ns": timeUnixNs,
}

// BadEvent is one event (or a whole message) that could not become a metric.
type BadEvent struct {
	reason string
	err    error
	raw    []byte
}

// NewBadEvent is an event refused for reason, with its text.
func NewBadEvent(reason string, err error, raw []byte) BadEvent { return BadEvent{reason, err, raw} }

// Reason is why the event was refused, one of AllReasons.
func (b BadEvent) Reason() string { return b.reason }

// Err says what was wrong with it.
func (b BadEvent) Err() error { return b.err }

// Raw is the event's own text (or the whole message's).
func (b BadEvent) Raw() []byte { return b.raw }

// Decoded is what one body (an NSQ message, a webhook request, what a
// stock input hands the parser) turned into.
type Decoded struct {
	Events      int // seen, good or bad
	Metrics     []telegraf.Metric
	Bad         []BadEvent
	MissingTime int // events stamped with the fallback time
	RepairedUTF int // strings whose invalid UTF-8 was replaced

	exploded int // tags and fields of the metrics exploded so far
}

type keyKind uint8

const (
	kindField keyKind = iota
	kindTag
	kindTime
	kindDrop
	kindDenied // not in keep_keys: dropped, but an object's keys are checked one by one
)

// keySpec is all the Decoder needs to know about one key, found with a
// single map lookup per key on the hot path.
type keySpec struct {
	name   string // the metric's key, after rename
	kind   keyKind
	typ    fieldType
	prio   int               // kindTime: the place in time_keys, first wins
	values map[string]string // value_maps of the key, if any
}

// Decoder turns a message body into metrics. Its configuration is read-only
// after Init, so one Decoder serves every worker; each worker brings its
// own fastjson.Parser.
type Decoder struct {
	measurement  string
	keys         map[string]*keySpec // by JSON path (nested: dotted)
	eventsPath   []string            // events_path, split at dots
	dropGlob     filter.Filter       // drop_keys with globs
	keepGlob     filter.Filter       // keep_keys: when set, other keys no option names are dropped
	formField    string              // form_field: the body is a form, the events in this field
	jsonKeys     [][]string          // json_keys, split at dots: strings holding JSON
	explode      [][]string          // explode, split at dots: lists that are one event per element
	indexed      map[string]bool     // lists some key names an element of ("category[0]")
	fillTime     bool                // time_fill = "event_hash"
	captures     []capture
	rules        []ValueRule
	timeKeys     []string
	timeFormat   timeFormat
	timeLayout   string
	missingAsDLQ bool
	maxSize      int
	maxExploded  int  // max_exploded: elements of a list; explodedFields times that: tags and fields per body
	uniqueKeys   bool // refuse a key named twice in one object (unique.go)
	flat         bool // flat events may be read without fastjson (flat.go)
}

// nested returns what to do with the nested key at path, and whether an
// option names it.
func (d *Decoder) nested(path string) (keySpec, bool) {
	if sp, ok := d.keys[path]; ok {
		return *sp, true
	}
	return d.unnamed(path), false
}

// unnamed is what to do with a key no option names exactly: drop_keys
// and keep_keys globs decide.
func (d *Decoder) unnamed(name string) keySpec {
	switch {
	case d.dropGlob != nil && d.dropGlob.Match(name):
		return keySpec{name: name, kind: kindDrop}
	case d.keepGlob != nil && !d.keepGlob.Match(name):
		return keySpec{name: name, kind: kindDenied}
	}
	return keySpec{name: name}
}

// spec returns what to do with the key at path; raw is path's bytes when
// the caller has them, so that a known key costs no allocation.
func (d *Decoder) spec(raw []byte, path string) keySpec {
	if raw != nil {
		if sp, ok := d.keys[string(raw)]; ok {
			return *sp
		}
		return d.unnamed(string(raw))
	}
	if sp, ok := d.keys[path]; ok {
		return *sp
	}
	return d.unnamed(path)
}

// Decode parses one body (an NSQ message, a webhook request, what a stock
// input hands the parser): a JSON object, an array of objects, or
// newline-delimited objects. Good events become metrics; each bad event is
// returned with its reason so that it can be dead-lettered (or counted) on
// its own.
//
// Events without a time take published plus the event's index in the body
// in nanoseconds. inputs.mailevents passes the time the message was
// published, which nsqd keeps across redeliveries: a redelivered message
// then yields the same points, which overwrite the first ones instead of
// adding to them. The webhooks and the parser pass the time they received
// the body.
func (d *Decoder) Decode(sc *Scratch, body []byte, published time.Time) Decoded {
	p := &sc.parser
	var out Decoded
	if d.maxSize > 0 && len(body) > d.maxSize {
		out.Bad = append(out.Bad, BadEvent{ReasonOversized,
			fmt.Errorf("message of %d bytes exceeds max_message_size %d", len(body), d.maxSize), body})
		return out
	}
	if d.formField != "" {
		form, err := url.ParseQuery(string(body))
		if err == nil && !form.Has(d.formField) {
			err = fmt.Errorf("no form field %q", d.formField)
		}
		if err == nil && d.uniqueKeys && len(form[d.formField]) > 1 {
			err = fmt.Errorf("form field %q named %d times", d.formField, len(form[d.formField]))
		}
		if err != nil {
			out.Bad = append(out.Bad, BadEvent{ReasonMalformedForm, err, body})
			return out
		}
		body = []byte(form.Get(d.formField))
	}
	trimmed := trimSpace(body)
	if len(trimmed) == 0 {
		out.Bad = append(out.Bad, BadEvent{ReasonEmpty, errors.New("empty message"), body})
		return out
	}

	if d.flat {
		if kvs, ok := readFlat(trimmed, sc.flat[:0]); ok {
			sc.flat = kvs
			if err := d.flatDuplicates(sc, kvs, trimmed); err != nil {
				out.Bad = append(out.Bad, BadEvent{ReasonMalformed, err, body})
				return out
			}
			d.flatEvent(sc, kvs, published, trimmed, &out)
			return out
		}
	}
	v, err := p.ParseBytes(trimmed)
	if err == nil {
		if err := d.duplicates(sc, v); err != nil {
			out.Bad = append(out.Bad, BadEvent{ReasonMalformed, err, body})
			return out
		}
		d.document(sc, v, published, trimmed, &out)
		return out
	}
	if !isNDJSON(trimmed) {
		out.Bad = append(out.Bad, BadEvent{ReasonMalformed, err, body})
		return out
	}
	// Newline-delimited JSON: each line stands alone, so one broken line
	// costs only itself.
	for line := range bytes.SplitSeq(trimmed, []byte{'\n'}) {
		line = trimSpace(line)
		if len(line) == 0 {
			continue
		}
		v, err := p.ParseBytes(line)
		if err == nil {
			err = d.duplicates(sc, v)
		}
		if err != nil {
			out.Bad = append(out.Bad, BadEvent{ReasonMalformed, err, line})
			continue
		}
		d.document(sc, v, published, line, &out)
	}
	return out
}

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

// capture is one [[capture]]: named groups of a regular expression over a
// string field become fields of their own.
type capture struct {
	key   string
	re    *regexp.Regexp
	types []fieldType // by group index
}

// capture adds the named groups of each capture that matches, typed by
// field_types, unless the event has those fields already.
func (d *Decoder) capture(m telegraf.Metric) error {
	for _, c := range d.captures {
		v, ok := m.GetField(c.key)
		s, isString := v.(string)
		if !ok || !isString {
			continue
		}
		groups := c.re.FindStringSubmatch(s)
		for i, name := range c.re.SubexpNames() {
			if name == "" || i >= len(groups) || groups[i] == "" || m.HasField(name) {
				continue
			}
			val, err := fromText(c.types[i], groups[i])
			if err != nil {
				return fmt.Errorf("capture %q from %q: %w", name, c.key, err)
			}
			m.AddField(name, val)
		}
	}
	return nil
}

// applyRules sets the value of each value_rule whose conditions all hold,
// in order: a tag stays a tag, anything else is a string field.
func (d *Decoder) applyRules(m telegraf.Metric) {
	for _, r := range d.rules {
		if !r.holds(m) {
			continue
		}
		if _, isTag := m.GetTag(r.Key); isTag || d.isTag(r.Key) {
			m.AddTag(r.Key, r.Value)
		} else {
			m.AddField(r.Key, r.Value)
		}
	}
}

func (r *ValueRule) holds(m telegraf.Metric) bool {
	for k, want := range r.When {
		v, ok := m.GetTag(k)
		if !ok {
			f, fok := m.GetField(k)
			if !fok {
				return false
			}
			if v, ok = f.(string); !ok {
				v = fmt.Sprint(f) // true, 550
			}
		}
		if v != want {
			return false
		}
	}
	return true
}

func (d *Decoder) isTag(key string) bool {
	sp, ok := d.keys[key]
	return ok && sp.kind == kindTag
}

// fromText types text, a JSON string or a captured group, as t.
func fromText(t fieldType, s string) (any, error) {
	switch t {
	case typeInt:
		if n, err := strconv.ParseInt(s, 10, 64); err == nil {
			return n, nil
		}
		return nil, fmt.Errorf("%q is not an integer", s)
	case typeUint:
		if n, err := strconv.ParseUint(s, 10, 64); err == nil {
			return n, nil
		}
		return nil, fmt.Errorf("%q is not an unsigned integer", s)
	case typeFloat:
		if f, err := strconv.ParseFloat(s, 64); err == nil && !math.IsNaN(f) && !math.IsInf(f, 0) {
			return f, nil
		}
		return nil, fmt.Errorf("%q is not a finite number", s)
	case typeBool:
		if v, err := strconv.ParseBool(s); err == nil {
			return v, nil
		}
		return nil, fmt.Errorf("%q is not a boolean", s)
	}
	return s, nil
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

// EventsField is the field every mail_event carries, always 1: InfluxQL
// counts fields, not points, and no other field is in every event.
const EventsField = "events"

// Scratch is a worker's reusable decoding state.
type Scratch struct {
	last     int // fields of the worker's last event
	parser   fastjson.Parser
	inner    []fastjson.Parser // one per json_keys entry
	seen     []seenKey
	rendered []byte // builder.rendered
	flat     []flatKV
	keys     [][]byte // unique.go
	slab     box.Slab // the values of the worker's events, in shared blocks
}

// seenKey remembers a top-level key at its position. Mailers write their
// keys in the same order every time, so comparing with the key at the same
// position of the previous event mostly replaces a map lookup by a memcmp.
type seenKey struct {
	raw string
	sp  keySpec
}

func (b *builder) topLevel(k []byte) keySpec {
	seen := *b.seen
	i := b.pos
	b.pos++
	if i < len(seen) && seen[i].raw == string(k) {
		return seen[i].sp
	}
	sp := b.d.spec(k, "")
	if i < len(seen) {
		seen[i] = seenKey{string(k), sp}
	} else if i == len(seen) && i < 64 {
		*b.seen = append(seen, seenKey{string(k), sp})
	}
	return sp
}

func NewScratch() *Scratch { return new(Scratch) }

// start makes the builder of an event. The metric's memory is what
// max_undelivered_messages multiplies, so its fields are sized to fit: as
// the worker's last event's were (a mailer writes the same keys every
// time), or, for the first, as counted (keys, tags included). An event
// that needs more still gets it.
func (sc *Scratch) start(d *Decoder, published time.Time, counted int) builder {
	fields := sc.last
	if fields == 0 {
		fields = counted
	}
	return builder{d: d, slab: &sc.slab, seen: &sc.seen, rendered: &sc.rendered,
		m: newEventMetric(d.measurement, published, fields)}
}

// end remembers the size of the event b built.
func (sc *Scratch) end(b *builder) {
	sc.last = len(b.m.FieldList())
}

// builder gathers one event's tags and fields while walking its keys.
type builder struct {
	d        *Decoder
	seen     *[]seenKey // the top-level keys of the worker's last event
	pos      int
	slab     *box.Slab
	m        telegraf.Metric
	tm       time.Time
	hasTime  bool
	timePrio int
	repaired int
	skip     string  // the exploded list's path: walked once per element
	rendered *[]byte // a number's text or a list's JSON, while it is mapped
	reason   string
	err      error
}

// walk adds one element of an exploded list, found at path: an object's
// keys are mapped as path.key, a scalar as path itself.
func (b *builder) walk(elem *fastjson.Value, path string) {
	if elem.Type() == fastjson.TypeObject {
		inner, _ := elem.Object()
		sp, _ := b.d.nested(path)
		b.object(inner, path, sp.kind)
		return
	}
	sp, _ := b.d.nested(path)
	b.value(sp, b.scalar(elem))
}

func (b *builder) fail(reason string, err error) {
	if b.err == nil {
		b.reason, b.err = reason, err
	}
}

// object walks the keys of obj. A nested key no option names inherits the
// kind of its object: drop_keys = ["envelope"] drops envelope.from too,
// and tag_keys = ["envelope"] makes its scalars tags.
func (b *builder) object(obj *fastjson.Object, prefix string, inherit keyKind) {
	obj.Visit(func(k []byte, v *fastjson.Value) {
		if b.err != nil {
			return
		}
		var sp keySpec
		var path string
		if prefix == "" {
			sp = b.topLevel(k)
			if b.skip != "" || v.Type() == fastjson.TypeArray {
				path = string(k)
			}
		} else {
			var known bool
			path = prefix + "." + string(k)
			sp, known = b.d.nested(path)
			if !known && (inherit == kindDrop || inherit == kindTag) {
				sp.kind = inherit
			}
		}
		if b.skip != "" && path == b.skip {
			return
		}
		switch v.Type() {
		case fastjson.TypeObject:
			b.nest(sp, v)
		case fastjson.TypeArray:
			b.list(sp, v, path)
		default:
			b.value(sp, b.scalar(v))
		}
	})
}

// nest walks an object's keys; a nested key takes its name from the
// object's, so that rename of an object moves its keys too.
func (b *builder) nest(sp keySpec, v *fastjson.Value) {
	if sp.kind == kindDrop {
		return
	}
	inner, _ := v.Object()
	if sp.kind == kindDenied { // its keys may be kept
		sp.kind = kindField
	}
	b.object(inner, sp.name, sp.kind)
}

// list maps a JSON list: the elements some key names ("category[0]"),
// then the list itself. A list of one string or one object is taken as
// that value; an empty list is no value; other lists have no line-protocol
// type and are kept as their JSON text (a tag cannot hold them: name an
// element instead).
func (b *builder) list(sp keySpec, v *fastjson.Value, path string) {
	arr, _ := v.Array()
	if len(arr) == 0 {
		return
	}
	if b.d.indexed[path] {
		for i, elem := range arr {
			if isp, ok := b.d.keys[path+"["+strconv.Itoa(i)+"]"]; ok {
				b.value(*isp, b.scalar(elem))
			}
		}
	}
	if len(arr) == 1 {
		switch arr[0].Type() {
		case fastjson.TypeString:
			b.value(sp, b.scalar(arr[0]))
			return
		case fastjson.TypeObject:
			b.nest(sp, arr[0])
			return
		}
	}
	b.value(sp, b.scalar(v))
}

// scalar is a JSON value as the builder maps it: a string's bytes
// (unescaped), a number's text, true or false as their text, a list as its
// JSON text; from fastjson's tree or read straight from a flat event. raw
// may point into the message or the parser: what is kept is copied.
type scalar struct {
	t   fastjson.Type
	raw []byte
}

// number is a number's text for fastfloat, not copied: it is parsed at once.
func (v scalar) number() string {
	return unsafe.String(unsafe.SliceData(v.raw), len(v.raw))
}

var (
	jsonTrue  = []byte("true")
	jsonFalse = []byte("false")
)

// scalar takes what the builder needs of a value of fastjson's tree.
func (b *builder) scalar(v *fastjson.Value) scalar {
	t := v.Type()
	switch t {
	case fastjson.TypeString:
		raw, _ := v.StringBytes()
		return scalar{t, raw}
	case fastjson.TypeTrue:
		return scalar{t, jsonTrue}
	case fastjson.TypeFalse:
		return scalar{t, jsonFalse}
	case fastjson.TypeNull:
		return scalar{t: t}
	}
	// A number's text, or a list (or object) rendered: into the worker's
	// scratch, as the value is mapped before the next is taken.
	*b.rendered = v.MarshalTo((*b.rendered)[:0])
	return scalar{t, *b.rendered}
}

func (b *builder) value(sp keySpec, v scalar) {
	if sp.kind == kindDrop || sp.kind == kindDenied || v.t == fastjson.TypeNull {
		return
	}
	switch sp.kind {
	case kindTime:
		tm, err := b.d.parseTime(v)
		if err != nil {
			b.fail(ReasonBadTime, fmt.Errorf("key %q: %w", sp.name, err))
			return
		}
		if !b.hasTime || sp.prio < b.timePrio {
			b.tm, b.hasTime, b.timePrio = tm, true, sp.prio
		}
	case kindTag:
		s, err := b.text(v)
		if err != nil {
			b.fail(ReasonWrongType, fmt.Errorf("tag %q: %w", sp.name, err))
			return
		}
		if mapped, ok := sp.values[s]; ok {
			s = mapped
		}
		if s != "" {
			b.m.AddTag(sp.name, s)
		}
	default:
		val, err := b.typed(sp.typ, v)
		if err != nil {
			b.fail(ReasonWrongType, fmt.Errorf("field %q: %w", sp.name, err))
			return
		}
		if s, ok := val.(string); ok && sp.values != nil {
			if mapped, ok := sp.values[s]; ok {
				val = mapped
			}
		}
		b.m.AddField(sp.name, val)
	}
}

// text renders a scalar as a tag value: strings as they are, numbers and
// booleans as their JSON text.
func (b *builder) text(v scalar) (string, error) {
	switch v.t {
	case fastjson.TypeString:
		return b.str(v), nil
	case fastjson.TypeNumber, fastjson.TypeTrue, fastjson.TypeFalse:
		return string(v.raw), nil
	default:
		return "", fmt.Errorf("got a JSON %s, want a string", v.t)
	}
}

// str copies a JSON string out of the parser's buffer, repairing invalid
// UTF-8 (Latin-1 SMTP replies happen) rather than losing the event.
func (b *builder) str(v scalar) string {
	raw := v.raw
	if !utf8.Valid(raw) {
		b.repaired++
		return strings.ToValidUTF8(string(raw), "\uFFFD")
	}
	return b.slab.String(raw)
}

func (b *builder) typed(t fieldType, v scalar) (any, error) {
	vt := v.t
	if vt == fastjson.TypeString && t != typeString && t != typeAuto {
		return fromText(t, string(v.raw))
	}
	switch t {
	case typeString:
		s, err := b.text(v)
		if err != nil {
			return nil, err
		}
		return b.slab.Box(s), nil
	case typeInt:
		if vt == fastjson.TypeNumber {
			if n, err := fastfloat.ParseInt64(v.number()); err == nil {
				return b.slab.Int64(n), nil
			}
			f, _ := fastfloat.Parse(v.number())
			if f == math.Trunc(f) && math.Abs(f) < 1<<63 {
				return b.slab.Int64(int64(f)), nil
			}
			return nil, fmt.Errorf("%s is not an integer", v.raw)
		}
	case typeUint:
		if vt == fastjson.TypeNumber {
			if n, err := fastfloat.ParseUint64(v.number()); err == nil {
				return b.slab.Uint64(n), nil
			}
			return nil, fmt.Errorf("%s is not an unsigned integer", v.raw)
		}
	case typeFloat:
		if vt == fastjson.TypeNumber {
			return b.float(v)
		}
	case typeBool:
		if vt == fastjson.TypeTrue || vt == fastjson.TypeFalse {
			return vt == fastjson.TypeTrue, nil
		}
	default: // typeAuto: numbers are floats so a key never flips type.
		switch vt {
		case fastjson.TypeString:
			return b.slab.Box(b.str(v)), nil
		case fastjson.TypeNumber:
			return b.float(v)
		case fastjson.TypeTrue, fastjson.TypeFalse:
			return vt == fastjson.TypeTrue, nil
		case fastjson.TypeArray:
			// Lists have no line-protocol type: keep them readable as JSON.
			return string(v.raw), nil
		}
	}
	return nil, fmt.Errorf("got a JSON %s, want %s", vt, typeName(t))
}

func (b *builder) float(v scalar) (any, error) {
	f, err := fastfloat.Parse(v.number())
	if err != nil {
		return nil, err
	}
	return b.slab.Float64(f), nil
}

func typeName(t fieldType) string {
	for name, ft := range fieldTypeNames {
		if ft == t {
			return name
		}
	}
	return "unknown"
}

// parseTime reads the event time with nanosecond precision.
func (d *Decoder) parseTime(v scalar) (time.Time, error) {
	switch v.t {
	case fastjson.TypeString:
		s := string(v.raw)
		switch d.timeFormat {
		case timeLayout:
			return time.Parse(d.timeLayout, s)
		case timeRFC3339:
			return time.Parse(time.RFC3339Nano, s)
		case timeAuto:
			if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
				return t, nil
			}
			if isDigits(s) {
				return epoch(s, d.timeFormat)
			}
			return time.Time{}, fmt.Errorf("%q is neither RFC3339 nor an epoch number", s)
		default:
			return epoch(s, d.timeFormat)
		}
	case fastjson.TypeNumber:
		if d.timeFormat == timeRFC3339 || d.timeFormat == timeLayout {
			return time.Time{}, fmt.Errorf("got number %s, want a time string", v.raw)
		}
		return epoch(string(v.raw), d.timeFormat)
	default:
		return time.Time{}, fmt.Errorf("got a JSON %s, want a time", v.t)
	}
}

func isDigits(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if (s[i] < '0' || s[i] > '9') && s[i] != '.' {
			return false
		}
	}
	return true
}

// epoch parses an epoch number exactly: integers and decimal fractions
// without going through float64 (which holds only ~16 digits: ns since 1970
// need 19). In auto mode the unit is chosen by the integer part's magnitude.
func epoch(s string, f timeFormat) (time.Time, error) {
	if strings.ContainsAny(s, "eE") { // 1.7e9: rare, and float64 is all it says
		x, err := strconv.ParseFloat(s, 64)
		if err != nil || x < 0 || x >= 1e19 {
			return time.Time{}, fmt.Errorf("%q is not an epoch time", s)
		}
		s = strconv.FormatFloat(x, 'f', -1, 64)
	}
	intPart, frac, _ := strings.Cut(s, ".")
	n, err := strconv.ParseInt(intPart, 10, 64)
	if err != nil || n < 0 || !isDigits(frac) && frac != "" || strings.Contains(frac, ".") {
		return time.Time{}, fmt.Errorf("%q is not an epoch time", s)
	}
	if f == timeAuto {
		f = unitByMagnitude(n)
	}
	var perUnit int64
	switch f {
	case timeUnix:
		perUnit = 1e9
	case timeUnixMs:
		perUnit = 1e6
	case timeUnixUs:
		perUnit = 1e3
	default:
		perUnit = 1
	}
	if n > math.MaxInt64/perUnit {
		return time.Time{}, fmt.Errorf("%q is out of range", s)
	}
	ns := n * perUnit
	// The fraction, digit by digit, down to the nanosecond; finer digits
	// are cut (truncation, as time.Parse does with RFC3339 fractions).
	for scale := perUnit / 10; scale > 0 && frac != ""; scale /= 10 {
		ns += int64(frac[0]-'0') * scale
		frac = frac[1:]
	}
	return time.Unix(0, ns).UTC(), nil
}

// unitByMagnitude guesses an epoch unit for times between 1973 and 5138.
func unitByMagnitude(n int64) timeFormat {
	switch {
	case n < 1e11:
		return timeUnix
	case n < 1e14:
		return timeUnixMs
	case n < 1e17:
		return timeUnixUs
	default:
		return timeUnixNs
	}
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
