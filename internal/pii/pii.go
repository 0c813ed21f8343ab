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
//     (user@[192.0.2.1]), or an IPv6 address without brackets
//     (user@2001:db8::9, as ssh and IMAP logs write it); quoted local
//     parts with escapes ("ivy\"q"@example.org); with or without
//     <angle brackets> around;
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
	"strings"
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

// Match is one address found in a text: s[Start:End]. For an e-mail,
// s[At:AtEnd] is its at-sign, which may be encoded (%40, &#64;, ＠ ...).
type Match struct {
	Start, End int
	Kind       Kind
	At, AtEnd  int
}

// Find returns the first address in s at or after from, or ok=false.
func Find(s string, from int) (m Match, ok bool) {
	for i := from; i < len(s); i++ {
		c := s[i]
		switch byteClass[c] &^ clWord {
		case clAt:
			if m, ok := email(s, i, i+1, from); ok {
				return m, true
			}
		case clEncoded:
			if n := encodedAt(s, i); n > 0 {
				if m, ok := email(s, i, i+n, from); ok {
					return m, true
				}
			}
		case clDigit:
			if i > 0 && (isAlnum(s[i-1]) || s[i-1] == '.') {
				break
			}
			switch v4, v6 := ipStart(s, i); {
			case v4:
				if m, ok := ipv4(s, i); ok {
					// An e-mail may start with the digits: prefer it.
					if e, eok := emailAround(s, m.End, from); eok && e.Start <= i {
						return e, true
					}
					return m, true
				}
			case v6:
				if m, ok := ipv6(s, i); ok {
					return m, true
				}
			}
		case clHexColon:
			// Inside a word or a dotted run no address starts; right after
			// a colon one may ("[IPv6:fd00::17]", "ip:fd00::beef").
			if i > 0 && (isAlnum(s[i-1]) || s[i-1] == '.' || (s[i-1] == ':' && c == ':')) {
				break
			}
			if _, v6 := ipStart(s, i); !v6 { // a word: most are
				break
			}
			if m, ok := ipv6(s, i); ok {
				return m, true
			}
		}
		// No address starts inside a word (the cases above skip a letter
		// or digit after another): go to the word's end.
		if byteClass[c]&clWord != 0 {
			for i+1 < len(s) && byteClass[s[i+1]]&clWord != 0 {
				i++
			}
		}
	}
	return Match{}, false
}

// ipStart tells whether an IPv4 address (1-3 digits and a dot) or an IPv6
// address (at most 4 hex digits and a colon: net/netip reads a dot only
// after a colon, in a trailing IPv4 part) may start at s[i]. Most numbers
// (codes, sizes, times) and words beginning with a-f can be neither, and
// Find goes past them without trying either.
func ipStart(s string, i int) (v4, v6 bool) {
	j, decimal := i, true
	for j < len(s) && j-i < 5 && isHex(s[j]) {
		decimal = decimal && isDigit(s[j])
		j++
	}
	if j == len(s) {
		return false, false
	}
	switch s[j] {
	case '.':
		return decimal && j > i && j-i <= 3, false
	case ':':
		return false, true
	}
	return false, false
}

// What a byte may begin or hinge on, for Find, and whether it is a letter
// or digit (clWord, a flag).
const (
	clNone     = iota
	clAt       // '@'
	clEncoded  // the first byte of an encoded at-sign: % & \ and UTF-8 0xEF
	clDigit    // an IPv4 or IPv6 address
	clHexColon // an IPv6 address
	clWord     = 0x80
)

var byteClass = func() (t [256]uint8) {
	t['@'] = clAt
	t['%'], t['&'], t['\\'], t[0xEF] = clEncoded, clEncoded, clEncoded, clEncoded
	for c := '0'; c <= '9'; c++ {
		t[c] = clDigit
	}
	for c := 'a'; c <= 'f'; c++ {
		t[c], t[c-'a'+'A'] = clHexColon, clHexColon
	}
	t[':'] = clHexColon
	for c := range t {
		if isAlnum(byte(c)) {
			t[c] |= clWord
		}
	}
	return t
}()

// encodedAt returns the length of an encoded at-sign at s[i:], 0 if none:
// percent-encoded (%40, and %2540 ... encoded again), an HTML character
// reference (&#64;, &#x40;), a JSON or C escape (\u0040, \x40), or the
// fullwidth and small commercial at (＠, ﹫). Tracking and unsubscribe URLs
// and JSON text carry addresses in these forms.
func encodedAt(s string, i int) int {
	rest := s[i:]
	switch rest[0] {
	case '%':
		j := 1
		for strings.HasPrefix(rest[j:], "25") { // %25 is '%': encoded again
			j += 2
		}
		if strings.HasPrefix(rest[j:], "40") {
			return j + 2
		}
	case '&':
		for _, e := range [...]string{"&#64;", "&#064;", "&#x40;", "&#X40;", "&commat;"} {
			if len(rest) >= len(e) && strings.EqualFold(rest[:len(e)], e) {
				return len(e)
			}
		}
	case '\\':
		for _, e := range [...]string{`\u0040`, `\x40`} {
			if strings.HasPrefix(rest, e) {
				return len(e)
			}
		}
	case 0xEF:
		if strings.HasPrefix(rest, "\uFF20") || strings.HasPrefix(rest, "\uFE6B") {
			return 3
		}
	}
	return 0
}

