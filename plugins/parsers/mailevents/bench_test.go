package mailevents

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/influxdata/telegraf"
	"github.com/influxdata/telegraf/metric"
	"github.com/influxdata/telegraf/plugins/parsers/json_v2"
	"github.com/influxdata/toml"
	"github.com/stretchr/testify/require"

	"github.com/mailtick/mailtick/internal/dev/bench"
	"github.com/mailtick/mailtick/internal/gen"
	"github.com/mailtick/mailtick/internal/testutil/providertest"
	"github.com/mailtick/mailtick/plugins/common/keyset"
	"github.com/mailtick/mailtick/plugins/common/mailevent"
)

// newDecoder returns the decoder of the default mapping.
func newDecoder(t testing.TB) *mailevent.Decoder {
	t.Helper()
	m := mailevent.DefaultMapping()
	d, err := m.NewDecoder()
	require.NoError(t, err)
	return d
}

func benchBodies(b *testing.B, n int) [][]byte {
	g, err := gen.New(gen.Config{Seed: 1})
	require.NoError(b, err)
	bodies := make([][]byte, n)
	for i := range bodies {
		bodies[i] = g.Next().Body
	}
	return bodies
}

// decodeStdlib is the floor to compare with: encoding/json
// into a map, then a metric.
func decodeStdlib(body []byte, tags map[string]bool) (telegraf.Metric, error) {
	var ev map[string]any
	if err := json.Unmarshal(body, &ev); err != nil {
		return nil, err
	}
	tm, err := time.Parse(time.RFC3339Nano, ev["time"].(string))
	if err != nil {
		return nil, err
	}
	m := metric.New("mail_event", nil, nil, tm)
	for k, v := range ev {
		if k == "time" {
			continue
		}
		if tags[k] {
			m.AddTag(k, v.(string))
			continue
		}
		m.AddField(k, v)
	}
	return m, nil
}

// BenchmarkParse turns generated docs/DESIGN.md events into metrics: mailevents'
// decoder (the flat reader; fastjson for the rest), encoding/json as the floor, and the stock path
// (Telegraf's json_v2 parser configured to keep the same keys and types).
func BenchmarkParse(b *testing.B) {
	bodies := benchBodies(b, 1024)
	now := time.Now()

	b.Run("mailevents", func(b *testing.B) {
		d := newDecoder(b)
		sc := mailevent.NewScratch()
		b.ReportAllocs()
		for i := 0; b.Loop(); i++ {
			if out := d.Decode(sc, bodies[i%len(bodies)], now); len(out.Metrics) != 1 {
				b.Fatal(out.Bad)
			}
		}
	})
	b.Run("encoding_json_floor", func(b *testing.B) {
		tags := keyset.Of(mailevent.DefaultMapping().TagKeys)
		b.ReportAllocs()
		for i := 0; b.Loop(); i++ {
			if _, err := decodeStdlib(bodies[i%len(bodies)], tags); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("stock_json_v2", func(b *testing.B) {
		var p json_v2.Parser
		require.NoError(b, toml.Unmarshal([]byte(bench.StockJSONv2), &p))
		require.NoError(b, p.Init())
		b.ReportAllocs()
		for i := 0; b.Loop(); i++ {
			ms, err := p.Parse(bodies[i%len(bodies)])
			if err != nil || len(ms) != 1 {
				b.Fatal(err, len(ms))
			}
		}
	})
}

// BenchmarkParser is the cost per event of the mapping as a Telegraf
// parser (data_format = "mailevents") against the decoder that
// inputs.mailevents runs, on the same mailer events; and of the presets,
// per event, on each provider's published samples.
func BenchmarkParser(b *testing.B) {
	bodies := benchBodies(b, 1024)
	b.Run("decoder", func(b *testing.B) {
		d := newDecoder(b)
		sc := mailevent.NewScratch()
		b.ReportAllocs()
		for i := 0; b.Loop(); i++ {
			if out := d.Decode(sc, bodies[i%len(bodies)], time.Now()); len(out.Metrics) != 1 {
				b.Fatal(out.Bad)
			}
		}
	})
	b.Run("parser", func(b *testing.B) {
		p := &Parser{Mapping: mailevent.DefaultMapping()}
		require.NoError(b, p.Init())
		b.ReportAllocs()
		for i := 0; b.Loop(); i++ {
			if ms, err := p.Parse(bodies[i%len(bodies)]); err != nil || len(ms) != 1 {
				b.Fatal(err)
			}
		}
	})
	for _, name := range mailevent.PresetNames() {
		b.Run("preset_"+name, func(b *testing.B) {
			samples, err := providertest.Bodies(name)
			require.NoError(b, err)
			p := &Parser{Mapping: mailevent.DefaultMapping()}
			p.Preset = name
			require.NoError(b, p.Init())
			events := 0
			b.ReportAllocs()
			for i := 0; b.Loop(); i++ {
				ms, err := p.Parse(samples[i%len(samples)].Data)
				if err != nil {
					b.Fatal(err)
				}
				events += len(ms)
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(events), "ns/event")
		})
	}
}
