package box

import (
	"fmt"
	"math"
	"reflect"
	"runtime"
	"testing"

	"github.com/stretchr/testify/require"
)

// The boxed values are what Go's own boxing makes: the same dynamic type
// and value, for type switches, reflection, comparison and printing, also
// after collections (the interfaces alone keep their block alive).
func TestBoxes(t *testing.T) {
	strs := make([]string, 2)
	nums := make([]uint64, 3)
	strs[0], strs[1] = "sender@example.org", ""
	nums[0], nums[1], nums[2] = uint64(1<<64-550), 18446744073709551615, math.Float64bits(812.4)
	got := []any{String(&strs[0]), String(&strs[1]), Int64(&nums[0]), Uint64(&nums[1]), Float64(&nums[2])}
	want := []any{"sender@example.org", "", int64(-550), uint64(18446744073709551615), 812.4}
	strs, nums = nil, nil
	runtime.GC()
	for i := range want {
		require.Equal(t, want[i], got[i])
		require.True(t, want[i] == got[i])
		require.Equal(t, reflect.TypeOf(want[i]), reflect.TypeOf(got[i]))
		require.Equal(t, fmt.Sprint(want[i]), fmt.Sprint(got[i]))
	}
	switch v := got[2].(type) {
	case int64:
		require.Equal(t, int64(-550), v)
	default:
		t.Fatalf("type switch: %T", v)
	}
}

// A Slab's values are copies that never change, whatever comes after
// them (blocks filled, new blocks started, large values), read back as
// their types and values, and survive collections on their own.
func TestSlab(t *testing.T) {
	var s Slab
	var strs []string
	var boxes []any
	src := []byte("x")
	for i := range 3 * SlabStrings {
		// Values of growing sizes, some beyond a block's quarter.
		v := fmt.Sprintf("%d:%s", i, make([]byte, i*13%(SlabBytes/2)))
		src = append(src[:0], v...)
		got := s.String(src)
		src[0] = '!' // the caller's buffer is reused: the value is a copy
		strs = append(strs, got)
		boxes = append(boxes, s.Box(got), s.Int64(int64(-i)), s.Uint64(uint64(i)<<40), s.Float64(float64(i)/4))
	}
	require.Empty(t, s.String(nil))
	s = Slab{}
	runtime.GC()
	for i := range strs {
		want := fmt.Sprintf("%d:%s", i, make([]byte, i*13%(SlabBytes/2)))
		require.Equal(t, want, strs[i], "value %d", i)
		b := boxes[4*i : 4*i+4]
		require.True(t, any(want) == b[0], "box %d", i)
		require.Equal(t, reflect.TypeOf(""), reflect.TypeOf(b[0]))
		require.Equal(t, []any{int64(-i), uint64(i) << 40, float64(i) / 4}, b[1:], "boxes %d", i)
	}
}
