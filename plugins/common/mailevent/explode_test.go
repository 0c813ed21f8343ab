package mailevent

import (
	"bytes"
	"fmt"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/valyala/fastjson"

	"github.com/mailtick/mailtick/plugins/common/eventtime"
)

// allocated is what f allocates, in bytes.
func allocated(f func()) uint64 {
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	f()
	runtime.ReadMemStats(&after)
	return after.TotalAlloc - before.TotalAlloc
}

// An event's list is exploded at the cost of what it yields: the event's
// keys are mapped, and its JSON rendered and hashed for time_fill, once,
// not once per element. Before, an SES record naming 125,000 recipients
// in 500 KB took minutes of a core and allocated some 300 GB.
func TestExplodeCost(t *testing.T) {
	const n = 125_000
	body := sesDelivery(n)
	require.Less(t, len(body), 512*1024, "under the default max_message_size")

	// By default: one dead letter, for little more than the parse.
	var out Decoded
	d := sesExplode(t, 0)
	used := allocated(func() { out = d.Decode(NewScratch(), body, receivedAt) })
	require.Empty(t, out.Metrics)
	require.Len(t, out.Bad, 1)
	require.Equal(t, 1, out.Events)
	require.Equal(t, ReasonOversized, out.Bad[0].Reason())
	require.EqualError(t, out.Bad[0].Err(), `list "delivery.recipients" of 125000 elements exceeds max_exploded 1000`)
	// Most of it is the parse (fastjson: some 400 bytes per value).
	require.Less(t, used, uint64(128<<20), "refused for %d bytes", used)

	// Allowed: one metric per recipient, for a bounded cost each (some
	// 1.7 KB, the parse included).
	d = sesExplode(t, n)
	used = allocated(func() { out = d.Decode(NewScratch(), body, receivedAt) })
	require.Empty(t, out.Bad)
	require.Len(t, out.Metrics, n)
	require.Less(t, used/n, uint64(4096), "%d bytes per element", used/n)

	// The times are those the event's hash gave each element before.
	v, err := fastjson.ParseBytes(body)
	require.NoError(t, err)
	text := v.MarshalTo(nil)
	at := time.Date(2016, 10, 19, 23, 21, 4, 133e6, time.UTC)
	for _, i := range []int{0, 1, 25, n - 1} {
		m := out.Metrics[i]
		require.Equal(t, eventtime.Fill(at, text, i), m.Time(), "element %d", i)
		rcpt, _ := m.GetField("recipient")
		require.Equal(t, string(rune('a'+i%26)), rcpt)
	}
}

