package mailevent

import (
	"bytes"
	"fmt"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/influxdata/telegraf"
	"github.com/influxdata/telegraf/metric"
	"github.com/influxdata/telegraf/testutil"
	"github.com/stretchr/testify/require"

	"github.com/mailtick/mailtick/internal/gen"
	"github.com/mailtick/mailtick/internal/testutil/providertest"
)

// newDecoder returns the decoder of the default mapping, changed by edit.
func newDecoder(t testing.TB, edit func(*Mapping)) *Decoder {
	t.Helper()
	m := DefaultMapping()
	if edit != nil {
		edit(&m)
	}
	d, err := m.NewDecoder()
	require.NoError(t, err)
	return d
}

var receivedAt = time.Date(2026, 11, 22, 15, 0, 0, 0, time.UTC)

const fullEvent = `{"time":"2026-11-22T14:00:00.123456789Z","event":"bounced","direction":"outbound",
"mailer":"mx12.dc3.example.net","customer":"c10234","message_id":"<abc@mail.example.com>","queue_id":"4F2A1C0D3B",
"sender":"alice@example.com","recipient":"bob@x.org","sender_ip":"203.0.113.7","helo":"mail.example.com",
"smtp_code":550,"smtp_status":"5.1.1","smtp_response":"550 5.1.1 <bob@x.org>: Recipient address rejected",
"latency_ms":812.4,"size_bytes":12345,"spam_score":3.2,"attempt":1}`

// ownFields are the fields of an event but events, which every event
// carries as 1 (what the rollups count), checked here.
func ownFields(t *testing.T, m telegraf.Metric) map[string]any {
	t.Helper()
	f := m.Fields()
	require.Equal(t, int64(1), f[EventsField], "events=1 in every event")
	delete(f, EventsField)
	return f
}

func TestDecodeDefaults(t *testing.T) {
	d := newDecoder(t, nil)
	out := d.Decode(NewScratch(), []byte(fullEvent), receivedAt)
	require.Empty(t, out.Bad)
	expected := []telegraf.Metric{metric.New("mail_event",
		map[string]string{"direction": "outbound", "event": "bounced", "mailer": "mx12.dc3.example.net", "customer": "c10234"},
		map[string]any{
			"message_id": "<abc@mail.example.com>", "queue_id": "4F2A1C0D3B",
			"sender": "alice@example.com", "recipient": "bob@x.org", "sender_ip": "203.0.113.7",
			"helo": "mail.example.com", "smtp_code": int64(550), "smtp_status": "5.1.1",
			"smtp_response": "550 5.1.1 <bob@x.org>: Recipient address rejected",
			"latency_ms":    812.4, "size_bytes": int64(12345), "spam_score": 3.2, "attempt": int64(1),
			"events": int64(1),
		},
		time.Date(2026, 11, 22, 14, 0, 0, 123456789, time.UTC))}
	testutil.RequireMetricsEqual(t, expected, out.Metrics)
}

