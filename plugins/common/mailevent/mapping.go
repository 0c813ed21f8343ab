package mailevent

import (
	"fmt"
	"path"
	"reflect"
	"regexp"
	"slices"
	"strings"

	"github.com/influxdata/telegraf/config"
	"github.com/influxdata/telegraf/filter"

	"github.com/mailtick/mailtick/plugins/common/keyset"
)

// Mapping is how events become metrics: the options inputs.mailevents and
// the mailevents parser share. Options names are the same in both.
type Mapping struct {
	Preset         string                       `toml:"preset"`
	Measurement    string                       `toml:"measurement"`
	TagKeys        []string                     `toml:"tag_keys"`
	DropKeys       []string                     `toml:"drop_keys"`
	KeepKeys       []string                     `toml:"keep_keys"`
	FormField      string                       `toml:"form_field"`
	JSONKeys       []string                     `toml:"json_keys"`
	Explode        []string                     `toml:"explode"`
	Captures       []Capture                    `toml:"capture"`
	ValueRules     []ValueRule                  `toml:"value_rule"`
	FieldTypes     map[string]string            `toml:"field_types"`
	Rename         map[string]string            `toml:"rename"`
	EventsPath     string                       `toml:"events_path"`
	TimeKey        string                       `toml:"time_key"`
	TimeKeys       []string                     `toml:"time_keys"`
	ValueMaps      map[string]map[string]string `toml:"value_maps"`
	TimeFormat     string                       `toml:"time_format"`
	TimeFill       string                       `toml:"time_fill"`
	MissingTime    string                       `toml:"missing_time"`
	MaxMessageSize config.Size                  `toml:"max_message_size"`
	// MaxExploded is the most elements of an exploded list; one body's
	// exploded metrics hold at most explodedFields times as many tags
	// and fields in all. 0: DefaultMaxExploded.
	MaxExploded int `toml:"max_exploded"`
	// RefuseDuplicateKeys refuses a document in which one object names a
	// key twice (malformed_json; malformed_form for a form field sent
	// twice). Not an option: inputs.mailwebhooks sets it, so that what a
	// signature covers and what is decoded cannot be two different values.
	RefuseDuplicateKeys bool `toml:"-"`
}

// Capture takes typed fields out of a string field with a regular
// expression's named groups ("(?P<smtp_code>\d{3})").
type Capture struct {
	Key     string `toml:"key"`
	Pattern string `toml:"pattern"`
}

// ValueRule sets Key to Value when every key of When (a tag or a field, as
// mapped) has the value given: value maps that depend on other keys
// (Mailgun's "failed" with severity "temporary" is "deferred"). A rule
// without When always holds: a constant, such as a preset's mailer tag.
type ValueRule struct {
	Key   string            `toml:"key"`
	When  map[string]string `toml:"when"`
	Value string            `toml:"value"`
}

// DefaultMapping works with zero mapping config on the mailer event of
// docs/DESIGN.md.
func DefaultMapping() Mapping {
	return Mapping{
		Measurement:    "mail_event",
		TagKeys:        append([]string(nil), defaultTagKeys...),
		TimeKey:        "time",
		TimeFormat:     "auto",
		MissingTime:    missingPublish,
		MaxMessageSize: config.Size(512 * 1024),
		MaxExploded:    DefaultMaxExploded,
	}
}

// WithDefaults is m with every option it leaves at its zero value (as TOML
// leaves what a table does not write) set to DefaultMapping's: the
// defaults are written once, there.
func (m Mapping) WithDefaults() Mapping {
	mv, dv := reflect.ValueOf(&m).Elem(), reflect.ValueOf(DefaultMapping())
	for i := range mv.NumField() {
		if f := mv.Field(i); f.IsZero() {
			f.Set(dv.Field(i))
		}
	}
	return m
}

// DefaultMaxExploded is max_exploded's default: Postfix's
// smtpd_recipient_limit (SES takes at most 50 recipients per message).
const DefaultMaxExploded = 1000

// explodedFields is how many tags and fields, per max_exploded, the
// metrics exploded from one body may hold in all: each element's metric
// repeats the event's other keys, so that the elements times the keys,
// not the elements alone, are what an event costs.
const explodedFields = 100

