package mailevent

import (
	"bytes"
	"fmt"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"github.com/valyala/fastjson"

	"github.com/mailtick/mailtick/internal/gen"
	"github.com/mailtick/mailtick/internal/testutil/providertest"
)

// flatOnly is what only the flat reader takes; the rest goes to fastjson.
var (
	flatOnly = []string{
		fullEvent, `{}`, " \t{ } \n", ` { "a" : 1 , "b":-0.5e+3,"c":true,"d":false,"e":null,"f":"x"} `,
		`{"a":1,"a":"twice"}`, `{"":0}`, `{"n":-0,"m":0.25,"e":1E-7,"big":123456789012345678901234567890}`,
		"{\"latin1\":\"d\xe9j\xe0\",\"ctl\":\"a\tb\"}", `{"a":"<b@x.org>: 550 5.1.1 {not} [json]"}`,
	}
	treeOnly = []string{
		`{"a":{"b":1}}`, `{"a":[1]}`, `{"a":"x\"y"}`, `{"a\n":1}`, `{"a\u0041":1}`, `{"a":01}`, `{"a":1.}`,
		`{"a":.5}`, `{"a":NaN}`, `{"a":-Inf}`, `{"a":1,}`, `{"a":1} x`, `[{"a":1}]`, `{"a":tru}`, `{"a":truex}`,
		`{"a":1 "b":2}`, `{"a":-}`, `{"a":1e}`, `{"a":1.5.3}`, `{"a":1-2}`, "{\"a\":1}\n{\"b\":2}", `{"a"}`,
		`{"a":`, `{"a":"x`, `{a:1}`, `"a"`, `1`, `{"a":1}}`, `{"a":+1}`, "\xef\xbb\xbf{\"a\":1}",
	}
)

func TestReadFlat(t *testing.T) {
	for _, body := range flatOnly {
		kvs, ok := readFlat([]byte(body), nil)
		require.True(t, ok, "%q is flat", body)
		sameAsTree(t, []byte(body), kvs)
	}
	for _, body := range treeOnly {
		_, ok := readFlat([]byte(body), nil)
		require.False(t, ok, "%q is left to fastjson", body)
	}
	// The mailer's events, the hot path, are read flat.
	g, err := gen.New(gen.Config{Seed: 3})
	require.NoError(t, err)
	for range 200 {
		msg := g.Next()
		if msg.Kind == gen.Good {
			_, ok := readFlat(msg.Body, nil)
			require.True(t, ok, "%s", msg.Body)
		}
	}
}

// sameAsTree fails unless fastjson reads body as an object with the keys
// and values kvs has, in the same order.
func sameAsTree(t *testing.T, body []byte, kvs []flatKV) {
	t.Helper()
	var p fastjson.Parser
	v, err := p.ParseBytes(body)
	require.NoError(t, err, "fastjson refuses what readFlat took: %q", body)
	obj, err := v.Object()
	require.NoError(t, err, "%q", body)
	var tree []string
	obj.Visit(func(k []byte, v *fastjson.Value) {
		var b builder
		b.rendered = new([]byte)
		s := b.scalar(v)
		tree = append(tree, fmt.Sprintf("%q %s %q", k, s.t, s.raw))
	})
	var flat []string
	for _, kv := range kvs {
		v := kv.val(body)
		flat = append(flat, fmt.Sprintf("%q %s %q", kv.key(body), v.t, v.raw))
	}
	require.Equal(t, tree, flat, "%q", body)
}

// flatDecoders are mappings that read flat events: the default, and one
// with every option that works on a flat event.
func flatDecoders(t testing.TB) []*Decoder {
	ds := []*Decoder{
		newDecoder(t, nil),
		newDecoder(t, func(m *Mapping) { m.MissingTime = "dead_letter" }),
		newDecoder(t, func(m *Mapping) {
			m.FieldTypes = map[string]string{"a": "int", "b": "uint", "c": "bool", "d": "string", "e": "float", "smtp_code": "uint"}
			m.TagKeys = append(m.TagKeys, "a", "c", "n")
			m.TimeKeys = []string{"ts", "time"}
			m.TimeFormat = "unix_ms"
			m.ValueMaps = map[string]map[string]string{"event": {"failed": "bounced"}, "d": {"x": "y"}}
			m.DropKeys = []string{"queue_*", "e"}
			m.Rename = map[string]string{"f": "renamed", "sender": "from"}
			m.Captures = []Capture{{Key: "smtp_response", Pattern: `^(?P<code>\d{3}) (?P<status>\d\.\d\.\d)`}}
			m.ValueRules = []ValueRule{{Key: "event", When: map[string]string{"event": "bounced", "a": "1"}, Value: "deferred"}}
		}),
		newDecoder(t, func(m *Mapping) { m.KeepKeys = []string{"event", "time", "a*"}; m.TimeFormat = "rfc3339" }),
	}
	for _, d := range ds {
		require.True(t, d.flat)
	}
	return ds
}