func TestDecode(t *testing.T) {
	ev := func(extra string) string { return `{"time":1700000000,"event":"delivered"` + extra + `}` }
	at := time.Unix(1700000000, 0).UTC()
	tests := []struct {
		name    string
		edit    func(*Mapping)
		body    string
		fields  []map[string]any // one per good event
		tags    map[string]string
		times   []time.Time
		reasons []string
		missing int
	}{
		{
			name:   "array of objects",
			body:   "[" + ev(`,"a":"x"`) + "," + ev(`,"a":"y"`) + "]",
			fields: []map[string]any{{"a": "x"}, {"a": "y"}},
			times:  []time.Time{at, at},
		},
		{
			name:    "ndjson with a broken line costs only that line",
			body:    ev(`,"a":"x"`) + "\n{\"time\":\n" + ev(`,"a":"z"`) + "\n",
			fields:  []map[string]any{{"a": "x"}, {"a": "z"}},
			times:   []time.Time{at, at},
			reasons: []string{ReasonMalformed},
		},
		{
			name:    "a broken pretty-printed body is one dead letter, not one per line",
			body:    "{\n  \"event\": \"delivered\",\n  \"time\": 1700000000,\n  \"a\": [1, 2\n}\n",
			reasons: []string{ReasonMalformed},
		},
		{
			name:   "drop_keys naming an object drops its nested keys",
			edit:   func(m *Mapping) { m.DropKeys = []string{"envelope"} },
			body:   ev(`,"envelope":{"from":"alice@example.com","to":{"addr":"bob@x.org"}},"a":"x"`),
			fields: []map[string]any{{"a": "x"}},
			times:  []time.Time{at},
		},
		{
			name:   "tag_keys naming an object makes its scalars tags",
			edit:   func(m *Mapping) { m.TagKeys = []string{"envelope"} },
			body:   ev(`,"envelope":{"sending-ip":"203.0.113.7","mta":{"name":"mx1"}},"a":"x"`),
			fields: []map[string]any{{"a": "x", "event": "delivered"}},
			tags:   map[string]string{"envelope.sending-ip": "203.0.113.7", "envelope.mta.name": "mx1"},
			times:  []time.Time{at},
		},
		{
			// The Mailgun Events API's page shape: events under "items".
			name:   "events_path selects the events",
			edit:   func(m *Mapping) { m.EventsPath = "items"; m.TimeKeys = []string{"timestamp"} },
			body:   `{"items":[{"event":"delivered","timestamp":1521472262.908181,"a":1},{"event":"failed","timestamp":1521472263,"a":2}],"paging":{"next":"x"}}`,
			fields: []map[string]any{{"a": 1.0}, {"a": 2.0}},
			times:  []time.Time{time.Unix(1521472262, 908181000).UTC(), time.Unix(1521472263, 0).UTC()},
		},
		{
			// SparkPost's webhook batch: an array of {"msys":{"<kind>_event":{...}}}.
			name:   "events_path with a glob, in each document of a batch",
			edit:   func(m *Mapping) { m.EventsPath = "msys.*_event"; m.TimeKeys = []string{"timestamp"} },
			body:   `[{"msys":{"message_event":{"type":"delivery","timestamp":"1460989507","a":1}}},{"msys":{"track_event":{"type":"open","timestamp":"1460989508","a":2}}}]`,
			fields: []map[string]any{{"a": 1.0, "type": "delivery"}, {"a": 2.0, "type": "open"}},
			times:  []time.Time{time.Unix(1460989507, 0).UTC(), time.Unix(1460989508, 0).UTC()},
		},
		{
			name:    "nothing at events_path",
			edit:    func(m *Mapping) { m.EventsPath = "items" },
			body:    `{"paging":{}}`,
			reasons: []string{ReasonNoEvents},
		},
		{
			name:   "time_keys: the first present wins, whatever the order in the event",
			edit:   func(m *Mapping) { m.TimeKeys = []string{"timestamp", "ts"} },
			body:   `[{"ts":1700000001,"timestamp":1700000000,"a":1},{"ts":1700000001,"a":2}]`,
			fields: []map[string]any{{"a": 1.0}, {"a": 2.0}},
			times:  []time.Time{time.Unix(1700000000, 0).UTC(), time.Unix(1700000001, 0).UTC()},
		},
		{
			name: "value_maps on a tag and a field",
			edit: func(m *Mapping) {
				m.ValueMaps = map[string]map[string]string{"event": {"Delivery": "delivered"}, "status": {"Bounce": "bounced"}}
			},
			body:   `{"time":1700000000,"event":"Delivery","status":"Bounce","other":"Bounce"}`,
			fields: []map[string]any{{"status": "bounced", "other": "Bounce"}},
			tags:   map[string]string{"event": "delivered"},
			times:  []time.Time{at},
		},
		{
			// Mailgun's user-variables carry arbitrary customer metadata.
			name:   "drop_keys by glob",
			edit:   func(m *Mapping) { m.DropKeys = []string{"user-variables.*"} },
			body:   ev(`,"user-variables":{"my_id":"x","contact":"a@b.org"},"a":1`),
			fields: []map[string]any{{"a": 1.0}},
			times:  []time.Time{at},
		},
		{
			name:   "keep_keys: deny by default, inside objects too",
			edit:   func(m *Mapping) { m.KeepKeys = []string{"a", "mail.destination"} },
			body:   ev(`,"a":1,"meta":"m","mail":{"destination":["x@y.org"],"tags":{"k":"v"}}`),
			fields: []map[string]any{{"a": 1.0, "mail.destination": "x@y.org"}}, // a list of one string is that string
			tags:   map[string]string{"event": "delivered"},
			times:  []time.Time{at},
		},
		{
			// Mandrill POSTs its events as a form field.
			name:   "form_field",
			edit:   func(m *Mapping) { m.FormField = "mandrill_events"; m.TimeKeys = []string{"ts"} },
			body:   "mandrill_events=" + url.QueryEscape(`[{"event":"send","ts":1700000000,"a":1},{"event":"open","ts":1700000001,"a":2}]`),
			fields: []map[string]any{{"a": 1.0}, {"a": 2.0}},
			times:  []time.Time{at, at.Add(time.Second)},
		},
		{
			name:    "form_field missing",
			edit:    func(m *Mapping) { m.FormField = "mandrill_events" },
			body:    "other=1",
			reasons: []string{ReasonMalformedForm},
		},
		{
			// Amazon SES through SNS: the event is a JSON string in "Message".
			name: "json_keys unwraps a string holding JSON",
			edit: func(m *Mapping) {
				m.JSONKeys = []string{"Message"}
				m.EventsPath = "Message"
				m.TimeKeys = []string{"mail.timestamp"}
				m.Rename = map[string]string{"eventType": "event"}
				m.ValueMaps = map[string]map[string]string{"event": {"Delivery": "delivered"}}
			},
			body:   `{"Type":"Notification","MessageId":"m1","Message":"{\"eventType\":\"Delivery\",\"mail\":{\"timestamp\":\"2016-01-27T14:59:38.237Z\",\"destination\":[\"x@y.org\"]},\"delivery\":{\"processingTimeMillis\":546}}"}`,
			fields: []map[string]any{{"mail.destination": "x@y.org", "delivery.processingTimeMillis": 546.0}},
			tags:   map[string]string{"event": "delivered"},
			times:  []time.Time{time.Date(2016, 1, 27, 14, 59, 38, 237000000, time.UTC)},
		},
		{
			name:    "json_keys holding no JSON",
			edit:    func(m *Mapping) { m.JSONKeys = []string{"Message"} },
			body:    `{"time":1700000000,"Message":"not json","a":1}`,
			reasons: []string{ReasonMalformed},
		},
		{
			// Mailgun gives the reply text, not its code and status.
			name: "capture: named groups become typed fields",
			edit: func(m *Mapping) {
				m.Captures = []Capture{{Key: "delivery-status.message", Pattern: `^(?P<smtp_code>\d{3})[ -](?P<smtp_status>\d\.\d{1,3}\.\d{1,3})`}}
			},
			body: ev(`,"delivery-status":{"message":"550 5.1.1 The email account that you tried to reach does not exist"}`),
			fields: []map[string]any{{"delivery-status.message": "550 5.1.1 The email account that you tried to reach does not exist",
				"smtp_code": int64(550), "smtp_status": "5.1.1"}},
			times: []time.Time{at},
		},
		{
			name:    "malformed single line",
			body:    `{"time":1700000000,"event":`,
			reasons: []string{ReasonMalformed},
		},
		{
			name:    "not an object",
			body:    `[1, ` + ev(`,"a":1`) + `]`,
			fields:  []map[string]any{{"a": 1.0}},
			times:   []time.Time{at},
			reasons: []string{ReasonNotObject},
		},
		{
			name:    "no fields",
			body:    ev(""),
			reasons: []string{ReasonNoFields},
		},
		{
			name:    "empty",
			body:    "  \n ",
			reasons: []string{ReasonEmpty},
		},
		{
			name:    "oversized",
			edit:    func(m *Mapping) { m.MaxMessageSize = 64 },
			body:    ev(`,"smtp_response":"` + strings.Repeat("x", 100) + `"`),
			reasons: []string{ReasonOversized},
		},
		{
			name: "nested paths, rename, drop and declared types",
			edit: func(m *Mapping) {
				m.Rename = map[string]string{"envelope.sending-ip": "sender_ip"}
				m.DropKeys = []string{"user-variables.secret"}
				m.FieldTypes = map[string]string{"delivery-status.code": "int", "flag": "bool", "n": "uint"}
			},
			body: ev(`,"envelope":{"sending-ip":"198.51.100.1"},"delivery-status":{"code":"550","message":"no"},` +
				`"user-variables":{"secret":"s"},"flag":"true","n":7,"list":[1,"a"]`),
			fields: []map[string]any{{"sender_ip": "198.51.100.1", "delivery-status.code": int64(550),
				"delivery-status.message": "no", "flag": true, "n": uint64(7), "list": `[1,"a"]`}},
			times: []time.Time{at},
		},
		{
			name:   "auto numbers are floats, nulls are skipped, numeric tags are text",
			edit:   func(m *Mapping) { m.TagKeys = append(m.TagKeys, "shard") },
			body:   ev(`,"x":3,"y":null,"shard":7`),
			fields: []map[string]any{{"x": 3.0}},
			tags:   map[string]string{"event": "delivered", "shard": "7"},
			times:  []time.Time{at},
		},
		{
			name:    "wrong types",
			body:    "[" + ev(`,"smtp_code":"five-fifty"`) + "," + ev(`,"latency_ms":true`) + "," + ev(`,"attempt":1.5`) + "," + ev(`,"event":{"a":1},"b":2`) + "]",
			fields:  []map[string]any{{"b": 2.0}},
			tags:    map[string]string{"event": "delivered", "event.a": "1"},
			times:   []time.Time{at},
			reasons: []string{ReasonWrongType, ReasonWrongType, ReasonWrongType},
		},
		{
			name:    "missing time takes the publish time, plus the event's index in ns, and is counted",
			body:    `[{"event":"delivered","a":"b"},{"event":"delivered","a":"c"}]`,
			fields:  []map[string]any{{"a": "b"}, {"a": "c"}},
			times:   []time.Time{receivedAt, receivedAt.Add(1)},
			missing: 2,
		},
		{
			name:    "missing time can be dead-lettered",
			edit:    func(m *Mapping) { m.MissingTime = "dead_letter" },
			body:    `{"event":"delivered","a":"b"}`,
			reasons: []string{ReasonMissingTime},
		},
		{
			name:    "bad time",
			body:    `[{"time":"yesterday","a":1},{"time":true,"a":1},{"time":-5.5,"a":1}]`,
			reasons: []string{ReasonBadTime, ReasonBadTime, ReasonBadTime},
		},
		{
			name:   "invalid UTF-8 is repaired, not lost",
			body:   ev(`,"smtp_response":"caf` + "\xe9" + `"`),
			fields: []map[string]any{{"smtp_response": "caf\uFFFD"}},
			times:  []time.Time{at},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := newDecoder(t, tt.edit)
			out := d.Decode(NewScratch(), []byte(tt.body), receivedAt)
			var reasons []string
			for _, b := range out.Bad {
				reasons = append(reasons, b.reason)
				require.Error(t, b.err)
				require.NotEmpty(t, b.raw)
			}
			require.Equal(t, tt.reasons, reasons)
			require.Equal(t, tt.missing, out.MissingTime)
			require.Len(t, out.Metrics, len(tt.fields))
			for i, m := range out.Metrics {
				require.Equal(t, "mail_event", m.Name())
				require.Equal(t, tt.fields[i], ownFields(t, m))
				require.Equal(t, tt.times[i], m.Time().UTC())
				if tt.tags != nil {
					require.Equal(t, tt.tags, m.Tags())
				}
			}
		})
	}
}

