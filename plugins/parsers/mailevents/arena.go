package mailevents

import (
	"math"
	"unsafe"

	"github.com/valyala/fastjson"

	"github.com/mailtick/mailtick/internal/box"
)

// arena holds the values of one event in three allocations made with its
// metric: the bytes of its strings, and the boxes of its field values (a
// string field's header; a number's eight bytes). A value handed to a
// telegraf.Metric is an interface, and Go boxes each string and number
// put into one in an allocation of its own: half of the allocations of an
// event (and the garbage collector's work that follows them) before the
// boxes came in blocks. The bytes and the boxes are written once and never
// changed, which is what makes handing out values that alias them safe;
// the metric's fields keep the blocks alive, and Copy shares the boxes as
// Telegraf's metric shares its values.
type arena struct {
	buf  []byte
	strs []string
	nums []uint64

	strings, numbers int // values boxed, in the blocks or not
}

// reset starts the next event's blocks, sized for its values. The blocks
// before stay with the metric made from them.
func (a *arena) reset(size, strs, nums int) {
	*a = arena{buf: make([]byte, 0, size)}
	if strs > 0 {
		a.strs = make([]string, 0, strs)
	}
	if nums > 0 {
		a.nums = make([]uint64, 0, nums)
	}
}

// valueSizes counts what an event of the tree puts in its arena: the
// bytes of its strings, its strings and its numbers, nested ones included.
func valueSizes(obj *fastjson.Object) (size, strs, nums int) {
	obj.Visit(func(_ []byte, v *fastjson.Value) {
		switch v.Type() {
		case fastjson.TypeString:
			b, _ := v.StringBytes()
			size += len(b)
			strs++
		case fastjson.TypeNumber:
			nums++
		case fastjson.TypeObject:
			inner, _ := v.Object()
			s, n, m := valueSizes(inner)
			size, strs, nums = size+s, strs+n, nums+m
		}
	})
	return size, strs, nums
}

func (a *arena) copy(b []byte) string {
	if len(b) == 0 {
		return ""
	}
	if len(a.buf)+len(b) > cap(a.buf) {
		return string(b) // not sized for it (e.g. a list kept as text): stay correct
	}
	start := len(a.buf)
	a.buf = append(a.buf, b...)
	return unsafe.String(&a.buf[start], len(b))
}

// boxString, boxInt, boxUint and boxFloat return v as an interface whose
// value lives in the arena's blocks; once a block is used up (a value of
// another type than counted: a number mapped as a string), Go boxes it.
func (a *arena) boxString(v string) any {
	a.strings++
	if len(a.strs) == cap(a.strs) {
		return v
	}
	a.strs = append(a.strs, v)
	return box.String(&a.strs[len(a.strs)-1])
}

func (a *arena) boxInt(v int64) any {
	if p := a.num(uint64(v)); p != nil {
		return box.Int64(p)
	}
	return v
}

func (a *arena) boxUint(v uint64) any {
	if p := a.num(v); p != nil {
		return box.Uint64(p)
	}
	return v
}

func (a *arena) boxFloat(v float64) any {
	if p := a.num(math.Float64bits(v)); p != nil {
		return box.Float64(p)
	}
	return v
}

// num puts a number's bits in the block, and says where; nil once the
// block is used up.
func (a *arena) num(bits uint64) *uint64 {
	a.numbers++
	if len(a.nums) == cap(a.nums) {
		return nil
	}
	a.nums = append(a.nums, bits)
	return &a.nums[len(a.nums)-1]
}
