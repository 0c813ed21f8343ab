package rollupfwd

import (
	"fmt"
	"strings"

	"github.com/influxdata/telegraf"

	"github.com/mailtick/mailtick/internal/pii"
)

// guard is the last line before the WAN: only allowed keys, and no string
// that holds an e-mail or IP address. It asks the project's detector and,
// independently of it, a deliberately cruder check (suspect), so that a bug
// in the detector fails closed here instead of leaking centrally.
func (r *RollupFwd) guard(m telegraf.Metric) (reason, detail string) {
	for _, t := range m.TagList() {
		if !r.allowTags[t.Key] {
			return "tag_not_allowed", fmt.Sprintf("tag %q is not in allow_tags", t.Key)
		}
		if reason := unsafeText(t.Value); reason != "" {
			return reason, fmt.Sprintf("tag %q holds what looks like an e-mail or IP address", t.Key)
		}
	}
	for _, f := range m.FieldList() {
		if !r.allowFields[f.Key] {
			return "field_not_allowed", fmt.Sprintf("field %q is not in allow_fields", f.Key)
		}
		if s, ok := f.Value.(string); ok {
			if reason := unsafeText(s); reason != "" {
				return reason, fmt.Sprintf("field %q holds what looks like an e-mail or IP address", f.Key)
			}
		}
	}
	return "", ""
}

// unsafeText returns "pii" when the detector finds an address in s,
// "pii_suspect" when only the crude check does, "" when neither does.
func unsafeText(s string) string {
	if pii.Contains(s) {
		return "pii"
	}
	if suspect(s) {
		return "pii_suspect"
	}
	return ""
}

// suspect is the guard's own check, written apart from internal/pii and
// stricter than it: an at-sign, plain or encoded, with a word character
// before it and a word character or '[' after it; four dot-separated digit
// runs; a run of hex digits and colons with two colons or more and a digit.
// It refuses versions, clock times and MAC addresses too: what central
// rollups carry (names, pseudonyms, numbers) holds none of these.
func suspect(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '@' || c == '%' || c == '&' || c == '\\' || c == 0xEF:
			if n := atSign(s[i:]); n > 0 && i > 0 && isWord(s[i-1]) && i+n < len(s) && (isWord(s[i+n]) || s[i+n] == '[') {
				return true
			}
		case c >= '0' && c <= '9' && (i == 0 || !isWord(s[i-1])):
			if n := guardDottedQuad(s[i:]); n > 0 && !strings.HasSuffix(s[i:i+n], ".0") || n > 0 && !isPrefixLen(s[i+n:], 24) {
				return true
			}
		}
		if (isHexDigit(c) || c == ':') && (i == 0 || !(isHexDigit(s[i-1]) || s[i-1] == ':')) {
			if n := hexColonRun(s[i:]); n > 0 && (!strings.HasSuffix(s[i:i+n], "::") || !isPrefixLen(s[i+n:], 48)) {
				return true
			}
		}
	}
	return false
}

// atSign returns the length of an at-sign at the start of s, plain or in
// any encoding seen in mail text, 0 if none.
func atSign(s string) int {
	lower := strings.ToLower(s[:min(len(s), 12)])
	for _, form := range [...]string{"@", "%40", "%2540", "%252540", "&#64;", "&#064;", "&#x40;", "&commat;", `\u0040`, `\x40`, "\uff20", "\ufe6b"} {
		if strings.HasPrefix(lower, form) {
			return len(form)
		}
	}
	return 0
}

// isPrefixLen tells whether s starts with "/N", N <= limit: what follows
// the networks piiscrub writes (203.0.113.0/24, 2001:db8:1::/48).
func isPrefixLen(s string, limit int) bool {
	if len(s) < 2 || s[0] != '/' {
		return false
	}
	n, j := 0, 1
	for j < len(s) && j < 4 && s[j] >= '0' && s[j] <= '9' {
		n = n*10 + int(s[j]-'0')
		j++
	}
	return j > 1 && n <= limit && (j == len(s) || !isWord(s[j]))
}

// guardDottedQuad returns the length of four dot-separated runs of 1 to 3
// digits at the start of s, whatever their values, or 0. It is the guard's
// independent second check, written apart from piiscrub's dottedQuad and
// internal/pii on purpose and looser than them (no value limits): a bug
// in the detector must not be a bug of the guard too. Do not merge them.
func guardDottedQuad(s string) int {
	j := 0
	for part := 0; part < 4; part++ {
		if part > 0 {
			if j >= len(s) || s[j] != '.' {
				return 0
			}
			j++
		}
		k := j
		for j < len(s) && j-k < 4 && s[j] >= '0' && s[j] <= '9' {
			j++
		}
		if j == k || j-k > 3 {
			return 0
		}
	}
	return j
}

// hexColonRun returns the length of a run of hex digits, dots and colons
// at the start of s holding two colons or more and a decimal digit or a
// "::", or 0.
func hexColonRun(s string) int {
	colons, digit, j := 0, false, 0
	for ; j < len(s) && (isHexDigit(s[j]) || s[j] == ':' || s[j] == '.'); j++ {
		if s[j] == ':' {
			colons++
			if j > 0 && s[j-1] == ':' {
				digit = true
			}
		}
		digit = digit || (s[j] >= '0' && s[j] <= '9')
	}
	if colons >= 2 && digit {
		return j
	}
	return 0
}

func isWord(c byte) bool {
	return c >= '0' && c <= '9' || c|0x20 >= 'a' && c|0x20 <= 'z' || c == '_' || c >= 0x80
}

func isHexDigit(c byte) bool {
	return c >= '0' && c <= '9' || c|0x20 >= 'a' && c|0x20 <= 'f'
}