var (
	defaultTagKeys    = []string{"dc", "direction", "event", "mailer", "customer"}
	defaultFieldTypes = map[string]string{
		"smtp_code": "int", "size_bytes": "int", "attempt": "int",
		"latency_ms": "float", "spam_score": "float",
	}
	knownKeys = []string{
		"time", "event", "direction", "mailer", "customer", "message_id", "queue_id",
		"sender", "recipient", "sender_ip", "helo", "smtp_code", "smtp_status",
		"smtp_response", "latency_ms", "size_bytes", "spam_score", "attempt", "dc",
	}
)

const (
	timeFillNone = "none"
	timeFillHash = "event_hash"
)

const (
	missingPublish = "publish_time"
	missingReceive = "receive_time" // the name before 0.2: now publish_time
	missingDeadLet = "dead_letter"
)

// NewDecoder checks the mapping and builds its decoder; errors name the
// option and the bad value.
func (m *Mapping) NewDecoder() (*Decoder, error) {
	if m.Preset != "" {
		merged, err := m.withPreset()
		if err != nil {
			return nil, err
		}
		m = &merged
	}
	if m.Measurement == "" {
		return nil, fmt.Errorf("invalid %q value %q: must not be empty", "measurement", m.Measurement)
	}
	timeKeys := m.TimeKeys
	if len(timeKeys) == 0 {
		if m.TimeKey == "" {
			return nil, fmt.Errorf("invalid %q value %q: must not be empty", "time_key", m.TimeKey)
		}
		timeKeys = []string{m.TimeKey}
	}
	for _, k := range timeKeys {
		if k == "" {
			return nil, fmt.Errorf("invalid %q value %q: names must not be empty", "time_keys", m.TimeKeys)
		}
	}
	if m.MissingTime == missingReceive {
		m.MissingTime = missingPublish
	}
	if m.MissingTime != missingPublish && m.MissingTime != missingDeadLet {
		return nil, fmt.Errorf("invalid %q value %q: want %q or %q", "missing_time", m.MissingTime, missingPublish, missingDeadLet)
	}
	if m.MaxMessageSize < 0 {
		return nil, fmt.Errorf("invalid %q value %d: must not be negative", "max_message_size", m.MaxMessageSize)
	}
	maxExploded := m.MaxExploded
	switch {
	case maxExploded < 0:
		return nil, fmt.Errorf("invalid %q value %d: must not be negative (0: %d)", "max_exploded", maxExploded, DefaultMaxExploded)
	case maxExploded == 0:
		maxExploded = DefaultMaxExploded
	}
	d := Decoder{
		measurement:  m.Measurement,
		maxExploded:  maxExploded,
		keys:         make(map[string]*keySpec),
		timeKeys:     timeKeys,
		missingAsDLQ: m.MissingTime == missingDeadLet,
		maxSize:      int(m.MaxMessageSize),
		uniqueKeys:   m.RefuseDuplicateKeys,
	}
	types := make(map[string]fieldType, len(defaultFieldTypes)+len(m.FieldTypes))
	for _, src := range []map[string]string{defaultFieldTypes, m.FieldTypes} {
		for k, v := range src {
			t, ok := fieldTypeNames[v]
			if !ok {
				return nil, fmt.Errorf("invalid %q value %q for key %q: want one of auto, string, int, uint, float, bool", "field_types", v, k)
			}
			types[k] = t
		}
	}
	switch f := strings.TrimSpace(m.TimeFormat); {
	case timeFormatNames[f] != timeAuto || f == "auto":
		d.timeFormat = timeFormatNames[f]
	case strings.Contains(f, "2006"):
		d.timeFormat, d.timeLayout = timeLayout, f
	default:
		return nil, fmt.Errorf("invalid %q value %q: want auto, rfc3339, unix, unix_ms, unix_us, unix_ns or a Go layout", "time_format", m.TimeFormat)
	}

	if m.EventsPath != "" {
		d.eventsPath = strings.Split(m.EventsPath, ".")
		for _, seg := range d.eventsPath {
			if _, err := path.Match(seg, ""); seg == "" || err != nil {
				return nil, fmt.Errorf("invalid %q value %q: dotted keys, each a name or a glob", "events_path", m.EventsPath)
			}
		}
	}

	switch m.TimeFill {
	case "", timeFillNone:
	case timeFillHash:
		d.fillTime = true
	default:
		return nil, fmt.Errorf("invalid %q value %q: want %q or %q", "time_fill", m.TimeFill, timeFillNone, timeFillHash)
	}
	for _, p := range m.Explode {
		segs := strings.Split(p, ".")
		if slices.Contains(segs, "") {
			return nil, fmt.Errorf("invalid %q value %q: dotted keys", "explode", m.Explode)
		}
		d.explode = append(d.explode, segs)
	}

	d.formField = m.FormField
	for i, r := range m.ValueRules {
		if r.Key == "" {
			return nil, fmt.Errorf("value_rule %d: %q must be set", i+1, "key")
		}
	}
	d.rules = m.ValueRules
	for i, c := range m.Captures {
		re, err := regexp.Compile(c.Pattern)
		if err != nil {
			return nil, fmt.Errorf("capture %d: invalid %q value %q: %w", i+1, "pattern", c.Pattern, err)
		}
		if c.Key == "" || re.NumSubexp() == 0 {
			return nil, fmt.Errorf("capture %d: %q must name a field and %q have named groups", i+1, "key", "pattern")
		}
		ct := capture{key: c.Key, re: re, types: make([]fieldType, re.NumSubexp()+1)}
		d.captures = append(d.captures, ct)
	}
	for _, k := range m.JSONKeys {
		segs := strings.Split(k, ".")
		for _, seg := range segs {
			if seg == "" {
				return nil, fmt.Errorf("invalid %q value %q: dotted keys", "json_keys", m.JSONKeys)
			}
		}
		d.jsonKeys = append(d.jsonKeys, segs)
	}
	var exactDrop, dropGlobs []string
	for _, k := range m.DropKeys {
		if strings.ContainsAny(k, "*?[") {
			dropGlobs = append(dropGlobs, k)
		} else {
			exactDrop = append(exactDrop, k)
		}
	}
	if len(dropGlobs) > 0 {
		f, err := filter.Compile(dropGlobs)
		if err != nil {
			return nil, fmt.Errorf("invalid %q value %q: %w", "drop_keys", dropGlobs, err)
		}
		d.dropGlob = f
	}
	if len(m.KeepKeys) > 0 {
		f, err := filter.Compile(m.KeepKeys)
		if err != nil {
			return nil, fmt.Errorf("invalid %q value %q: %w", "keep_keys", m.KeepKeys, err)
		}
		d.keepGlob = f
	}

	for _, c := range d.captures {
		for i, name := range c.re.SubexpNames() {
			c.types[i] = types[name]
		}
	}

	tags, drop := keyset.Of(m.TagKeys), keyset.Of(exactDrop)
	timePrio := make(map[string]int, len(timeKeys))
	for i, k := range timeKeys {
		if _, dup := timePrio[k]; !dup {
			timePrio[k] = i
		}
	}
	specFor := func(name string) *keySpec {
		sp := &keySpec{name: name, typ: types[name], values: m.ValueMaps[name]}
		prio, isTime := timePrio[name]
		switch {
		case drop[name]:
			sp.kind = kindDrop
		case isTime:
			sp.kind, sp.prio = kindTime, prio
		case tags[name]:
			sp.kind = kindTag
		}
		return sp
	}
	valueKeys := make([]string, 0, len(m.ValueMaps))
	for k := range m.ValueMaps {
		valueKeys = append(valueKeys, k)
	}
	for _, list := range [][]string{knownKeys, m.TagKeys, exactDrop, timeKeys, valueKeys} {
		for _, k := range list {
			d.keys[k] = specFor(k)
		}
	}
	for k := range types {
		d.keys[k] = specFor(k)
	}
	for from, to := range m.Rename {
		if from == "" || to == "" {
			return nil, fmt.Errorf("invalid %q entry %q = %q: names must not be empty", "rename", from, to)
		}
		d.keys[from] = specFor(to)
	}
	// Keys naming an element of a list ("category[0]").
	for k := range d.keys {
		if m := indexedKey.FindStringSubmatch(k); m != nil {
			if d.indexed == nil {
				d.indexed = make(map[string]bool)
			}
			d.indexed[m[1]] = true
		}
	}
	// What reads the tree (a path into it, its JSON text) needs fastjson.
	d.flat = d.jsonKeys == nil && d.eventsPath == nil && d.explode == nil && !d.fillTime
	return &d, nil
}

var indexedKey = regexp.MustCompile(`^(.+)\[(\d+)\]$`)