// Contains tells whether s holds an e-mail or IP address.
func Contains(s string) bool {
	_, ok := Find(s, 0)
	return ok
}

// emailAround finds an e-mail whose at-sign comes at or after i, before
// the next character that cannot be in a local part.
func emailAround(s string, i, from int) (Match, bool) {
	for j := i; j < len(s) && j < i+256; j++ {
		if s[j] == '@' {
			return email(s, j, j+1, from)
		}
		if n := encodedAt(s, j); n > 0 {
			return email(s, j, j+n, from)
		}
		if !isAtext(s[j]) {
			break
		}
	}
	return Match{}, false
}

// email checks the mailbox around the at-sign s[at:atEnd]. Its local part
// does not reach back before from (the end of the previous address).
func email(s string, at, atEnd, from int) (Match, bool) {
	start, ok := localPart(s, at, from)
	if !ok {
		return Match{}, false
	}
	// Domain, forwards.
	end := atEnd
	if end < len(s) && s[end] == '[' { // user@[192.0.2.1]
		j := end + 1
		for j < len(s) && s[j] != ']' && j-end < 64 {
			j++
		}
		if j < len(s) && s[j] == ']' {
			if _, err := netip.ParseAddr(trimIPv6Tag(s[end+1 : j])); err == nil {
				return Match{Start: start, End: j + 1, Kind: Email, At: at, AtEnd: atEnd}, true
			}
		}
		return Match{}, false
	}
	if m, ok := ipv6Domain(s, end); ok { // wanda@2001:db8::9, as ssh and IMAP logs write it
		return Match{Start: start, End: m.End, Kind: Email, At: at, AtEnd: atEnd}, true
	}
	labels, labelLen, lastEnd, letter, tldLetter := 0, 0, end, false, false
	for end < len(s) {
		c := s[end]
		switch {
		case isAlnum(c) || c == '-':
			labelLen++
			letter = letter || isAlpha(c)
			end++
		case c >= 0x80: // IDN label in UTF-8
			r, n := utf8.DecodeRuneInString(s[end:])
			if r == utf8.RuneError || !isIDNRune(r) {
				goto done
			}
			labelLen++
			letter = true
			end += n
		case c == '.' && labelLen > 0:
			labels++
			lastEnd = end
			tldLetter, letter, labelLen = letter, false, 0
			end++
		default:
			goto done
		}
	}
done:
	if labelLen > 0 {
		labels++
		lastEnd = end
		tldLetter = letter
	}
	if labels < 2 {
		return Match{}, false
	}
	if !tldLetter {
		// A bare IPv4 domain (lou@203.0.113.12) is a mailbox too; other
		// all-digit top labels (user@1.2) are not.
		if a, err := netip.ParseAddr(s[atEnd:lastEnd]); err != nil || !a.Is4() {
			return Match{}, false
		}
	}
	return Match{Start: start, End: lastEnd, Kind: Email, At: at, AtEnd: atEnd}, true
}

// localPart returns where the local part before s[at] starts. It is a
// quoted string, or a run of atext cut after the last separator that lists
// and URLs put between an address and what comes before it (= & ? / |, and
// percent-encoded characters that cannot stand in a dot-atom): in
// "rcpts=a@x.org|b@x.org" and "?to=b%40x.org" the address is "b@x.org".
func localPart(s string, at, from int) (int, bool) {
	if at > from && s[at-1] == '"' {
		return quotedStart(s, at, from)
	}
	start := at
	for start > from && isAtext(s[start-1]) {
		start--
		if c := s[start]; c == '=' || c == '&' || c == '?' || c == '/' || c == '|' {
			start++
			break
		}
		if s[start] == '%' && start+2 < at && isHex(s[start+1]) && isHex(s[start+2]) {
			if d := unhex(s[start+1])<<4 | unhex(s[start+2]); !isAtext(d) || isSeparator(d) {
				start += 3
				break
			}
		}
	}
	for start < at && s[start] == '.' { // a local part does not start with a dot
		start++
	}
	if start == at || s[at-1] == '.' {
		return 0, false
	}
	return start, true
}