func TestDecodeTimeFormats(t *testing.T) {
	ns := time.Date(2026, 11, 22, 14, 0, 0, 123456789, time.UTC)
	tests := []struct {
		format string
		value  string
		want   time.Time
	}{
		{"auto", `"2026-11-22T14:00:00.123456789Z"`, ns},
		{"auto", `"2026-11-22T15:00:00.123456789+01:00"`, ns},
		{"auto", `1795356000`, time.Unix(1795356000, 0)},
		{"auto", `1795356000.5`, time.Unix(1795356000, 5e8)},
		// Decimal seconds are parsed exactly, not through float64 (which
		// makes 1521472262.908181 ...908180992 ns).
		{"auto", `1521472262.908181`, time.Unix(1521472262, 908181000)},
		{"auto", `"1521472262.908181123"`, time.Unix(1521472262, 908181123)},
		{"unix_ms", `1521472262908.181123`, time.Unix(1521472262, 908181123)},
		{"auto", `1.7e9`, time.Unix(1700000000, 0)},
		{"auto", `1795356000123`, time.UnixMilli(1795356000123)},
		{"auto", `1795356000123456`, time.UnixMicro(1795356000123456)},
		{"auto", `1795356000123456789`, time.Unix(0, 1795356000123456789)},
		{"auto", `"1795356000123456789"`, time.Unix(0, 1795356000123456789)},
		{"unix_ms", `5`, time.UnixMilli(5)},
		{"unix_us", `5`, time.UnixMicro(5)},
		{"unix_ns", `5`, time.Unix(0, 5)},
		{"unix", `1795356000`, time.Unix(1795356000, 0)},
		{"rfc3339", `"2026-11-22T14:00:00Z"`, ns.Truncate(time.Second)},
		{"2006-01-02 15:04:05.000", `"2026-11-22 14:00:00.123"`, ns.Truncate(time.Millisecond)},
	}
	for _, tt := range tests {
		t.Run(tt.format+" "+tt.value, func(t *testing.T) {
			d := newDecoder(t, func(m *Mapping) { m.TimeFormat = tt.format })
			out := d.Decode(NewScratch(), []byte(`{"time":`+tt.value+`,"a":1}`), receivedAt)
			require.Empty(t, out.Bad)
			require.Len(t, out.Metrics, 1)
			require.Equal(t, tt.want.UnixNano(), out.Metrics[0].Time().UnixNano())
		})
	}
}

