// Package maillog reads MTA logs: it splits a log line into its syslog
// header and its message, parses Postfix messages, and correlates them by
// queue id into mail_event metrics, one per delivery attempt of each
// recipient and one per reject.
package maillog

import (
	"errors"
	"strconv"
	"strings"
	"time"
)

// Line is one log line, split.
type Line struct {
	Time    time.Time
	HasTime bool   // false: the line had no timestamp
	Host    string // the syslog host ("" when absent)
	Program string // "postfix/smtp", "postfix/submission/smtpd"
	Message string // after "program[pid]: "
}

// Reasons a line is not read. Counted by reason; a line never blocks the
// ones after it.
const (
	ReasonNoProgram = "no_program" // no "program[pid]: " part
	ReasonBadTime   = "bad_time"   // a timestamp that cannot be read
	// A Postfix line of a shape this reader does not know, such as a
	// delivery whose status= it does not know: refused, not dropped
	// unseen, so that a new Postfix status shows in the counts.
	ReasonUnknownLine = "unknown_line"
)

// MaxLineBytes bounds a log line for the readers of this package: the
// part of a line past it is cut and counted, not held (a line without a
// newline, such as the block of NULs a crash leaves in a log, would
// otherwise grow without bound). Postfix lines stay far below it: syslog
// lines are commonly capped at 8 KiB (rsyslog's default maxMessageSize).
const MaxLineBytes = 64 << 10

var errNoProgram = errors.New("no program[pid]: part")

// SplitLine splits a syslog line: RFC 3164 ("Nov 23 16:24:15 host prog[pid]:
// msg", as Postfix's maillog_file writes it too), RFC 3339 timestamps
// ("2026-11-23T16:24:15.123456+00:00 host prog[pid]: msg", rsyslog's high
// precision format), RFC 5424 ("<22>1 2026-11-23T16:24:15.1Z host prog pid
// - - msg"), or no syslog header at all ("prog[pid]: msg"). RFC 3164 has no
// year nor zone: the time is read in loc, in the year and at the offset
// rfc3164Time chooses by now, the reader's clock.
func SplitLine(s string, now time.Time, loc *time.Location) (Line, error) {
	var l Line
	if len(s) > 0 && s[0] == '<' { // a priority: <PRI> or <PRI>1 (RFC 5424)
		end := strings.IndexByte(s, '>')
		if end < 0 || end > 4 {
			return l, errNoProgram
		}
		s = s[end+1:]
		if strings.HasPrefix(s, "1 ") {
			return split5424(s[2:])
		}
	}
	rest, ok := l.readTime(s, now, loc)
	if !ok && len(s) > 0 && s[0] >= '0' && s[0] <= '9' {
		return l, errBadTime
	}
	if ok {
		host, after, found := strings.Cut(rest, " ")
		if !found {
			return l, errNoProgram
		}
		l.Host, rest = host, after
	}
	prog, msg, found := strings.Cut(rest, ": ")
	if !found || strings.ContainsRune(prog, ' ') {
		return l, errNoProgram
	}
	if i := strings.IndexByte(prog, '['); i >= 0 {
		prog = prog[:i]
	}
	l.Program, l.Message = prog, msg
	return l, nil
}

var errBadTime = errors.New("bad timestamp")

// readTime reads an RFC 3164 or RFC 3339 timestamp at the start of s.
func (l *Line) readTime(s string, now time.Time, loc *time.Location) (string, bool) {
	if len(s) >= 16 && s[3] == ' ' && s[6] == ' ' && s[9] == ':' {
		// "Nov 23 16:24:15" or "Nov  3 16:24:15", maybe with ".123456"
		end := 15
		for end < len(s) && s[end] != ' ' {
			end++
		}
		// Parsed in year 0, a leap year: Feb 29 is read, and its year
		// chosen below.
		w, err := time.Parse("Jan _2 15:04:05.999999999", s[:end])
		if err != nil {
			return s, false
		}
		t, ok := rfc3164Time(w, now, loc)
		if !ok {
			return s, false
		}
		l.Time, l.HasTime = t.UTC(), true
		return strings.TrimPrefix(s[end:], " "), true
	}
	if len(s) >= 20 && s[4] == '-' && s[10] == 'T' {
		end := strings.IndexByte(s, ' ')
		if end < 0 {
			return s, false
		}
		t, err := time.Parse(time.RFC3339Nano, s[:end])
		if err != nil {
			return s, false
		}
		l.Time, l.HasTime = t.UTC(), true
		return s[end+1:], true
	}
	return s, false
}

