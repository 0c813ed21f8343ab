package mailevent

import (
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestSlabValues: values kept in the worker's blocks (box.Slab) read back
// as their types and values, and stay as they were while the worker
// decodes the events after them, over many blocks' worth of them (the
// metrics wait in Telegraf's buffer while the worker goes on).
func TestSlabValues(t *testing.T) {
	d := newDecoder(t, func(m *Mapping) {
		m.FieldTypes = map[string]string{"i": "int", "u": "uint", "f": "float", "s": "string", "n": "string"}
	})
	sc := NewScratch()
	want := func(i int) map[string]any {
		if i%3 == 2 { // a smaller event between larger ones
			return map[string]any{"a": fmt.Sprint("y", i)}
		}
		return map[string]any{"a": fmt.Sprint("one", i), "b": "two", "c": fmt.Sprintf("three %0*d", i%97, i),
			"i": int64(-i), "u": uint64(18446744073709551615) - uint64(i), "f": float64(i) / 2, "g": 2.25, "s": "s",
			"n": fmt.Sprint(i), "t": i%2 == 0}
	}
	body := func(i int) string {
		w := want(i)
		if len(w) == 1 {
			return fmt.Sprintf(`{"time":%d,"a":%q}`, i+1, w["a"])
		}
		return fmt.Sprintf(`{"time":%d,"a":%q,"b":"two","c":%q,"i":%d,"u":%d,"f":%v,"g":2.25,"s":"s","n":%d,"t":%v}`,
			i+1, w["a"], w["c"], -i, w["u"], w["f"], i, w["t"])
	}
	var got []map[string]any
	for i := range 1000 {
		out := decodeDetached(t, d, sc, []byte(body(i)))
		require.Empty(t, out.Bad)
		require.Len(t, out.Metrics, 1)
		got = append(got, ownFields(t, out.Metrics[0]))
		require.Equal(t, want(i), got[i], "event %d", i)
	}
	for i := range got {
		require.Equal(t, want(i), got[i], "event %d after the next ones", i)
	}
}