// TestDecodeGenerated checks every kind mailtick gen produces lands where the
// README says it does.
func TestDecodeGenerated(t *testing.T) {
	g, err := gen.New(gen.Config{Seed: 7, Bad: 0.3})
	require.NoError(t, err)
	d := newDecoder(t, nil)
	sc := NewScratch()
	want := map[gen.Kind]string{
		gen.Malformed: ReasonMalformed, gen.WrongType: ReasonWrongType, gen.Oversized: ReasonOversized,
	}
	seen := map[gen.Kind]int{}
	for i := 0; i < 2000; i++ {
		msg := g.Next()
		seen[msg.Kind]++
		out := decodeDetached(t, d, sc, msg.Body)
		switch msg.Kind {
		case gen.Good, gen.MissingTime:
			require.Empty(t, out.Bad, "message %d", i)
			require.Len(t, out.Metrics, 1)
			m := out.Metrics[0]
			require.Equal(t, msg.Event.Sender, m.Fields()["sender"])
			require.Equal(t, msg.Event.SMTPResponse, m.Fields()["smtp_response"])
			require.Equal(t, int64(msg.Event.SMTPCode), m.Fields()["smtp_code"])
			if msg.Kind == gen.Good {
				require.Equal(t, msg.Time.UnixNano(), m.Time().UnixNano())
			} else {
				require.Equal(t, 1, out.MissingTime)
			}
		default:
			require.Empty(t, out.Metrics, "message %d (%s)", i, msg.Kind)
			require.Len(t, out.Bad, 1)
			require.Equal(t, want[msg.Kind], out.Bad[0].reason)
		}
	}
	for _, k := range append(gen.BadKinds, gen.Good) {
		require.Positive(t, seen[k], "kind %s never generated", k)
	}
}

