// Package box puts values into interfaces without a copy of their own.
//
// A telegraf.Metric holds each field's value in an interface (any), and
// Go boxes every string and number put into one in an allocation of its
// own: an event of 14 fields costs 14 allocations, and the garbage
// collector's work that follows them. Code that builds many values at once
// can instead keep them in one block (a []string, a []uint64) and hand out
// interfaces pointing into it: one allocation for all.
//
// The rule that makes it safe is Go's own for boxed values: the value an
// interface points to never changes. A caller writes a slot once, boxes it,
// and never writes it again; the interfaces keep the block alive.
package box

import "unsafe"

// eface is how Go lays out an interface value (any): its dynamic type, and
// a pointer to its value, where the value is not itself a pointer.
type eface struct {
	typ  unsafe.Pointer
	data unsafe.Pointer
}

func typeOf(v any) unsafe.Pointer {
	return (*eface)(unsafe.Pointer(&v)).typ
}

var (
	stringType  = typeOf("")
	int64Type   = typeOf(int64(0))
	uint64Type  = typeOf(uint64(0))
	float64Type = typeOf(float64(0))
)

func of(typ, data unsafe.Pointer) (v any) {
	e := (*eface)(unsafe.Pointer(&v))
	e.typ, e.data = typ, data
	return v
}

// String returns *p as an interface that points at *p.
func String(p *string) any { return of(stringType, unsafe.Pointer(p)) }

// Int64 returns the bits at *p as an int64 in an interface that points at *p.
func Int64(p *uint64) any { return of(int64Type, unsafe.Pointer(p)) }

// Uint64 returns *p as an interface that points at *p.
func Uint64(p *uint64) any { return of(uint64Type, unsafe.Pointer(p)) }

// Float64 returns the bits at *p as a float64 in an interface that points
// at *p.
func Float64(p *uint64) any { return of(float64Type, unsafe.Pointer(p)) }
