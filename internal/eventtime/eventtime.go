// Package eventtime makes the times of distinct events distinct, so that
// InfluxDB keeps each as its own point, and the same event's time the same
// on every delivery, so that a replay overwrites its point.
package eventtime

import (
	"hash/fnv"
	"time"
)

// Fill fills the digits of tm below the precision it was given with (whole
// seconds, milli- or microseconds) from a hash of the event's text, plus
// salt (an element's place in a list). A time given to the nanosecond
// only gets salt added.
func Fill(tm time.Time, text []byte, salt int) time.Time {
	step := int64(1)
	ns := int64(tm.Nanosecond())
	for _, p := range []int64{1e9, 1e6, 1e3} {
		if ns%p == 0 {
			step = p
			break
		}
	}
	if step == 1 {
		return tm.Add(time.Duration(salt))
	}
	h := fnv.New64a()
	h.Write(text)
	sum := h.Sum64() + uint64(salt)
	return tm.Add(time.Duration(sum % uint64(step)))
}