// decodeDetached decodes a copy of body and then overwrites the copy, and
// the scratch space by decoding the overwritten copy: inputs.mailevents
// hands the body's buffer on to the next message once it is decoded, and
// the scratch space to the worker's next message, so no metric may point
// into either.
func decodeDetached(t *testing.T, d *Decoder, sc *Scratch, body []byte) Decoded {
	t.Helper()
	data := bytes.Clone(body)
	out := d.Decode(sc, data, receivedAt)
	rendered := func() string {
		var b strings.Builder
		for _, m := range out.Metrics {
			b.WriteString(render(m))
		}
		return b.String()
	}
	before := rendered()
	for i := range data {
		data[i] = 'X'
	}
	d.Decode(sc, data, receivedAt)
	require.Equal(t, before, rendered(), "a metric points into the message body or the scratch space")
	return out
}

func FuzzDecode(f *testing.F) {
	f.Add([]byte(fullEvent))
	f.Add([]byte(`[{"time":1}, 2, {"a":{"b":[1]}}]`))
	f.Add([]byte("{\"time\":\"x\"}\n{\"a\":1}\n\xff"))
	f.Add([]byte(`[{"msys":{"message_event":{"type":"delivery","timestamp":"1460989507"}}}]`))
	f.Add([]byte(`{"items":[{"event":"failed","timestamp":1521472262.908181}]}`))
	f.Add([]byte(`mandrill_events=%5B%7B%22ts%22%3A1%7D%5D`))
	f.Add([]byte(`{"time":1,"text":"550 5.1.1 no"}`))
	f.Add([]byte(`{"Message":"{\"a\":{\"b_event\":{\"type\":\"delivery\"}}}"}`))
	plain := newDecoder(f, func(m *Mapping) {
		m.FieldTypes = map[string]string{"a": "int", "b.c": "uint", "d": "bool", "e": "string"}
	})
	// The mapping options that select, order and translate.
	mapped := newDecoder(f, func(m *Mapping) {
		m.EventsPath = "*.*_event"
		m.TimeKeys = []string{"timestamp", "time", "ts"}
		m.ValueMaps = map[string]map[string]string{"event": {"failed": "bounced"}, "type": {"delivery": "delivered"}}
		m.DropKeys = []string{"user-variables.*"}
		m.KeepKeys = []string{"type", "a*", "mail.*"}
		m.JSONKeys = []string{"Message", "x.y"}
		m.Captures = []Capture{{Key: "text", Pattern: `(?P<smtp_code>\d{3}) (?P<smtp_status>\d\.\d\.\d)`}}
		m.ValueRules = []ValueRule{{Key: "event", When: map[string]string{"event": "failed", "severity": "temporary"}, Value: "deferred"}}
		m.Explode = []string{"a.list", "b"}
		m.Rename = map[string]string{"c[1]": "x", "tags[0]": "customer", "b.addr": "recipient"}
		m.TimeFill = "event_hash"
	})
	form := newDecoder(f, func(m *Mapping) { m.FormField = "mandrill_events" })
	decoders := []*Decoder{plain, mapped, form}
	for _, name := range PresetNames() {
		decoders = append(decoders, newDecoder(f, func(m *Mapping) { m.Preset = name }))
		bodies, err := providertest.Bodies(name)
		require.NoError(f, err)
		for _, b := range bodies {
			f.Add(b.Data)
		}
	}
	f.Add([]byte(`{"time":1,"b":[{"addr":"x@y.org"},"z",7,[1]],"c":[1,2],"tags":["t"]}`))
	sc := NewScratch()
	f.Fuzz(func(t *testing.T, body []byte) {
		for _, d := range decoders {
			out := d.Decode(sc, body, receivedAt)
			for _, b := range out.Bad {
				if b.err == nil || b.reason == "" {
					t.Fatalf("bad event without reason: %+v", b)
				}
			}
			if len(out.Metrics) == 0 && len(out.Bad) == 0 && len(strings.TrimSpace(string(body))) > 0 {
				t.Fatalf("message %q vanished: neither metric nor dead letter", body)
			}
		}
	})
}

