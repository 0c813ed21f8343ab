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
	if step(tm) == 1 {
		return tm.Add(time.Duration(salt))
	}
	return FillSum(tm, Sum(text), salt)
}

// Sum is the hash of an event's text that Fill fills with. The elements
// of one event share it: hash the event once, then FillSum each.
func Sum(text []byte) uint64 {
	h := fnv.New64a()
	h.Write(text)
	return h.Sum64()
}

// FillSum is Fill with the text's Sum already taken.
func FillSum(tm time.Time, sum uint64, salt int) time.Time {
	step := step(tm)
	if step == 1 {
		return tm.Add(time.Duration(salt))
	}
	return tm.Add(time.Duration((sum + uint64(salt)) % uint64(step)))
}

// step is the precision tm was given with, in ns.
func step(tm time.Time) int64 {
	ns := int64(tm.Nanosecond())
	for _, p := range []int64{1e9, 1e6, 1e3} {
		if ns%p == 0 {
			return p
		}
	}
	return 1
}
