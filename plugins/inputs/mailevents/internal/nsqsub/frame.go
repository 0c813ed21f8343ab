package nsqsub

import (
	"math/bits"
)

// Frame buffers are reused by size class: multiples of 64 bytes up to
// 2 KiB (mail events are mostly a few hundred bytes, and rounding them up
// further would add to the memory of every message waiting to be
// decoded), then powers of two up to 64 KiB. A message's frame is most of
// what reading it allocates, and it is garbage as soon as the message is
// decoded. Each class keeps at most 256 KiB of them: a sync.Pool would
// keep the frames of every message of a burst (100,000 held for the
// outputs) until the next garbage collection, which an agent waiting for
// its outputs does not start.
const (
	fineStep    = 64
	fineClasses = 2048 / fineStep
	maxPooled   = 64 << 10
	classBytes  = 256 << 10
)

var framePools = func() (p [fineClasses + 6]chan *[]byte) {
	for c := 1; c < len(p); c++ {
		p[c] = make(chan *[]byte, max(classBytes/frameCap(c), 1))
	}
	return p
}()

// frameClass is the class of a frame of n bytes (0: none, not pooled).
func frameClass(n int) int {
	switch {
	case n <= 0 || n > maxPooled:
		return 0
	case n <= fineClasses*fineStep:
		return (n + fineStep - 1) / fineStep
	}
	return fineClasses + bits.Len(uint(n-1)) - bits.Len(fineClasses*fineStep-1) // 4 KiB: fineClasses+1
}

// frameCap is the size of the frames of class c.
func frameCap(c int) int {
	if c <= fineClasses {
		return c * fineStep
	}
	return fineClasses * fineStep << (c - fineClasses)
}

func getFrame(n int) *[]byte {
	c := frameClass(n)
	if c == 0 {
		b := make([]byte, n)
		return &b
	}
	select {
	case p := <-framePools[c]:
		*p = (*p)[:n]
		return p
	default:
		b := make([]byte, n, frameCap(c))
		return &b
	}
}

func putFrame(p *[]byte) {
	if c := frameClass(cap(*p)); c != 0 && cap(*p) == frameCap(c) {
		select {
		case framePools[c] <- p:
		default: // full: left to the garbage collector
		}
	}
}