// Mailgun reports a temporary and a permanent failure both as "failed",
// with a severity: value rules make them deferred and bounced.
func TestValueRules(t *testing.T) {
	d := newDecoder(t, func(m *Mapping) {
		m.TimeKeys = []string{"timestamp"}
		m.ValueRules = []ValueRule{
			{Key: "event", When: map[string]string{"event": "failed", "severity": "temporary"}, Value: "deferred"},
			{Key: "event", When: map[string]string{"event": "failed", "severity": "permanent"}, Value: "bounced"},
			{Key: "note", When: map[string]string{"severity": "permanent"}, Value: "hard"},
		}
	})
	out := d.Decode(NewScratch(), []byte(`[{"event":"failed","severity":"temporary","timestamp":1,"a":1},
		{"event":"failed","severity":"permanent","timestamp":2,"a":2},{"event":"delivered","timestamp":3,"a":3}]`), receivedAt)
	require.Empty(t, out.Bad)
	var events, notes []string
	for _, m := range out.Metrics {
		ev, _ := m.GetTag("event")
		events = append(events, ev)
		note, _ := m.GetField("note")
		notes = append(notes, fmt.Sprint(note))
	}
	require.Equal(t, []string{"deferred", "bounced", "delivered"}, events, "a tag stays a tag")
	require.Equal(t, []string{"<nil>", "hard", "<nil>"}, notes, "a key that is no tag becomes a string field")

	m := DefaultMapping()
	m.ValueRules = []ValueRule{{When: map[string]string{"event": "failed"}, Value: "x"}}
	_, err := m.NewDecoder()
	require.ErrorContains(t, err, `value_rule 1: "key" must be set`)

	// A rule without "when" always holds; "when" compares fields that are
	// no strings by their text.
	d = newDecoder(t, func(m *Mapping) {
		m.ValueRules = []ValueRule{
			{Key: "mailer", Value: "mailgun"},
			{Key: "event", When: map[string]string{"suppress": "false"}, Value: "resubscribed"},
		}
	})
	out = d.Decode(NewScratch(), []byte(`[{"event":"unsubscribed","suppress":false,"time":1},{"event":"unsubscribed","suppress":true,"time":2}]`), receivedAt)
	require.Empty(t, out.Bad)
	require.Len(t, out.Metrics, 2)
	for i, want := range []string{"resubscribed", "unsubscribed"} {
		ev, _ := out.Metrics[i].GetTag("event")
		mailer, _ := out.Metrics[i].GetTag("mailer")
		require.Equal(t, want, ev)
		require.Equal(t, "mailgun", mailer)
	}
}

