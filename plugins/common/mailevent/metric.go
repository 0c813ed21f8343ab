package mailevent

import (
	"fmt"
	"hash"
	"hash/fnv"
	"slices"
	"strings"
	"time"

	"github.com/influxdata/telegraf"
	"github.com/influxdata/telegraf/metric"
)

// eventMetric is a telegraf.Metric with the semantics of Telegraf's own
// (metric.New): tags sorted by key, fields in the order added, a key
// added again replaces its value. It differs in where it keeps them: the
// Tag and Field structs an event needs are cut from a few blocks allocated
// with the metric, where Telegraf's allocates each struct apart, grows its
// slices by doubling and boxes every value a second time (convertField).
// A metric may wait long for the outputs (max_undelivered_messages of them
// at once), and building it was the largest part of decoding: see the
// mailevents input's README, Performance.
type eventMetric struct {
	name   string
	tags   []*telegraf.Tag
	fields []*telegraf.Field
	tm     time.Time
	typ    telegraf.ValueType

	// Structs not yet handed out; once used up, each comes alone.
	tagPool   []telegraf.Tag
	fieldPool []telegraf.Field

	tagStore    [inlineTags]telegraf.Tag
	tagPtrStore [inlineTags]*telegraf.Tag
}

// inlineTags covers the event's tags (four in the mailtick schema) plus
// the agent's global tags (dc, host).
const inlineTags = 6

// newEventMetric makes an empty metric with room for fields fields.
func newEventMetric(name string, tm time.Time, fields int) *eventMetric {
	m := &eventMetric{name: name, tm: tm, typ: telegraf.Untyped}
	m.tags = m.tagPtrStore[:0]
	m.tagPool = m.tagStore[:]
	m.fields = make([]*telegraf.Field, 0, fields)
	m.fieldPool = make([]telegraf.Field, fields)
	return m
}

// next hands out the next unused struct of a block, or a new one once the
// block is used up.
func next[T any](pool *[]T) *T {
	if len(*pool) == 0 {
		return new(T)
	}
	p := &(*pool)[0]
	*pool = (*pool)[1:]
	return p
}

func (m *eventMetric) newTag(key, value string) *telegraf.Tag {
	t := next(&m.tagPool)
	t.Key, t.Value = key, value
	return t
}

func (m *eventMetric) newField(key string, value any) *telegraf.Field {
	f := next(&m.fieldPool)
	f.Key, f.Value = key, value
	return f
}

func (m *eventMetric) String() string {
	return fmt.Sprintf("%s %v %v %d", m.name, m.Tags(), m.Fields(), m.tm.UnixNano())
}

func (m *eventMetric) Name() string                 { return m.name }
func (m *eventMetric) TagList() []*telegraf.Tag     { return m.tags }
func (m *eventMetric) FieldList() []*telegraf.Field { return m.fields }
func (m *eventMetric) Time() time.Time              { return m.tm }
func (m *eventMetric) Type() telegraf.ValueType     { return m.typ }
func (m *eventMetric) SetName(name string)          { m.name = name }
func (m *eventMetric) AddPrefix(prefix string)      { m.name = prefix + m.name }
func (m *eventMetric) AddSuffix(suffix string)      { m.name += suffix }
func (m *eventMetric) SetTime(t time.Time)          { m.tm = t }
func (m *eventMetric) SetType(t telegraf.ValueType) { m.typ = t }
func (*eventMetric) Accept()                        {}
func (*eventMetric) Reject()                        {}
func (*eventMetric) Drop()                          {}

func (m *eventMetric) Tags() map[string]string {
	tags := make(map[string]string, len(m.tags))
	for _, t := range m.tags {
		tags[t.Key] = t.Value
	}
	return tags
}

func (m *eventMetric) Fields() map[string]any {
	fields := make(map[string]any, len(m.fields))
	for _, f := range m.fields {
		fields[f.Key] = f.Value
	}
	return fields
}

