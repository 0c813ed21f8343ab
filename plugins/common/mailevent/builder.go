package mailevent

import (
	"strconv"
	"time"

	"github.com/influxdata/telegraf"
	"github.com/valyala/fastjson"

	"github.com/mailtick/mailtick/plugins/common/box"
)

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