// decodesAsTree fails unless d decodes body as it does without the flat
// reader: the same metrics, dead letters with the same reasons and
// errors, and the same counts.
func decodesAsTree(t *testing.T, d *Decoder, sc *Scratch, body []byte) {
	t.Helper()
	tree := *d
	tree.flat = false
	describe := func(out Decoded) string {
		var b strings.Builder
		fmt.Fprintf(&b, "events %d, missing time %d, repaired %d\n", out.Events, out.MissingTime, out.RepairedUTF)
		for _, m := range out.Metrics {
			b.WriteString(render(m))
		}
		for _, bad := range out.Bad {
			fmt.Fprintf(&b, "bad %s: %v: %q\n", bad.reason, bad.err, bad.raw)
		}
		return b.String()
	}
	want := describe(tree.Decode(sc, bytes.Clone(body), receivedAt))
	require.Equal(t, want, describe(d.Decode(sc, bytes.Clone(body), receivedAt)), "%q", body)
}

// flatSeeds are flat events and near misses: the mailer's JSON as the
// generator writes it (good and bad), the provider samples, and values
// each mapping takes or refuses.
func flatSeeds(t testing.TB) [][]byte {
	var seeds [][]byte
	for _, s := range append(append([]string{}, flatOnly...), treeOnly...) {
		seeds = append(seeds, []byte(s))
	}
	for _, s := range []string{
		`{"time":1700000000,"event":"failed","a":1,"b":2,"c":true,"d":"x","e":1.5,"f":"g","n":7,"smtp_response":"550 5.1.1 no"}`,
		`{"time":"1700000000123","a":"12","b":"-1","c":"maybe","d":5,"e":"1e3"}`,
		`{"time":1.5e12,"a":1.5,"b":-1,"c":1,"d":true,"e":null,"ts":null}`,
		`{"time":"2026-11-22T14:00:00Z","a":9223372036854775808,"b":18446744073709551616,"event":null}`,
		`{"time":"yesterday","event":"sent"}`, `{"time":-5,"event":"sent"}`, `{"event":"sent"}`, `{"time":1}`,
		`{"ts":1700000000000,"event":["a"],"a":1}`, "{\"time\":1,\"d\":\"\xff\xfe\",\"smtp_code\":1e2}",
		`{"time":1,"smtp_code":550.0,"size_bytes":1e400,"attempt":-1.5,"spam_score":"n/a"}`,
	} {
		seeds = append(seeds, []byte(s))
	}
	g, err := gen.New(gen.Config{Seed: 9})
	require.NoError(t, err)
	for range 300 {
		seeds = append(seeds, g.Next().Body)
	}
	for _, name := range PresetNames() {
		bodies, err := providertest.Bodies(name)
		require.NoError(t, err)
		for _, b := range bodies {
			seeds = append(seeds, b.Data)
		}
	}
	return seeds
}

func TestFlatDecodesAsTree(t *testing.T) {
	sc, decoders := NewScratch(), flatDecoders(t)
	flat := 0
	for _, body := range flatSeeds(t) {
		if _, ok := readFlat(trimSpace(body), nil); ok {
			flat++
		}
		for _, d := range decoders {
			decodesAsTree(t, d, sc, body)
		}
	}
	require.Greater(t, flat, 250, "the seeds exercise the flat reader")
}

// FuzzFlat: what readFlat takes, fastjson reads the same; a flat event
// decodes as its tree does, with every mapping.
func FuzzFlat(f *testing.F) {
	for _, s := range flatSeeds(f) {
		f.Add(s)
	}
	decoders := flatDecoders(f)
	sc := NewScratch()
	f.Fuzz(func(t *testing.T, body []byte) {
		if kvs, ok := readFlat(body, nil); ok {
			sameAsTree(t, body, kvs)
		}
		for _, d := range decoders {
			decodesAsTree(t, d, sc, body)
		}
	})
}