// Each element's metric repeats the event's tags and fields: what one
// body explodes into is bounded by their product: 100 times max_exploded
// tags and fields, whatever the elements of each list.
func TestExplodeProduct(t *testing.T) {
	// 20,000 keys and a list of 20,000 elements in 250 KB: 400 million
	// fields (17 GiB of heap, before).
	var b strings.Builder
	b.WriteString(`{"time":1700000000,"to":[`)
	for i := range 20_000 {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString("1")
	}
	b.WriteString("]")
	for i := range 20_000 {
		fmt.Fprintf(&b, `,"%x":1`, i)
	}
	b.WriteString("}")
	d := newDecoder(t, func(m *Mapping) { m.Explode = []string{"to"}; m.MaxExploded = 20_000 })
	var out Decoded
	used := allocated(func() { out = d.Decode(NewScratch(), []byte(b.String()), receivedAt) })
	require.Empty(t, out.Metrics)
	require.Len(t, out.Bad, 1)
	require.Equal(t, ReasonOversized, out.Bad[0].Reason())
	require.EqualError(t, out.Bad[0].Err(), `list "to": 20000 elements times 20001 tags and fields exceeds the 2000000 left of the 2000000 (100 times max_exploded 20000) one body may explode into`)
	require.Less(t, used, uint64(64<<20), "refused for %d bytes", used)

	// The bound is the body's: each event below, of one tag and a list
	// of 10, costs 10 times 2 (events=1 too) of the 1,000 that
	// max_exploded = 10 allows; the 51st and after are refused, the 50
	// before kept.
	d = newDecoder(t, func(m *Mapping) { m.Explode = []string{"to"}; m.MaxExploded = 10 })
	var body strings.Builder
	for i := range 60 {
		fmt.Fprintf(&body, "{\"time\":%d,\"event\":\"sent\",\"to\":[1,2,3,4,5,6,7,8,9,10]}\n", 1700000000+i)
	}
	out = d.Decode(NewScratch(), []byte(body.String()), receivedAt)
	require.Len(t, out.Metrics, 500)
	require.Len(t, out.Bad, 10)
	require.Equal(t, 510, out.Events)
	require.Equal(t, `{"time":1700000050,"event":"sent","to":[1,2,3,4,5,6,7,8,9,10]}`, string(out.Bad[0].Raw()))
	require.EqualError(t, out.Bad[0].Err(), `list "to": 10 elements times 2 tags and fields exceeds the 0 left of the 1000 (100 times max_exploded 10) one body may explode into`)
	// A list longer than max_exploded, alone.
	out = d.Decode(NewScratch(), []byte(`{"time":1,"event":"sent","to":[1,2,3,4,5,6,7,8,9,10,11]}`), receivedAt)
	require.Empty(t, out.Metrics)
	require.EqualError(t, out.Bad[0].Err(), `list "to" of 11 elements exceeds max_exploded 10`)

	m := DefaultMapping()
	m.MaxExploded = -1
	_, err := m.NewDecoder()
	require.EqualError(t, err, `invalid "max_exploded" value -1: must not be negative (0: 1000)`)
}

// sesDelivery is an SES Delivery record (the provider's published sample)
// naming n recipients, each one letter: 125,000 of them fit in a 500 KB
// body, under the default max_message_size.
func sesDelivery(n int) []byte {
	var b bytes.Buffer
	b.WriteString(`{"eventType":"Delivery","mail":{"timestamp":"2016-10-19T23:20:52.240Z","source":"sender@example.com",` +
		`"sourceArn":"arn:aws:ses:us-east-1:123456789012:identity/sender@example.com","sendingAccountId":"123456789012",` +
		`"messageId":"EXAMPLE7c191be45-e9aedb9a-02f9-4d12-a87d-dd0099a07f8a-000000","destination":["recipient@example.com"],` +
		`"headersTruncated":false,"commonHeaders":{"from":["sender@example.com"],"to":["recipient@example.com"],` +
		`"subject":"Message sent from Amazon SES"},"tags":{"ses:configuration-set":["ConfigSet"],"ses:source-ip":["192.0.2.0"]}},` +
		`"delivery":{"timestamp":"2016-10-19T23:21:04.133Z","processingTimeMillis":11893,` +
		`"smtpResponse":"250 2.6.0 Message received","reportingMTA":"mta.example.com","recipients":[`)
	for i := range n {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(`"` + string(rune('a'+i%26)) + `"`)
	}
	b.WriteString(`]}}`)
	return b.Bytes()
}

// sesExplode is the ses preset with max_exploded at n.
func sesExplode(t testing.TB, n int) *Decoder {
	return newDecoder(t, func(m *Mapping) {
		m.Preset = "ses"
		m.MaxExploded = n
	})
}

// BenchmarkExplode decodes one SES Delivery record naming n recipients
// (one metric each, time_fill = "event_hash"): the cost per body should
// grow with n, not with its square.
func BenchmarkExplode(b *testing.B) {
	for _, n := range []int{100, 10_000, 100_000} {
		b.Run(fmt.Sprintf("elements=%d", n), func(b *testing.B) {
			d, body, sc := sesExplode(b, n), sesDelivery(n), NewScratch()
			b.SetBytes(int64(len(body)))
			b.ReportAllocs()
			for b.Loop() {
				if out := d.Decode(sc, body, receivedAt); len(out.Metrics) != n || len(out.Bad) != 0 {
					b.Fatal(len(out.Metrics), out.Bad)
				}
			}
		})
	}
}