// SES reports one bounce for several recipients: explode makes one metric
// per recipient, each with the parent's keys, and a time of its own so
// that InfluxDB keeps both.
func TestExplode(t *testing.T) {
	d := newDecoder(t, func(m *Mapping) {
		m.Explode = []string{"bounce.recipients", "delivery.recipients"}
		m.TimeKeys = []string{"ts"}
		m.Rename = map[string]string{
			"bounce.recipients.addr": "recipient", "delivery.recipients": "recipient",
			"to[1]": "second", "tags[0]": "customer",
		}
	})
	body := `[{"event":"bounced","ts":1700000000,"id":"m1","bounce":{"type":"hard","recipients":[{"addr":"a@x.org","status":"5.1.1"},{"addr":"b@x.org"}]}},
		{"event":"delivered","ts":1700000001,"id":"m2","delivery":{"recipients":["c@x.org"]},"to":["p@x.org","q@x.org"],"tags":["c42","other"]},
		{"event":"delivered","ts":1700000002,"id":"m3","delivery":{"recipients":[]}}]`
	out := d.Decode(NewScratch(), []byte(body), receivedAt)
	require.Empty(t, out.Bad)
	require.Equal(t, 4, out.Events)
	at := time.Unix(1700000000, 0).UTC()
	expected := []telegraf.Metric{
		metric.New("mail_event", map[string]string{"event": "bounced"},
			map[string]any{"id": "m1", "bounce.type": "hard", "recipient": "a@x.org", "bounce.recipients.status": "5.1.1", "events": int64(1)}, at),
		metric.New("mail_event", map[string]string{"event": "bounced"},
			map[string]any{"id": "m1", "bounce.type": "hard", "recipient": "b@x.org", "events": int64(1)}, at.Add(1)),
		metric.New("mail_event", map[string]string{"event": "delivered", "customer": "c42"},
			map[string]any{"id": "m2", "recipient": "c@x.org", "second": "q@x.org", "to": `["p@x.org","q@x.org"]`, "tags": `["c42","other"]`, "events": int64(1)}, at.Add(time.Second)),
		metric.New("mail_event", map[string]string{"event": "delivered"},
			map[string]any{"id": "m3", "events": int64(1)}, at.Add(2*time.Second)),
	}
	testutil.RequireMetricsEqual(t, expected, out.Metrics)
}

