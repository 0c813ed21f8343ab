package mailevent

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"unicode/utf8"
	"unsafe"

	"github.com/valyala/fastjson"
	"github.com/valyala/fastjson/fastfloat"
)

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
