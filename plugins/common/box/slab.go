package box

import (
	"math"
	"unsafe"
)

// Slab hands out strings, and strings and numbers boxed in interfaces,
// from blocks shared by many values: one allocation for a block's worth
// of them instead of one or two for each. It is for values made one after
// the other that live about as long as each other (a decoder's or a
// processor's values, metric after metric): a block stays alive as long
// as any value in it does, so one value kept for long keeps its block
// (SlabBytes at most).
//
// As for Go's own strings and boxes, what is handed out never changes:
// a Slab only appends to its blocks, and starts a new block when one is
// full. A Slab is not safe for concurrent use.
type Slab struct {
	bytes []byte
	strs  []string
	nums  []uint64
}

// The size of a Slab's blocks: bytes of strings, boxed strings and boxed
// numbers.
const (
	SlabBytes   = 8 << 10
	SlabStrings = 256
	SlabNumbers = 256
)

// String returns a string holding a copy of b.
func (s *Slab) String(b []byte) string {
	if len(b) == 0 {
		return ""
	}
	if len(b) > SlabBytes/4 { // a large value has an allocation of its own
		return string(b)
	}
	if len(s.bytes)+len(b) > cap(s.bytes) {
		s.bytes = make([]byte, 0, SlabBytes)
	}
	start := len(s.bytes)
	s.bytes = append(s.bytes, b...)
	return unsafe.String(&s.bytes[start], len(b))
}

// Box returns v in an interface, as any(v) would, with its header kept
// in the Slab's block.
func (s *Slab) Box(v string) any {
	if len(s.strs) == cap(s.strs) {
		s.strs = make([]string, 0, SlabStrings)
	}
	s.strs = append(s.strs, v)
	return String(&s.strs[len(s.strs)-1])
}

// Int64, Uint64 and Float64 return v in an interface, as any(v) would,
// with its eight bytes kept in the Slab's block.
func (s *Slab) Int64(v int64) any { return Int64(s.num(uint64(v))) }

func (s *Slab) Uint64(v uint64) any { return Uint64(s.num(v)) }

func (s *Slab) Float64(v float64) any { return Float64(s.num(math.Float64bits(v))) }

func (s *Slab) num(bits uint64) *uint64 {
	if len(s.nums) == cap(s.nums) {
		s.nums = make([]uint64, 0, SlabNumbers)
	}
	s.nums = append(s.nums, bits)
	return &s.nums[len(s.nums)-1]
}