// Providers that give whole seconds: two events of one series in one
// second must not overwrite each other. time_fill = "event_hash" fills the
// nanoseconds below the given precision from the event's text, so each
// event lands on a point of its own, and a redelivered event on the same.
func TestTimeFill(t *testing.T) {
	d := newDecoder(t, func(m *Mapping) { m.TimeKeys = []string{"ts"}; m.TimeFill = "event_hash" })
	body := `[{"event":"delivered","ts":1700000000,"id":"a"},{"event":"delivered","ts":1700000000,"id":"b"},
		{"event":"delivered","ts":1700000000.123,"id":"c"},{"event":"delivered","ts":"1700000000.123456789","id":"d"}]`
	first := d.Decode(NewScratch(), []byte(body), receivedAt)
	again := d.Decode(NewScratch(), []byte(body), receivedAt.Add(time.Hour))
	require.Empty(t, first.Bad)
	require.Len(t, first.Metrics, 4)
	ts := func(out Decoded) (times []time.Time) {
		for _, m := range out.Metrics {
			times = append(times, m.Time())
		}
		return times
	}
	times := ts(first)
	require.Equal(t, times, ts(again), "the same events land on the same points")
	require.NotEqual(t, times[0], times[1], "two events of one second are two points")
	for i, m := range first.Metrics {
		require.Equal(t, int64(1700000000), m.Time().Unix(), "the second stays")
		if i == 2 {
			require.Equal(t, 123, m.Time().Nanosecond()/1e6, "given milliseconds stay")
		}
	}
	require.Equal(t, 123456789, times[3].Nanosecond(), "a full-precision time is kept as it is")

	_, err := (&Mapping{Measurement: "m", TimeKey: "t", TimeFormat: "auto", MissingTime: "publish_time", TimeFill: "random"}).NewDecoder()
	require.ErrorContains(t, err, `invalid "time_fill" value "random": want "none" or "event_hash"`)
}
