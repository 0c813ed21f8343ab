// Package piitest holds what tests of the PII path share: a corpus of mail
// text from public sources with the addresses each holds, and a reference
// scan written apart from internal/pii, to check it against.
package piitest

import (
	_ "embed"
	"encoding/json"
	"regexp"
	"strings"
)

// Case is one text and the strings that must not survive its redaction.
type Case struct {
	Source  string   `json:"source"`
	Text    string   `json:"text"`
	Secrets []string `json:"secrets"`
}

//go:embed mailtext.json
var corpus []byte

// Corpus returns the mail-text corpus.
func Corpus() []Case {
	var cases []Case
	if err := json.Unmarshal(corpus, &cases); err != nil {
		panic("piitest: mailtext.json: " + err.Error())
	}
	return cases
}

// Leftover returns the first secret that s still holds, compared without
// case, or "".
func Leftover(s string, secrets []string) string {
	ls := strings.ToLower(s)
	for _, sec := range secrets {
		if strings.Contains(ls, strings.ToLower(sec)) {
			return sec
		}
	}
	return ""
}

// reference is a broad scan with regular expressions: anything shaped like
// a mailbox (plain or encoded at-sign) or an IPv4 or IPv6 address, valid or
// not. It over-reports on purpose.
var reference = regexp.MustCompile(`(?i)` +
	`[\p{L}\p{N}._%+'-]+(?:@|%40|%2540|&#0?64;|&#x40;|\\u0040|＠)\[?[\p{L}\p{N}-]+(?:[.:][\p{L}\p{N}-]+)+` +
	`|\b\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3}\b` +
	`|\b[0-9a-f]{1,4}(?::[0-9a-f]{0,4}){2,7}\b` +
	`|::[0-9a-f]{1,4}\b`)

// ReferenceScan returns what the broad scan finds in s.
func ReferenceScan(s string) []string {
	return reference.FindAllString(s, -1)
}
