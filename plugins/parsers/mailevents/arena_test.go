package mailevents

import (
	"testing"

	"github.com/stretchr/testify/require"
)

// TestArenaBoxes: values boxed in an event's blocks read back as their
// types and values, also when an event has more of them than the worker's
// last event (its blocks run out, and Go boxes the rest), and stay as they
// were while the worker decodes the next events.
func TestArenaBoxes(t *testing.T) {
	d := newDecoder(t, func(m *Mapping) {
		m.FieldTypes = map[string]string{"i": "int", "u": "uint", "f": "float", "s": "string", "n": "string"}
	})
	sc := NewScratch()
	bodies := []string{
		`{"time":1,"a":"x","i":1}`,
		`{"time":2,"a":"one","b":"two","c":"three","i":-7,"u":18446744073709551615,"f":0.5,"g":2.25,"s":"s","n":42,"t":true}`,
		`{"time":3,"a":"y"}`,
	}
	want := []map[string]any{
		{"a": "x", "i": int64(1)},
		{"a": "one", "b": "two", "c": "three", "i": int64(-7), "u": uint64(18446744073709551615),
			"f": 0.5, "g": 2.25, "s": "s", "n": "42", "t": true},
		{"a": "y"},
	}
	var got []map[string]any
	for i, body := range bodies {
		out := decodeDetached(t, d, sc, []byte(body))
		require.Empty(t, out.Bad)
		require.Len(t, out.Metrics, 1)
		got = append(got, out.Metrics[0].Fields())
		require.Equal(t, want[i], got[i], "event %d", i)
		require.Equal(t, len(want[i]), sc.arena.strings+sc.arena.numbers+boolFields(want[i]), "event %d", i)
	}
	for i := range got {
		require.Equal(t, want[i], got[i], "event %d after the next", i)
	}
}

func boolFields(fields map[string]any) int {
	n := 0
	for _, v := range fields {
		if _, ok := v.(bool); ok {
			n++
		}
	}
	return n
}