// quotedStart returns where the quoted local part closed by s[at-1]
// starts: at the nearest quote before it that no backslash escapes
// ("ivy\"q"@x.org is one mailbox, RFC 5321 quoted-pairSMTP). Text escaped
// once more (JSON: \"ivy\\\"q\"@x.org) may have no such quote: then the
// farthest quote. Within maxQuoted bytes and one line, so that a text of
// many escaped quotes and at-signs costs linear time.
func quotedStart(s string, at, from int) (int, bool) {
	farthest, lo := -1, max(from, at-maxQuoted)
	for j := at - 2; j >= lo && s[j] != '\n'; j-- {
		if s[j] != '"' {
			continue
		}
		k := j
		for k > lo && s[k-1] == '\\' {
			k--
		}
		if (j-k)%2 == 0 {
			return j, j < at-2 // "" is no local part
		}
		farthest = j
	}
	return farthest, farthest >= 0
}

// maxQuoted bounds a quoted local part: RFC 5321 allows 64 octets; this
// leaves room for escapes, escaped again.
const maxQuoted = 1024

func isSeparator(c byte) bool {
	return c == '=' || c == '&' || c == '?' || c == '/' || c == '|' || c == '%'
}

func unhex(c byte) byte {
	switch {
	case c >= '0' && c <= '9':
		return c - '0'
	case c|0x20 >= 'a' && c|0x20 <= 'f':
		return c | 0x20 - 'a' + 10
	}
	return 0
}

// ipv6Domain finds an unbracketed IPv6 address (after an optional "IPv6:"
// tag) at s[i:], the domain of a mailbox.
func ipv6Domain(s string, i int) (Match, bool) {
	if len(s)-i > 5 && strings.EqualFold(s[i:i+5], "IPv6:") {
		i += 5
	}
	if _, v6 := ipStart(s, i); !v6 {
		return Match{}, false
	}
	return ipv6(s, i)
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
	var oct [4]byte
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
		oct[part] = byte(n)
	}
	// Not part of a longer number or dotted run (1.2.3.4.5, 1.2.3.45678).
	if j < len(s) && (isAlnum(s[j]) || (s[j] == '.' && j+1 < len(s) && isDigit(s[j+1]))) {
		return Match{}, false
	}
	if isNetwork(s, j, netip.AddrFrom4(oct), MaxIPv4Prefix) {
		return Match{}, false
	}
	return Match{Start: i, End: j, Kind: IPv4}, true
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
			if end < len(s) && isAlnum(s[end]) || isNetwork(s, end, a, MaxIPv6Prefix) {
				return Match{}, false
			}
			return Match{Start: i, End: end, Kind: IPv6}, true
		}
		if c := s[end-1]; c != '.' && c != ':' {
			break
		}
		end--
	}
	return Match{}, false
}

// Networks short enough to name many hosts are not personal data: a
// network address followed by a prefix length up to these (203.0.113.0/24,
// 2001:db8::/48) is not reported. Longer prefixes narrow it to a few hosts
// and are; so is a host address with a prefix (inet 203.0.113.45/24 is the
// host .45, not a network).
const (
	MaxIPv4Prefix = 24
	MaxIPv6Prefix = 48
)