func (m *eventMetric) AddTag(key, value string) {
	i, found := slices.BinarySearchFunc(m.tags, key, func(t *telegraf.Tag, k string) int { return strings.Compare(t.Key, k) })
	if found {
		m.tags[i].Value = value
		return
	}
	m.tags = slices.Insert(m.tags, i, m.newTag(key, value))
}

func (m *eventMetric) GetTag(key string) (string, bool) {
	for _, t := range m.tags {
		if t.Key == key {
			return t.Value, true
		}
	}
	return "", false
}

func (m *eventMetric) HasTag(key string) bool {
	_, ok := m.GetTag(key)
	return ok
}

func (m *eventMetric) RemoveTag(key string) {
	m.tags = slices.DeleteFunc(m.tags, func(t *telegraf.Tag) bool { return t.Key == key })
}

func (m *eventMetric) AddField(key string, value any) {
	value = canonical(value)
	for i, f := range m.fields {
		if f.Key == key {
			// A new struct, as Telegraf's metric does: the old one may be
			// shared with a copy's reader.
			m.fields[i] = m.newField(key, value)
			return
		}
	}
	m.fields = append(m.fields, m.newField(key, value))
}

// canonical converts a value to one of the five field types, as Telegraf's
// metric does; the decoder's values already are one, and pass unboxed.
func canonical(v any) any {
	switch v.(type) {
	case float64, int64, uint64, string, bool:
		return v
	}
	f, _ := metric.New("", nil, map[string]any{"v": v}, time.Time{}).GetField("v")
	return f
}

func (m *eventMetric) GetField(key string) (any, bool) {
	for _, f := range m.fields {
		if f.Key == key {
			return f.Value, true
		}
	}
	return nil, false
}

func (m *eventMetric) HasField(key string) bool {
	_, ok := m.GetField(key)
	return ok
}

func (m *eventMetric) RemoveField(key string) {
	m.fields = slices.DeleteFunc(m.fields, func(f *telegraf.Field) bool { return f.Key == key })
}

func (m *eventMetric) Copy() telegraf.Metric { return m.copyWithRoom(0) }

// copyWithRoom copies m with room for extra more fields: an exploded
// list's element adds its own to the event's.
func (m *eventMetric) copyWithRoom(extra int) *eventMetric {
	c := newEventMetric(m.name, m.tm, len(m.fields)+extra)
	c.typ = m.typ
	for _, t := range m.tags {
		c.tags = append(c.tags, c.newTag(t.Key, t.Value))
	}
	for _, f := range m.fields {
		c.fields = append(c.fields, c.newField(f.Key, f.Value))
	}
	return c
}

// HashID is Telegraf's: the name and the tags, FNV-1a.
func (m *eventMetric) HashID() uint64 {
	return m.hashTags(nil).Sum64()
}

// HashIDWithFieldsFiltered is Telegraf's: the name, the tags not excluded,
// and the sorted keys of the fields not excluded.
func (m *eventMetric) HashIDWithFieldsFiltered(excludedTags, excludedFields []string) uint64 {
	h := m.hashTags(excludedTags)
	keys := make([]string, 0, len(m.fields))
	for _, f := range m.fields {
		if !slices.Contains(excludedFields, f.Key) {
			keys = append(keys, f.Key)
		}
	}
	slices.Sort(keys)
	h.Write([]byte(strings.Join(keys, "\n")))
	return h.Sum64()
}

func (m *eventMetric) hashTags(excluded []string) hash.Hash64 {
	h := fnv.New64a()
	h.Write([]byte(m.name))
	h.Write([]byte("\n"))
	for _, t := range m.tags {
		if slices.Contains(excluded, t.Key) {
			continue
		}
		h.Write([]byte(t.Key))
		h.Write([]byte("\n"))
		h.Write([]byte(t.Value))
		h.Write([]byte("\n"))
	}
	return h
}
