package piiscrub

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
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
	return configured(t, sampleConfig)
}

// configured is piiscrub as Telegraf makes it of one [[processors.piiscrub]]
// table (the registered defaults, then the table's settings), with a test
// key, started.
func configured(t testing.TB, table string) *PIIScrub {
	t.Helper()
	t.Setenv("MAILTICK_PII_KEY", testKey)
	t.Setenv("MAILTICK_PII_KEY_ID", "2026-11")
	c := config.NewConfig()
	require.NoError(t, c.LoadConfigData([]byte(table), "piiscrub.conf"))
	require.Len(t, c.Processors, 1)
	p, ok := c.Processors[0].Processor.(*PIIScrub)
	require.True(t, ok, "%T", c.Processors[0].Processor)
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
	compare(b, events, centralConfig, stockRegex)
	b.Run("floor_no_search", func(b *testing.B) {
		p := centralConfig(b)
		applyAll(b, events, p.floor)
	})
}

// floor is what sample.conf's rules cost inside Telegraf if finding
// addresses cost nothing: every key's rule found, Go's HMAC of each value
// to hash as it is (no check, no canonical form), the IPv4 fast path, the
// texts to redact left as they are (no search, no rescan, nothing
// written), the new values stored as apply stores them, the dropped
// fields removed, and no counters. It is the part of
// BenchmarkScrub/piiscrub that no faster search could take away; it is
// not a scrubber.
func (p *PIIScrub) floor(m telegraf.Metric) {
	p.buf = p.buf[:0]
	p.edits = p.edits[:0]
	var dropBuf [16]string
	drop := dropBuf[:0]
	var c counts
	pos := 0
	for _, t := range m.TagList() {
		p.rule(pos, t.Key) // the event's tags are all kept
		pos++
	}
	for _, f := range m.FieldList() {
		r := p.rule(pos, f.Key)
		pos++
		s, _ := f.Value.(string)
		start := len(p.buf)
		switch r.act {
		case actKeep, actRedact:
			continue
		case actDrop:
			drop = append(drop, f.Key)
			continue
		case actHash:
			p.in = append(p.in[:0], s...)
			p.buf = p.pseudonymOf(p.buf, p.in)
		case actIPPrefix:
			p.ipPrefix(r, s, &c)
		}
		p.edits = append(p.edits, edit{field: f, start: start, end: len(p.buf)})
	}
	all := p.slab.String(p.buf)
	for _, e := range p.edits {
		e.field.Value = p.slab.Box(all[e.start:e.end])
	}
	for _, k := range drop {
		m.RemoveField(k)
	}
}

// compare runs the metrics through piiscrub configured by scrub, and
// through stock processors.regex configured by the TOML stock, in the
// same run.
func compare(b *testing.B, metrics []telegraf.Metric, scrub func(testing.TB) *PIIScrub, stock string) {
	b.Run("piiscrub", func(b *testing.B) {
		p := scrub(b)
		applyAll(b, metrics, p.apply)
	})
	b.Run("stock_regex", func(b *testing.B) {
		var r regex.Regex
		require.NoError(b, toml.Unmarshal([]byte(stock), &r))
		r.Log = testutil.Logger{}
		require.NoError(b, r.Init())
		applyAll(b, metrics, func(m telegraf.Metric) { r.Apply(m) })
	})
}

// applyAll times apply over b.N copies of the metrics. The processors
// change metrics in place: copies are made, untimed, a batch at a time;
// batches are large, so that stopping the timer (which reads the memory
// statistics) costs little per metric.
func applyAll(b *testing.B, metrics []telegraf.Metric, apply func(telegraf.Metric)) {
	b.ReportAllocs()
	batch := make([]telegraf.Metric, 16*len(metrics))
	for i := 0; i < b.N; {
		b.StopTimer()
		for j := range batch {
			batch[j] = metrics[j%len(metrics)].Copy()
		}
		b.StartTimer()
		for j := 0; j < len(batch) && i < b.N; j, i = j+1, i+1 {
			apply(batch[j])
		}
	}
}

// shippedConfig is the [[processors.piiscrub]] table of the repository's
// telegraf.conf, the rules the agent applies to what leaves the DC.
func shippedConfig(t testing.TB) *PIIScrub {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("..", "..", "..", "telegraf.conf"))
	require.NoError(t, err)
	conf := string(data)
	start := strings.Index(conf, "[[processors.piiscrub]]")
	require.GreaterOrEqual(t, start, 0, "telegraf.conf has no [[processors.piiscrub]]")
	end := strings.Index(conf[start:], "\n####")
	require.Positive(t, end, "the piiscrub table of telegraf.conf has no end")
	return configured(t, conf[start:start+end])
}

// BenchmarkScrubShipped: a rollup that names a sender (mail_spam, one
// sender's minute, as mail_spam.tick writes it) through the shipped
// telegraf.conf's rules (the sender hashed, the rest kept), and through
// stock processors.regex replacing the sender by a placeholder (it cannot
// hash), in the same run.
func BenchmarkScrubShipped(b *testing.B) {
	var rollups []telegraf.Metric
	for i := range 256 {
		m := metric.New("mail_spam", map[string]string{"dc": "dc1", "sender": fmt.Sprintf("sender%d@example%d.org", i, i%97)}, nil, at)
		// In one order, as line protocol from Kapacitor brings them.
		m.AddField("distinct_helos", int64(1+i%3))
		m.AddField("distinct_recipients", int64(3+i%50))
		m.AddField("volume", int64(5+i%70))
		rollups = append(rollups, m)
	}
	compare(b, rollups, shippedConfig, `
[[tags]]
  key = "sender"
  pattern = "[A-Za-z0-9.!#$%&'*+/=?^_{|}~-]+@[A-Za-z0-9-]+(?:\\.[A-Za-z0-9-]+)+"
  replacement = "[email]"
`)
}