// isNetwork tells whether s[j:] starts with "/N", N <= limit, nothing
// alphanumeric after it, and a's bits past N all zero.
func isNetwork(s string, j int, a netip.Addr, limit int) bool {
	if j >= len(s) || s[j] != '/' {
		return false
	}
	n, k := 0, j+1
	for k < len(s) && isDigit(s[k]) && k-j <= 3 {
		n = n*10 + int(s[k]-'0')
		k++
	}
	if k == j+1 || n > limit || (k < len(s) && isAlnum(s[k])) {
		return false
	}
	p, err := a.WithZone("").Prefix(n)
	return err == nil && p.Addr() == a.WithZone("")
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
// appends for it (repl gets the match and the text it indexes into), and counts the replacements by kind. Replacement can join
// leftovers into a new address (a@b.c@d.org): Replace rescans what it
// wrote, redacts again if needed, and after maxPasses gives up on the text
// and writes Unreadable instead, so its result never holds an address.
func Replace(dst []byte, s string, repl func(dst []byte, m Match, text string) []byte, counts *[4]int) []byte {
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
			dst = repl(dst, m, cur)
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

// Canonical appends the form of the address s[m.Start:m.End] that
// pseudonyms are made of, so that one address has one pseudonym wherever it
// stands and however it is written: an e-mail with its at-sign decoded, its
// local part percent-decoded, its domain in lower case, and with foldLocal
// its local part too (mailbox names are case-insensitive in practice, and
// RFC 5321 leaves it to the receiving host); an IP address as net/netip
// writes it, without zone, IPv4-mapped IPv6 as IPv4.
func Canonical(dst []byte, s string, m Match, foldLocal bool) []byte {
	if m.Kind != Email {
		a, err := netip.ParseAddr(s[m.Start:m.End])
		if err != nil {
			return append(dst, s[m.Start:m.End]...)
		}
		return a.WithZone("").Unmap().AppendTo(dst)
	}
	local := s[m.Start:m.At]
	for i := 0; i < len(local); i++ {
		c := local[i]
		if c == '%' && i+2 < len(local) && isHex(local[i+1]) && isHex(local[i+2]) {
			c = unhex(local[i+1])<<4 | unhex(local[i+2])
			i += 2
		}
		if foldLocal {
			c = lower(c)
		}
		dst = append(dst, c)
	}
	if foldLocal && hasNonASCII(local) {
		// Rare: fold an internationalized local part rune by rune.
		n := len(dst) - len(local)
		dst = append(dst[:n], strings.ToLower(string(dst[n:]))...)
	}
	dst = append(dst, '@')
	domain := s[m.AtEnd:m.End]
	if hasNonASCII(domain) {
		return append(dst, strings.ToLower(domain)...)
	}
	for i := 0; i < len(domain); i++ {
		dst = append(dst, lower(domain[i]))
	}
	return dst
}

// Plain returns where the address is in s when s is one e-mail address
// already in its canonical form, maybe in angle brackets: a local part of
// lower-case letters, digits and . _ + - (no dot first, last or twice in a
// row), and a domain of two or more labels of lower-case letters, digits
// and hyphens, the last with a letter. Most addresses in mail events are;
// for them Whole finds exactly s[start:end], and Canonical returns it
// unchanged, folding or not (FuzzPlain holds the three to it), so that a
// caller may skip both. ok=false says nothing about s: ask Whole.
func Plain(s string) (start, end int, ok bool) {
	start, end = 0, len(s)
	if end >= 2 && s[0] == '<' && s[end-1] == '>' {
		start, end = 1, end-1
	}
	i := start
	for ; i < end; i++ { // the local part, up to the at-sign
		switch plainClass[s[i]] {
		case plLetter, plDigit, plLocal:
		case plDot:
			if i == start || s[i-1] == '.' {
				return 0, 0, false
			}
		default:
			goto at
		}
	}
at:
	if i == start || i == end || s[i] != '@' || s[i-1] == '.' {
		return 0, 0, false
	}
	label, dots, letter := i+1, 0, false // where the label starts; its letter
	for i++; i < end; i++ {
		switch plainClass[s[i]] {
		case plLetter:
			letter = true
		case plDigit:
		case plDot:
			if i == label { // empty: a dot first, last or twice in a row
				return 0, 0, false
			}
			label, dots, letter = i+1, dots+1, false
		default:
			return 0, 0, false
		}
	}
	if dots == 0 || i == label || !letter {
		return 0, 0, false
	}
	return start, end, true
}

// The bytes of a plain address, for Plain.
const (
	plNone   = iota
	plLetter // a-z
	plDigit  // 0-9 and '-'
	plLocal  // '_' and '+': in the local part only
	plDot
)

var plainClass = func() (t [256]uint8) {
	for c := 'a'; c <= 'z'; c++ {
		t[c] = plLetter
	}
	for c := '0'; c <= '9'; c++ {
		t[c] = plDigit
	}
	t['-'], t['_'], t['+'], t['.'] = plDigit, plLocal, plLocal, plDot
	return t
}()

// Whole returns the address that is all of s but for white space and angle
// brackets around it ("<Bob@Example.org>"), or ok=false.
func Whole(s string) (Match, bool) {
	start, end := 0, len(s)
	for start < end && (s[start] == ' ' || s[start] == '\t' || s[start] == '<') {
		start++
	}
	for end > start && (s[end-1] == ' ' || s[end-1] == '\t' || s[end-1] == '>') {
		end--
	}
	m, ok := Find(s[:end], start)
	if !ok || m.Start != start || m.End != end {
		return Match{}, false
	}
	return m, true
}

func lower(c byte) byte {
	if c >= 'A' && c <= 'Z' {
		return c + 'a' - 'A'
	}
	return c
}

func hasNonASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return true
		}
	}
	return false
}

// SafeCut returns where to cut s to at most n bytes without leaving part
// of an address at the end: before the token the cut falls in, a token
// being a run of bytes other than white space and < > " ( ) , ;.
func SafeCut(s string, n int) int {
	if n >= len(s) {
		return len(s)
	}
	for n > 0 && !isTokenEnd(s[n-1]) {
		n--
	}
	return n
}

func isTokenEnd(c byte) bool {
	switch c {
	case ' ', '\t', '\n', '\r', '<', '>', '"', '(', ')', ',', ';':
		return true
	}
	return false
}
