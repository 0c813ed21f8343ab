package maillog

import (
	"regexp"
	"strconv"
	"strings"
	"time"
)

// Exim's main log: "2026-11-23 16:26:55[.123] [+0100] [[pid]] <id> <flag> …"
// with ids "10HmaX-0005vi-00" (before 4.97) or "10HmaX-000000005vi-0000".
var (
	eximID   = regexp.MustCompile(`^[0-9A-Za-z]{6}-[0-9A-Za-z]{6,11}-[0-9A-Za-z]{2,4}$`)
	eximHost = regexp.MustCompile(`H=(?:([^\s(]\S*) )?(?:\(([^)]*)\) )?\[([0-9A-Fa-f:.]+)\]`)
	// With or without angle brackets: "F=<a@b> rejected RCPT <c@d>: …",
	// and as some configurations log them, "F=a@b rejected RCPT c@d: …".
	eximRcpt = regexp.MustCompile(`rejected RCPT (?:<([^>]*)>|([^\s<>]+?))(?::\s|:?$)`)
	eximFrom = regexp.MustCompile(`F=(?:<([^>]*)>|([^\s<>]+))`)
)

// isExim tells whether a line starts as Exim's main log does.
func isExim(s string) bool {
	return len(s) > 20 && s[4] == '-' && s[7] == '-' && s[10] == ' ' && s[13] == ':' && s[16] == ':'
}

// eximLine splits the timestamp (in loc, or with its own +hhmm zone) and
// the optional [pid] off an Exim line.
func eximLine(s string, loc *time.Location) (time.Time, string, bool) {
	end := 19
	for end < len(s) && s[end] != ' ' {
		end++
	}
	ts, rest := s[:end], strings.TrimPrefix(s[end:], " ")
	var t time.Time
	var err error
	if len(rest) > 5 && (rest[0] == '+' || rest[0] == '-') && rest[5] == ' ' {
		t, err = time.Parse("2006-01-02 15:04:05.999999999 -0700", ts+" "+rest[:5])
		rest = rest[6:]
	} else {
		t, err = time.ParseInLocation("2006-01-02 15:04:05.999999999", ts, loc)
	}
	if err != nil {
		return t, "", false
	}
	if strings.HasPrefix(rest, "[") {
		if i := strings.Index(rest, "] "); i > 0 {
			rest = rest[i+2:]
		}
	}
	return t.UTC(), rest, true
}

// exim reads one Exim main log line.
func (c *Correlator) exim(raw, host string, loc *time.Location) ([]Event, string) {
	t, rest, ok := eximLine(raw, loc)
	if !ok {
		c.Unknown[ReasonBadTime]++
		return nil, ReasonBadTime
	}
	return c.eximAt(t, rest, raw, host)
}

