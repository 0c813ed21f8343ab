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
	ReasonNoProgram   = "no_program"   // no "program[pid]: " part
	ReasonBadTime     = "bad_time"     // a timestamp that cannot be read
	ReasonUnknownLine = "unknown_line" // a Postfix line of a shape this reader does not know
)

var errNoProgram = errors.New("no program[pid]: part")

// SplitLine splits a syslog line: RFC 3164 ("Nov 23 16:24:15 host prog[pid]:
// msg", as Postfix's maillog_file writes it too), RFC 3339 timestamps
// ("2026-11-23T16:24:15.123456+00:00 host prog[pid]: msg", rsyslog's high
// precision format), RFC 5424 ("<22>1 2026-11-23T16:24:15.1Z host prog pid
// - - msg"), or no syslog header at all ("prog[pid]: msg"). RFC 3164 has no
// year nor zone: the year is the one that puts the time closest before
// now, in loc.
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
		t, err := time.ParseInLocation("Jan _2 15:04:05.999999999", s[:end], loc)
		if err != nil {
			return s, false
		}
		y := now.In(loc).Year()
		t = t.AddDate(y, 0, 0)
		if t.After(now.Add(24 * time.Hour)) { // December's lines read in January
			t = t.AddDate(-1, 0, 0)
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
