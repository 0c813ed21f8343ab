package latency

import (
	"fmt"
	"time"
	// Zones by name on any machine, with or without the system's tzdata:
	// the UDF and `mailtick sla` load the tz of the tasks.
	_ "time/tzdata"
)

// Level is one roll-up level: its windows are minutes, hours, or calendar
// days, ISO weeks (from Monday) and months of a time zone.
type Level string

// The levels, finest first. Each level's windows are unions of whole
// windows of the levels before it (an hour of a zone is a run of minutes,
// its day a run of its hours), so each is computed from the one below.
const (
	Minute Level = "1m"
	Hour   Level = "1h"
	Day    Level = "1d"
	Week   Level = "1w"
	Month  Level = "1mo"
)

// Levels are all levels, finest first.
var Levels = []Level{Minute, Hour, Day, Week, Month}

// ParseLevel checks a level name.
func ParseLevel(s string) (Level, error) {
	for _, l := range Levels {
		if string(l) == s {
			return l, nil
		}
	}
	return "", fmt.Errorf("invalid window %q: want one of 1m, 1h, 1d, 1w, 1mo", s)
}

// Below is the level a level is rolled up from: "" for minutes (which come
// from the raw events); weeks and months both come from days.
func (l Level) Below() Level {
	switch l {
	case Hour:
		return Minute
	case Day:
		return Hour
	case Week, Month:
		return Day
	}
	return ""
}

// Start is the start of the window of l that holds t, in loc.
func (l Level) Start(t time.Time, loc *time.Location) time.Time {
	switch l {
	case Minute:
		return t.Truncate(time.Minute)
	case Hour:
		// The zone's hours: whole UTC hours shifted by the zone's offset
		// within the hour (India's hours start at :30 UTC).
		_, off := t.In(loc).Zone()
		shift := time.Duration(off) * time.Second % time.Hour
		return t.Add(shift).Truncate(time.Hour).Add(-shift)
	}
	lt := t.In(loc)
	y, m, d := lt.Date()
	switch l {
	case Week:
		d -= (int(lt.Weekday()) + 6) % 7 // back to Monday
	case Month:
		d = 1
	}
	return time.Date(y, m, d, 0, 0, 0, 0, loc)
}

// Next is the start of the window after the one starting at start.
func (l Level) Next(start time.Time, loc *time.Location) time.Time {
	switch l {
	case Minute:
		return start.Add(time.Minute)
	case Hour:
		return start.Add(time.Hour)
	}
	y, m, d := start.In(loc).Date()
	switch l {
	case Day:
		d++
	case Week:
		d += 7
	case Month:
		m++
	}
	return time.Date(y, m, d, 0, 0, 0, 0, loc)
}

// Span is a run of whole windows of one level: [From, To).
type Span struct {
	Level    Level
	From, To time.Time
}

// Cover splits [from, to) into spans of whole windows, as few as it can:
// months where whole months fit, then weeks, days, hours, minutes at the
// edges. from and to are first truncated to the minute. What a reader of
// the spans sums is then exactly the latencies of [from, to).
func Cover(from, to time.Time, loc *time.Location) []Span {
	return cover(Minute.Start(from, loc), Minute.Start(to, loc), loc, []Level{Month, Week, Day, Hour, Minute})
}

// CoverDays is Cover for rollups that go up to the day (mail_counts,
// mail_deliv): days, then hours and minutes at the edges.
func CoverDays(from, to time.Time, loc *time.Location) []Span {
	return cover(Minute.Start(from, loc), Minute.Start(to, loc), loc, []Level{Day, Hour, Minute})
}

func cover(from, to time.Time, loc *time.Location, levels []Level) []Span {
	if !from.Before(to) {
		return nil
	}
	l := levels[0]
	if len(levels) == 1 {
		return []Span{{l, from, to}}
	}
	// The first whole window of l at or after from, and how far whole
	// windows reach before to.
	first := l.Start(from, loc)
	if first.Before(from) {
		first = l.Next(first, loc)
	}
	last := first
	for {
		next := l.Next(last, loc)
		if next.After(to) {
			break
		}
		last = next
	}
	if !last.After(first) { // no whole window of l
		return cover(from, to, loc, levels[1:])
	}
	spans := cover(from, first, loc, levels[1:])
	spans = append(spans, Span{l, first, last})
	return append(spans, cover(last, to, loc, levels[1:])...)
}
