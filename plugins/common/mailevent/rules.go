package mailevent

import (
	"fmt"
	"regexp"

	"github.com/influxdata/telegraf"
)

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