// How far ahead of the reader's clock an RFC 3164 time may be. A line a
// little ahead (the writer's clock ahead of the reader's, New Year's
// seconds) is this year's, not last year's; the margin is a day, so that
// a zone set wrong by a few hours does not put every line a year back.
const yearAhead = 24 * time.Hour

// How far ahead of the reader's clock the later of the two instants of a
// repeated wall time may be (clocks skewed between writer and reader);
// further ahead, the line was written in the first pass, before the
// clocks went back. Under the hour a fall back repeats.
const passAhead = 10 * time.Minute

// rfc3164Time places the wall time w (month, day and time of day; its year
// ignored) in loc. The year is the latest one that puts it at most
// yearAhead after now: December's lines read in January are last year's,
// January's lines read a few seconds before New Year are next year's, and
// Feb 29 is in the latest leap year that fits (never Mar 1). A wall time
// the fall back repeats has two instants: the later one, unless it is more
// than passAhead ahead of now (then the line is of the first pass, and
// stamping it with the later offset would put it an hour in the future).
// A log replayed more than an hour after it was written cannot tell the
// passes apart: both get the later offset, the first an hour late, never
// ahead of the clock. A wall time the spring forward skips is read as Go
// normalizes it (an hour later).
func rfc3164Time(w, now time.Time, loc *time.Location) (time.Time, bool) {
	limit := now.Add(yearAhead)
	local := now.In(loc)
	y := local.Year()
	if local.Month() == time.December && w.Month() == time.January {
		y++ // only then can next year's be at most yearAhead ahead
	}
	// Feb 29 is in one year of four, but not in 2100: look back 8 years.
	for last := local.Year() - 8; y >= last; y-- {
		t := time.Date(y, w.Month(), w.Day(), w.Hour(), w.Minute(), w.Second(), w.Nanosecond(), loc)
		if t.Month() != w.Month() || t.Day() != w.Day() {
			continue // Feb 29 of a common year
		}
		if t.After(limit) {
			continue
		}
		if early, late, ok := repeated(t); ok {
			t = late
			if late.After(now.Add(passAhead)) {
				t = early
			}
		}
		return t, true
	}
	return time.Time{}, false
}

// repeated tells whether t's wall time comes twice in its location (the
// hour a fall back repeats), and its two instants.
func repeated(t time.Time) (early, late time.Time, ok bool) {
	start, end := t.ZoneBounds()
	if start.IsZero() && end.IsZero() {
		return t, t, false // UTC, a fixed zone, or no transition known
	}
	_, off := t.Zone()
	if !start.IsZero() { // t is just after a fall back: the earlier instant had the offset before it
		_, before := start.Add(-time.Nanosecond).Zone()
		if d := time.Duration(before-off) * time.Second; d > 0 && t.Sub(start) < d {
			return t.Add(-d), t, true
		}
	}
	if !end.IsZero() { // t is just before a fall back: its wall time comes again after it
		_, after := end.Zone()
		if d := time.Duration(off-after) * time.Second; d > 0 && end.Sub(t) <= d {
			return t, t.Add(d), true
		}
	}
	return t, t, false
}

// split5424 reads "TIMESTAMP HOST APP PROCID MSGID SD MSG".
func split5424(s string) (Line, error) {
	var l Line
	f := strings.SplitN(s, " ", 7)
	if len(f) < 7 {
		return l, errNoProgram
	}
	if f[0] != "-" {
		t, err := time.Parse(time.RFC3339Nano, f[0])
		if err != nil {
			return l, errBadTime
		}
		l.Time, l.HasTime = t.UTC(), true
	}
	l.Host, l.Program = nilValue(f[1]), nilValue(f[2])
	msg := f[6]
	if f[5] != "-" { // structured data: skip [..] elements
		msg = strings.TrimPrefix(f[5]+" "+f[6], f[5])
		msg = strings.TrimPrefix(msg, " ")
	}
	l.Message = strings.TrimPrefix(msg, "\ufeff")
	if l.Program == "" {
		return l, errNoProgram
	}
	return l, nil
}

func nilValue(s string) string {
	if s == "-" {
		return ""
	}
	return s
}

// daemon is the Postfix daemon of a program name: the last part of
// "postfix/submission/smtpd".
func daemon(program string) string {
	if i := strings.LastIndexByte(program, '/'); i >= 0 {
		return program[i+1:]
	}
	return program
}

// parseDelays reads "a/b/c/d" into milliseconds.
func parseDelays(s string) ([4]float64, bool) {
	var out [4]float64
	parts := strings.Split(s, "/")
	if len(parts) != 4 {
		return out, false
	}
	for i, p := range parts {
		f, err := strconv.ParseFloat(p, 64)
		if err != nil {
			return out, false
		}
		out[i] = f * 1000
	}
	return out, true
}
