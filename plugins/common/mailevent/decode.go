// Package mailevent is the mapping of mail events into mail_event
// metrics: one decoder of a body (JSON, JSON arrays, NDJSON, or a form
// holding JSON), whatever brought it: inputs.mailevents runs it on NSQ
// messages, inputs.mailwebhooks on the providers' webhook requests, and
// the parser (plugins/parsers/mailevents, data_format = "mailevents") on
// what any stock input hands it (an HTTP body, a line of a tailed file, a
// Kafka message). The mapping's options are documented in the parser's
// README, which every plugin embedding the mapping links to.
//
// The files: mapping.go (the options) and presets.go (the providers'),
// decode.go (the Decoder, its results and reasons), dispatch.go (a body
// into events: arrays, NDJSON, unwrap, explode, the time fill),
// builder.go (one event's keys into a metric), typing.go (values into
// field types), timeparse.go (the event time), rules.go (value rules and
// captures), flat.go (the fast path for flat events), unique.go (keys
// named twice), metric.go (the metric type).
package mailevent

import (
	"bytes"
	"errors"
	"fmt"
	"net/url"
	"time"

	"github.com/influxdata/telegraf"
	"github.com/influxdata/telegraf/filter"
	"github.com/valyala/fastjson"

	"github.com/mailtick/mailtick/plugins/common/box"
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

// NewScratch returns the scratch space of one goroutine's decoding.
func NewScratch() *Scratch { return new(Scratch) }
