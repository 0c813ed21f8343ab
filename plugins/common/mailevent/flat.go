package mailevent

import (
	"bytes"
	"time"

	"github.com/valyala/fastjson"
)

// A mailer's event is nearly always one flat JSON object: keys with
// strings, numbers, booleans and nulls. Such an event is read straight
// from the message's bytes, without building fastjson's tree first (its
// parse, a pass over the keys to size the strings, and the walk cost a
// fifth of the agent's CPU). Anything else (nesting, lists, escapes, a
// syntax error) goes the usual way, through fastjson, which then has the
// final word: the flat reader accepts only what fastjson reads the same
// way, and an event it maps, or dead-letters, is what the tree would have
// made of it (FuzzFlat checks both).

// flatKV is where one key and its value are in a flat event's message,
// and the value's type: offsets, not slices, so that writing them down
// costs no write barrier while the garbage collector runs.
type flatKV struct {
	keyStart, keyEnd, valStart, valEnd int
	t                                  fastjson.Type
}

func (kv *flatKV) key(b []byte) []byte { return b[kv.keyStart:kv.keyEnd] }

func (kv *flatKV) val(b []byte) scalar {
	switch kv.t {
	case fastjson.TypeTrue:
		return scalar{kv.t, jsonTrue}
	case fastjson.TypeFalse:
		return scalar{kv.t, jsonFalse}
	case fastjson.TypeNull:
		return scalar{t: kv.t}
	}
	return scalar{kv.t, b[kv.valStart:kv.valEnd]}
}

// readFlat reads b as one JSON object whose values are strings without
// escapes, numbers in JSON's grammar, true, false or null, with keys
// without escapes, appending them to kvs in their order; ok is false for
// anything else.
func readFlat(b []byte, kvs []flatKV) (_ []flatKV, ok bool) {
	i := skipJSONSpace(b, 0)
	if i == len(b) || b[i] != '{' {
		return kvs, false
	}
	i = skipJSONSpace(b, i+1)
	if i < len(b) && b[i] == '}' {
		return kvs, skipJSONSpace(b, i+1) == len(b)
	}
	for {
		keyEnd, next, ok := plainString(b, i)
		if !ok {
			return kvs, false
		}
		kv := flatKV{keyStart: i + 1, keyEnd: keyEnd}
		i = skipJSONSpace(b, next)
		if i == len(b) || b[i] != ':' {
			return kvs, false
		}
		i = skipJSONSpace(b, i+1)
		if i == len(b) {
			return kvs, false
		}
		kv.valStart = i
		switch c := b[i]; {
		case c == '"':
			end, next, ok := plainString(b, i)
			if !ok {
				return kvs, false
			}
			kv.t, kv.valStart, kv.valEnd, i = fastjson.TypeString, i+1, end, next
		case c == 't' && bytes.HasPrefix(b[i:], jsonTrue):
			kv.t, i = fastjson.TypeTrue, i+len(jsonTrue)
		case c == 'f' && bytes.HasPrefix(b[i:], jsonFalse):
			kv.t, i = fastjson.TypeFalse, i+len(jsonFalse)
		case c == 'n' && bytes.HasPrefix(b[i:], []byte("null")):
			kv.t, i = fastjson.TypeNull, i+len("null")
		default:
			n := numberLen(b[i:])
			if n == 0 {
				return kvs, false
			}
			kv.t, kv.valEnd, i = fastjson.TypeNumber, i+n, i+n
		}
		kvs = append(kvs, kv)
		i = skipJSONSpace(b, i)
		if i == len(b) {
			return kvs, false
		}
		switch b[i] {
		case ',':
			i = skipJSONSpace(b, i+1)
		case '}':
			return kvs, skipJSONSpace(b, i+1) == len(b)
		default:
			return kvs, false
		}
	}
}

// plainString finds the end of the string that opens at b[i]: its closing
// quote, and the byte after it; ok is false if there is none or it holds
// an escape. One pass over it: event strings are short, where two calls of
// IndexByte (for the quote, then for a backslash) cost more than a loop.
func plainString(b []byte, i int) (end, next int, ok bool) {
	if i == len(b) || b[i] != '"' {
		return i, i, false
	}
	for j := i + 1; j < len(b); j++ {
		switch b[j] {
		case '"':
			return j, j + 1, true
		case '\\':
			return i, i, false
		}
	}
	return i, i, false
}

// numberLen returns the length of the JSON number b starts with: -?
// (0|[1-9][0-9]*) (.[0-9]+)? ([eE][+-]?[0-9]+)?, followed by none of the
// bytes fastjson would read on as part of a number; 0 if there is none.
func numberLen(b []byte) int {
	i := 0
	if i < len(b) && b[i] == '-' {
		i++
	}
	switch {
	case i < len(b) && b[i] == '0':
		i++
	case i < len(b) && b[i] >= '1' && b[i] <= '9':
		i = digits(b, i)
	default:
		return 0
	}
	if i < len(b) && b[i] == '.' {
		if j := digits(b, i+1); j > i+1 {
			i = j
		} else {
			return 0
		}
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		j := i + 1
		if j < len(b) && (b[j] == '+' || b[j] == '-') {
			j++
		}
		if k := digits(b, j); k > j {
			i = k
		} else {
			return 0
		}
	}
	if i < len(b) {
		switch c := b[i]; {
		case c >= '0' && c <= '9', c == '.', c == '-', c == '+', c == 'e', c == 'E':
			return 0
		}
	}
	return i
}

func digits(b []byte, i int) int {
	for i < len(b) && b[i] >= '0' && b[i] <= '9' {
		i++
	}
	return i
}

// skipJSONSpace skips the white space JSON allows between tokens.
func skipJSONSpace(b []byte, i int) int {
	for i < len(b) && isSpace(b[i]) {
		i++
	}
	return i
}

// flatEvent maps a flat event as event maps fastjson's tree of it: the
// same builder, fed the same scalars.
func (d *Decoder) flatEvent(sc *Scratch, kvs []flatKV, published time.Time, raw []byte, out *Decoded) {
	b := sc.start(d, published, len(kvs))
	for i := range kvs {
		if b.value(b.topLevel(kvs[i].key(raw)), kvs[i].val(raw)); b.err != nil {
			break // finish dead-letters it, as event does
		}
	}
	sc.end(&b)
	d.finish(&b, nil, -1, published, out, func(reason string, err error) {
		out.Bad = append(out.Bad, BadEvent{reason, err, bytes.Clone(raw)})
	})
}
