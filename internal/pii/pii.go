// Package pii finds e-mail addresses and IP addresses inside text. It is the
// one detector of the project: processors.piiscrub redacts what it finds and
// outputs.rollupfwd refuses to send what it finds.
//
// It is a hand-written single pass, no regular expressions: it looks only at
// the bytes around '@' (e-mail), at digit runs (IPv4) and at runs of hex
// digits and colons (IPv6), and checks candidates exactly (IPv6 with
// net/netip). What it accepts:
//   - mailboxes: dot-atom local parts with plus tags and the other RFC 5322
//     atext characters, quoted local parts ("john doe"@example.org), domains
//     of two or more labels, IDN labels in UTF-8, or an IP literal
//     (user@[192.0.2.1]); with or without <angle brackets> around;
//   - IPv4 in dotted quads with each octet 0-255, also followed by a port
//     (192.0.2.1:25); not inside longer dotted numbers (1.2.3.4.5 is a
//     version, not an address);
//   - IPv6 in every form net/netip parses: compressed, with a %zone,
//     IPv4-mapped (::ffff:192.0.2.1), in [brackets]; a run like 12:30 is
//     not (an address has at least two colons);
//   - not networks of many hosts: 203.0.113.0/24 and 2001:db8::/48 are what
//     piiscrub's ip_prefix writes, and they name no one.
package pii

import (
	"net/netip"
	"unicode/utf8"
	"unsafe"
)

// Kind is what a match is.
type Kind uint8

const (
	Email Kind = iota + 1
	IPv4
	IPv6
)

func (k Kind) String() string {
	switch k {
	case Email:
		return "email"
	case IPv4:
		return "ipv4"
	case IPv6:
		return "ipv6"
	}
	return "unknown"
}

// Match is one address found in a text: s[Start:End].
type Match struct {
	Start, End int
	Kind       Kind
}

// Find returns the first address in s at or after from, or ok=false.
func Find(s string, from int) (m Match, ok bool) {
	for i := from; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '@':
			if m, ok := email(s, i); ok && m.Start >= from {
				return m, true
			}
		case isDigit(c):
			if i > 0 && (isAlnum(s[i-1]) || s[i-1] == '.') {
				continue
			}
			if m, ok := ipv4(s, i); ok {
				// An e-mail may start with the digits: prefer it.
				if e, eok := emailAround(s, m.End); eok && e.Start <= i {
					return e, true
				}
				return m, true
			}
			if m, ok := ipv6(s, i); ok {
				return m, true
			}
		case isHex(c) || c == ':':
			if i > 0 && (isAlnum(s[i-1]) || s[i-1] == ':' || s[i-1] == '.') {
				continue
			}
			if m, ok := ipv6(s, i); ok {
				return m, true
			}
		}
	}
	return Match{}, false
}

// Contains tells whether s holds an e-mail or IP address.
func Contains(s string) bool {
	_, ok := Find(s, 0)
	return ok
}

// emailAround finds an e-mail whose '@' comes at or after i, before the
// next space.
func emailAround(s string, i int) (Match, bool) {
	for j := i; j < len(s) && j < i+256; j++ {
		if s[j] == '@' {
			return email(s, j)
		}
		if !isAtext(s[j]) {
			break
		}
	}
	return Match{}, false
}

// email checks the mailbox around the '@' at at.
func email(s string, at int) (Match, bool) {
	// Local part, backwards.
	start := at
	if at > 0 && s[at-1] == '"' {
		j := at - 2
		for j >= 0 && s[j] != '"' {
			if s[j] == '\n' {
				return Match{}, false
			}
			j--
		}
		if j < 0 || j == at-2 {
			return Match{}, false
		}
		start = j
	} else {
		for start > 0 && isAtext(s[start-1]) {
			start--
		}
		for start < at && s[start] == '.' { // a local part does not start with a dot
			start++
		}
		if start == at || s[at-1] == '.' {
			return Match{}, false
		}
	}
	// Domain, forwards.
	end := at + 1
	if end < len(s) && s[end] == '[' { // user@[192.0.2.1]
		j := end + 1
		for j < len(s) && s[j] != ']' && j-end < 64 {
			j++
		}
		if j < len(s) && s[j] == ']' {
			if _, err := netip.ParseAddr(trimIPv6Tag(s[end+1 : j])); err == nil {
				return Match{start, j + 1, Email}, true
			}
		}
		return Match{}, false
	}
	labels, labelLen, lastEnd, tldAlpha := 0, 0, end, true
	for end < len(s) {
		c := s[end]
		switch {
		case isAlnum(c) || c == '-':
			labelLen++
			if isDigit(c) {
				tldAlpha = false
			}
			end++
		case c >= 0x80: // IDN label in UTF-8
			r, n := utf8.DecodeRuneInString(s[end:])
			if r == utf8.RuneError || !isIDNRune(r) {
				goto done
			}
			labelLen++
			end += n
		case c == '.' && labelLen > 0:
			labels++
			lastEnd = end
			labelLen = 0
			tldAlpha = true
			end++
		default:
			goto done
		}
	}
done:
	if labelLen > 0 {
		labels++
		lastEnd = end
	} else {
		tldAlpha = tldAlphaOf(s[at+1 : lastEnd])
	}
	if labels < 2 || !tldAlpha {
		return Match{}, false
	}
	return Match{start, lastEnd, Email}, true
}

// tldAlphaOf tells whether the last label of domain has a letter, so that
// user@1.2 is not a mailbox but user@mail.example is.
func tldAlphaOf(domain string) bool {
	for i := len(domain) - 1; i >= 0 && domain[i] != '.'; i-- {
		if !isDigit(domain[i]) {
			return true
		}
	}
	return false
}

