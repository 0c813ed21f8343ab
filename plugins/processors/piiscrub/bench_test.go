package piiscrub

import (
	"testing"

	"github.com/influxdata/telegraf"
	"github.com/influxdata/telegraf/config"
	"github.com/influxdata/telegraf/metric"
	"github.com/influxdata/telegraf/plugins/processors/regex"
	"github.com/influxdata/telegraf/testutil"
	"github.com/influxdata/toml"
	"github.com/stretchr/testify/require"

	"github.com/mailtick/mailtick/internal/gen"
)

// eventMetric is a generated event as inputs.mailevents emits it: its
// keys in the same order for every event (the decoder adds them in the
// order of the mapping), not in a map's random order.
func eventMetric(ev gen.Event) telegraf.Metric {
	m := metric.New("mail_event",
		map[string]string{"dc": "dc1", "direction": ev.Direction, "event": ev.Event, "mailer": ev.Mailer, "customer": ev.Customer},
		nil, at)
	for _, f := range []struct {
		key   string
		value any
	}{
		{"message_id", ev.MessageID}, {"queue_id", ev.QueueID}, {"sender", ev.Sender}, {"recipient", ev.Recipient},
		{"sender_ip", ev.SenderIP}, {"helo", ev.Helo}, {"smtp_code", int64(ev.SMTPCode)}, {"smtp_status", ev.SMTPStatus},
		{"smtp_response", ev.SMTPResponse}, {"latency_ms", ev.LatencyMs}, {"size_bytes", int64(ev.SizeBytes)},
		{"spam_score", ev.SpamScore}, {"attempt", int64(ev.Attempt)},
	} {
		m.AddField(f.key, f.value)
	}
	return m
}

// centralConfig is sample.conf: the recommended rules for the central path.
func centralConfig(t testing.TB) *PIIScrub {
	t.Helper()
	var wrap struct {
		Processors struct {
			PIIScrub []*PIIScrub `toml:"piiscrub"`
		} `toml:"processors"`
	}
	require.NoError(t, toml.Unmarshal([]byte(sampleConfig), &wrap))
	p := wrap.Processors.PIIScrub[0]
	p.Default, p.HashKeyIDTag, p.HashLength, p.MaxRedactBytes = "drop", "pii_key_id", 12, config.Size(64*1024)
	p.HashKey = config.NewSecret([]byte(testKey))
	p.Log = testutil.Logger{}
	require.NoError(t, p.Init())
	require.NoError(t, p.Start(nil))
	return p
}

// stockRegex does the same redaction with Telegraf's processors.regex.
const stockRegex = `
[[fields]]
  key = "sender"
  pattern = "[A-Za-z0-9.!#$%&'*+/=?^_{|}~-]+@[A-Za-z0-9-]+(?:\\.[A-Za-z0-9-]+)+"
  replacement = "[email]"
[[fields]]
  key = "recipient"
  pattern = "[A-Za-z0-9.!#$%&'*+/=?^_{|}~-]+@[A-Za-z0-9-]+(?:\\.[A-Za-z0-9-]+)+"
  replacement = "[email]"
[[fields]]
  key = "message_id"
  pattern = "[A-Za-z0-9.!#$%&'*+/=?^_{|}~-]+@[A-Za-z0-9-]+(?:\\.[A-Za-z0-9-]+)+"
  replacement = "[email]"
[[fields]]
  key = "sender_ip"
  pattern = "^(\\d+\\.\\d+\\.\\d+)\\.\\d+$"
  replacement = "${1}.0/24"
[[fields]]
  key = "smtp_response"
  pattern = "[A-Za-z0-9.!#$%&'*+/=?^_{|}~-]+@[A-Za-z0-9-]+(?:\\.[A-Za-z0-9-]+)+"
  replacement = "[email]"
[[fields]]
  key = "smtp_response"
  pattern = "\\b(?:(?:25[0-5]|2[0-4]\\d|1?\\d?\\d)\\.){3}(?:25[0-5]|2[0-4]\\d|1?\\d?\\d)\\b"
  replacement = "[ipv4]"
[[fields]]
  key = "smtp_response"
  pattern = "[0-9A-Fa-f]{0,4}(?::[0-9A-Fa-f]{0,4}){2,7}"
  replacement = "[ipv6]"
[[fields]]
  key = "helo"
  pattern = "[A-Za-z0-9.!#$%&'*+/=?^_{|}~-]+@[A-Za-z0-9-]+(?:\\.[A-Za-z0-9-]+)+"
  replacement = "[email]"
`

// BenchmarkScrub: one typical event (13 fields, 4 PII keys and a free-text
// reply) through piiscrub's recommended central config, and through stock
// processors.regex doing the same redaction, in the same run.
func BenchmarkScrub(b *testing.B) {
	g, err := gen.New(gen.Config{Seed: 5})
	require.NoError(b, err)
	var events []telegraf.Metric
	for range 256 {
		msg := g.Next()
		for msg.Event.Event == "delivered" { // a reply that quotes addresses
			msg = g.Next()
		}
		events = append(events, eventMetric(msg.Event))
	}
	// The processors change metrics in place: copies are made, untimed, a
	// batch at a time; batches are large, so that stopping the timer (which
	// reads the memory statistics) costs little per metric.
	run := func(b *testing.B, apply func(telegraf.Metric)) {
		b.ReportAllocs()
		batch := make([]telegraf.Metric, 16*len(events))
		for i := 0; i < b.N; {
			b.StopTimer()
			for j := range batch {
				batch[j] = events[j%len(events)].Copy()
			}
			b.StartTimer()
			for j := 0; j < len(batch) && i < b.N; j, i = j+1, i+1 {
				apply(batch[j])
			}
		}
	}
	b.Run("piiscrub", func(b *testing.B) {
		p := centralConfig(b)
		run(b, p.apply)
	})
	b.Run("stock_regex", func(b *testing.B) {
		var r regex.Regex
		require.NoError(b, toml.Unmarshal([]byte(stockRegex), &r))
		r.Log = testutil.Logger{}
		require.NoError(b, r.Init())
		run(b, func(m telegraf.Metric) { r.Apply(m) })
	})
}