// eximAt reads an Exim line's part after its timestamp (rest), logged at
// t by host; raw is the whole line.
func (c *Correlator) eximAt(t time.Time, rest, raw, host string) ([]Event, string) {
	ev := Event{Time: t, Host: host, line: raw}
	id, after, _ := strings.Cut(rest, " ")
	if !eximID.MatchString(id) {
		if sec, ok := eximSecurity(ev, rest); ok {
			return []Event{sec}, ""
		}
		// No message yet: "H=… F=<s> rejected RCPT <r>: reason"
		if m := eximRcpt.FindStringSubmatch(rest); m != nil {
			ev.Event, ev.Direction, ev.Recipient = "rejected", "inbound", m[1]+m[2]
			if f := eximFrom.FindStringSubmatch(rest); f != nil {
				ev.Sender = f[1] + f[2]
			}
			if h := eximHost.FindStringSubmatch(rest); h != nil {
				ev.Helo, ev.ClientIP = h[2], h[3]
			}
			if _, reason, found := strings.Cut(rest[strings.Index(rest, "rejected RCPT"):], ": "); found {
				ev.Response = reason
			}
			return []Event{ev}, ""
		}
		if strings.Contains(rest, "rejected RCPT") { // a shape this reader does not know: counted, not dropped unseen
			c.Unknown[ReasonUnknownLine]++
			return nil, ReasonUnknownLine
		}
		return nil, ""
	}
	ev.QueueID = id
	flag, tail, _ := strings.Cut(after, " ")
	switch flag {
	case "<=":
		c.begin(id) // an arrival: a new message, whatever was evicted
		msg := c.msg(id, t)
		sender, fields, _ := strings.Cut(tail, " ")
		if sender != "<>" {
			msg.Sender = c.intern(sender)
		}
		if h := eximHost.FindStringSubmatch(fields); h != nil {
			msg.ClientIP, msg.Helo = c.intern(h[3]), c.intern(h[2])
		}
		kv := eximFields(fields)
		if n, err := strconv.ParseInt(kv["S"], 10, 64); err == nil {
			msg.Size = n
		}
		msg.MessageID = strings.Clone(kv["id"])
		msg.Accepted = true
		sec := eximSecurityOf(ev, kv, "inbound", msg.ClientIP, true)
		for _, s := range sec {
			if s.Event == SignalSASLLogin {
				msg.SASLUser = c.intern(s.SASLUser)
			}
		}
		ev.Event = "accepted"
		c.fromMessage(&ev, msg)
		return append([]Event{ev}, sec...), ""
	case "=>", "->", ">>":
		ev.Event = "delivered"
	case "**":
		ev.Event = "bounced"
	case "==":
		ev.Event = "deferred"
	case "Completed":
		delete(c.msgs, id)
		delete(c.gone, id)
		return nil, ""
	default: // "*>" (delivery suppressed), "F=<…> rejected by non-SMTP ACL", frozen, …
		if strings.Contains(after, "rejected") {
			ev.Event, ev.Direction = "rejected", "inbound"
			if f := eximFrom.FindStringSubmatch(after); f != nil {
				ev.Sender = f[1] + f[2]
			}
			if _, reason, found := strings.Cut(after, ": "); found {
				ev.Response = reason
			}
			delete(c.msgs, id)
			delete(c.gone, id)
			return []Event{ev}, ""
		}
		return nil, ""
	}
	// "rcpt [<orig>] R=router T=transport H=host [ip] C="250 OK" QT=1s DT=0s"
	rcpt, fields, _ := strings.Cut(tail, " ")
	ev.Recipient = rcpt
	if strings.HasPrefix(fields, "<") {
		orig, more, _ := strings.Cut(fields, "> ")
		ev.OrigRecipient, fields = strings.TrimPrefix(orig, "<"), more
	}
	kv := eximFields(fields)
	ev.Relay = kv["T"]
	ev.Direction = "inbound"
	if h := eximHost.FindStringSubmatch(fields); h != nil {
		ev.Direction = "outbound"
		ev.Relay = h[1] + "[" + h[3] + "]"
	}
	if qt, ok := eximDuration(kv["QT"]); ok {
		ev.LatencyMS = qt
	}
	ev.DeliveryMS, ev.HasDelivery = eximDuration(kv["DT"])
	reply := kv["C"]
	if i := strings.Index(fields, ": "); i >= 0 && flag != "=>" && flag != "->" && flag != ">>" {
		reply = fields[i+2:] // "…: SMTP error from remote mail server after RCPT TO:<x>: 550 5.1.1 …"
		if j := strings.LastIndex(reply, ": "); j >= 0 && replyCode.MatchString(reply[j+2:]) {
			reply = reply[j+2:]
		}
	}
	sec := eximSecurityOf(ev, kv, ev.Direction, "", false)
	ev.Response = reply
	ev.SMTPCode = replyCodeOf(reply)
	if m := replyCode.FindStringSubmatch(reply); m != nil {
		ev.SMTPStatus = m[2]
	}
	msg := c.msg(id, t)
	if !msg.Partial { // else the attempts before the eviction are not known
		if msg.Attempts == nil {
			msg.Attempts = map[string]int{}
		}
		msg.Attempts[rcpt]++
		ev.Attempt = msg.Attempts[rcpt]
	}
	c.fromMessage(&ev, msg)
	for i := range sec {
		sec[i].Relay = ev.Relay
	}
	return append([]Event{ev}, sec...), ""
}

// eximFields reads Exim's K=value fields; a quoted value (C="250 OK")
// keeps its spaces.
func eximFields(s string) map[string]string {
	kv := map[string]string{}
	for s != "" {
		s = strings.TrimLeft(s, " ")
		k, rest, ok := strings.Cut(s, "=")
		if !ok || strings.ContainsRune(k, ' ') {
			// not a field: skip a word
			_, s, _ = strings.Cut(s, " ")
			continue
		}
		if strings.HasPrefix(rest, `"`) {
			end := strings.Index(rest[1:], `"`)
			if end < 0 {
				kv[k], s = rest[1:], ""
				continue
			}
			kv[k], s = rest[1:end+1], rest[end+2:]
			continue
		}
		v, more, _ := strings.Cut(rest, " ")
		kv[k], s = v, more
	}
	return kv
}

// eximDuration reads Exim's "1d2h3m4s" or "0.123s" into milliseconds.
func eximDuration(s string) (float64, bool) {
	if s == "" {
		return 0, false
	}
	total, num := 0.0, ""
	for _, r := range s {
		switch {
		case r >= '0' && r <= '9' || r == '.':
			num += string(r)
		default:
			f, err := strconv.ParseFloat(num, 64)
			if err != nil {
				return 0, false
			}
			unit := map[rune]float64{'w': 604800, 'd': 86400, 'h': 3600, 'm': 60, 's': 1}[r]
			if unit == 0 {
				return 0, false
			}
			total += f * unit
			num = ""
		}
	}
	if num != "" {
		return 0, false
	}
	return total * 1000, true
}