func trimIPv6Tag(s string) string {
	if len(s) > 5 && (s[:5] == "IPv6:" || s[:5] == "ipv6:") {
		return s[5:]
	}
	return s
}

// ipv4 checks a dotted quad starting at i.
func ipv4(s string, i int) (Match, bool) {
	j := i
	for part := 0; part < 4; part++ {
		if part > 0 {
			if j >= len(s) || s[j] != '.' {
				return Match{}, false
			}
			j++
		}
		n, digits := 0, 0
		for j < len(s) && isDigit(s[j]) && digits < 4 {
			n = n*10 + int(s[j]-'0')
			digits++
			j++
		}
		if digits == 0 || digits > 3 || n > 255 {
			return Match{}, false
		}
	}
	// Not part of a longer number or dotted run (1.2.3.4.5, 1.2.3.45678).
	if j < len(s) && (isAlnum(s[j]) || (s[j] == '.' && j+1 < len(s) && isDigit(s[j+1]))) {
		return Match{}, false
	}
	if isNetwork(s, j, MaxIPv4Prefix) {
		return Match{}, false
	}
	return Match{i, j, IPv4}, true
}

// ipv6 checks the longest run at i that could be an IPv6 address.
func ipv6(s string, i int) (Match, bool) {
	j, colons := i, 0
	for j < len(s) && j-i < 64 {
		c := s[j]
		if c == ':' {
			colons++
		} else if !isHex(c) && c != '.' {
			break
		}
		j++
	}
	if colons < 2 {
		return Match{}, false
	}
	end := j
	if end < len(s) && s[end] == '%' { // zone
		k := end + 1
		for k < len(s) && (isAlnum(s[k]) || s[k] == '_' || s[k] == '-' || s[k] == '.') && k-end < 32 {
			k++
		}
		if k > end+1 {
			end = k
		}
	}
	// A sentence may end right after the address ("at ::1."): retry
	// without one or two trailing dots or colons.
	for tries := 0; tries < 3 && end-i >= 2; tries++ {
		if a, err := netip.ParseAddr(s[i:end]); err == nil && a.Is6() {
			if end < len(s) && isAlnum(s[end]) || isNetwork(s, end, MaxIPv6Prefix) {
				return Match{}, false
			}
			return Match{i, end, IPv6}, true
		}
		if c := s[end-1]; c != '.' && c != ':' {
			break
		}
		end--
	}
	return Match{}, false
}

// Networks short enough to name many hosts are not personal data: an address
// followed by a prefix length up to these (203.0.113.0/24, 2001:db8::/48) is
// not reported. Longer prefixes narrow it to a few hosts and are.
const (
	MaxIPv4Prefix = 24
	MaxIPv6Prefix = 48
)

// isNetwork tells whether s[j:] starts with "/N", N <= limit, and nothing
// alphanumeric after it.
func isNetwork(s string, j, limit int) bool {
	if j >= len(s) || s[j] != '/' {
		return false
	}
	n, k := 0, j+1
	for k < len(s) && isDigit(s[k]) && k-j <= 3 {
		n = n*10 + int(s[k]-'0')
		k++
	}
	return k > j+1 && n <= limit && (k == len(s) || !isAlnum(s[k]))
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }
func isAlpha(c byte) bool { return c|0x20 >= 'a' && c|0x20 <= 'z' }
func isAlnum(c byte) bool { return isDigit(c) || isAlpha(c) }
func isHex(c byte) bool   { return isDigit(c) || (c|0x20 >= 'a' && c|0x20 <= 'f') }

// isAtext is RFC 5322 atext plus '.', the characters of a dot-atom, and
// UTF-8 bytes (RFC 6531 internationalized local parts).
func isAtext(c byte) bool {
	if isAlnum(c) || c >= 0x80 {
		return true
	}
	switch c {
	case '.', '!', '#', '$', '%', '&', '\'', '*', '+', '/', '=', '?', '^', '_', '`', '{', '|', '}', '~', '-':
		return true
	}
	return false
}

func isIDNRune(r rune) bool {
	return r > 0x7f && r != 0xa0 && r != 0x2028 && r != 0x2029 && r != 0xfeff && !(r >= 0x2000 && r <= 0x200f) && r != 0x3000
}

// Replace appends s to dst with every address replaced by what repl
// appends for it, and counts the replacements by kind. Replacement can join
// leftovers into a new address (a@b.c@d.org): Replace rescans what it
// wrote, redacts again if needed, and after maxPasses gives up on the text
// and writes Unreadable instead, so its result never holds an address.
func Replace(dst []byte, s string, repl func(dst []byte, m Match, addr string) []byte, counts *[4]int) []byte {
	base := len(dst)
	cur := s
	for pass := 0; pass < maxPasses; pass++ {
		dst = dst[:base]
		m, ok := Find(cur, 0)
		if !ok {
			return append(dst, cur...)
		}
		last := 0
		for ok {
			dst = append(dst, cur[last:m.Start]...)
			dst = repl(dst, m, cur[m.Start:m.End])
			if counts != nil {
				counts[m.Kind]++
			}
			last = m.End
			m, ok = Find(cur, last)
		}
		dst = append(dst, cur[last:]...)
		// A read-only view of what was written: nothing changes dst while
		// Contains looks at it.
		written := unsafe.String(unsafe.SliceData(dst[base:]), len(dst)-base)
		if !Contains(written) {
			return dst
		}
		cur = string(dst[base:]) // rare: redact the redacted text again
	}
	return append(dst[:base], Unreadable...)
}

const maxPasses = 3

// Unreadable replaces a text that kept yielding addresses after redaction.
const Unreadable = "[redacted]"
