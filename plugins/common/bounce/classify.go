// Package bounce classifies why mail was not delivered into a fixed set
// of reasons: Sisimai's taxonomy (https://libsisimai.org), the field's
// reference, so that figures compare with other tools' and the reasons
// mean what Sisimai documents. The facts (which enhanced status code,
// which reply text, which remote host's convention means what) are
// Sisimai's tables, extracted by scripts/sisimai-tables.py into
// sisimai_tables.go; the classifier that applies them, and the providers'
// own classifications (providers.go), are ours. It is tested against
// Sisimai's own test expectations (testdata/sisimai) and the providers'
// published samples.
package bounce

import (
	"maps"
	"slices"
	"strconv"
	"strings"
)

// The reasons, as Sisimai names them.
const (
	AuthFailure     = "authfailure"     // SPF, DKIM or DMARC failed
	BadReputation   = "badreputation"   // the sending IP address's reputation
	Blocked         = "blocked"         // the client's address or host name is blocked
	ContentError    = "contenterror"    // the message's format or content
	Delivered       = "delivered"       // a 2.X.X status: not a failure after all
	ExceedLimit     = "exceedlimit"     // the message exceeds a limit of the mailbox
	Expired         = "expired"         // delivery time expired
	FailedSTARTTLS  = "failedstarttls"  // STARTTLS failed or is required
	Feedback        = "feedback"        // a complaint (a feedback loop's spam report)
	Filtered        = "filtered"        // refused after DATA by the recipient's filter
	HasMoved        = "hasmoved"        // the mailbox moved, no forwarding
	HostUnknown     = "hostunknown"     // the recipient's domain does not exist
	MailboxFull     = "mailboxfull"     // the recipient's mailbox is full
	MailerError     = "mailererror"     // a local delivery program failed
	MesgTooBig      = "mesgtoobig"      // the message is too big
	NetworkError    = "networkerror"    // DNS or network failure
	NoRelaying      = "norelaying"      // relaying denied
	NotAccept       = "notaccept"       // the host accepts no mail (null MX)
	NotCompliantRFC = "notcompliantrfc" // the message does not comply with the RFCs
	OnHold          = "onhold"          // a reply no rule classifies
	PolicyViolation = "policyviolation" // the recipient's policy
	Rejected        = "rejected"        // the sender's address was refused
	RequirePTR      = "requireptr"      // no or bad reverse DNS of the sending IP
	SecurityError   = "securityerror"   // a security check failed
	SpamDetected    = "spamdetected"    // the recipient's spam filter
	Speeding        = "speeding"        // a rate limit: sending too fast
	Suppressed      = "suppressed"      // on a suppression list, not sent
	Suspend         = "suspend"         // the recipient's account is suspended
	SyntaxError     = "syntaxerror"     // an SMTP command's syntax
	SystemError     = "systemerror"     // the remote host's own error
	SystemFull      = "systemfull"      // the remote host's disk is full
	TooManyConn     = "toomanyconn"     // too many connections
	Undefined       = "undefined"       // nothing to classify by
	UserUnknown     = "userunknown"     // the recipient does not exist
	Vacation        = "vacation"        // an auto-reply
	VirusDetected   = "virusdetected"   // a virus scanner
)

// Reasons lists every reason Classify returns.
var Reasons = []string{
	AuthFailure, BadReputation, Blocked, ContentError, Delivered, ExceedLimit, Expired, FailedSTARTTLS, Feedback,
	Filtered, HasMoved, HostUnknown, MailboxFull, MailerError, MesgTooBig, NetworkError, NoRelaying,
	NotAccept, NotCompliantRFC, OnHold, PolicyViolation, Rejected, RequirePTR, SecurityError,
	SpamDetected, Speeding, Suppressed, Suspend, SyntaxError, SystemError, SystemFull, TooManyConn,
	Undefined, UserUnknown, Vacation, VirusDetected,
}

// Unclassified reports whether a reason says no rule applied: OnHold (a
// reply nothing matched) or Undefined (no reply at all).
func Unclassified(reason string) bool { return reason == OnHold || reason == Undefined }

// Input is what an event tells of its failure.
type Input struct {
	Event         string // bounced, deferred, rejected, failed, expired, complained...
	Provider      string // the sending provider (a preset's mailer: ses, sparkpost...), if any
	Code          int    // the SMTP reply code (550), 0 if unknown
	Status        string // the enhanced status code (5.1.1), if known
	Text          string // the reply or diagnostic text
	RemoteHost    string // the host that replied (the relay), if known
	BounceType    string // the provider's bounce type (SES bounceType, Postmark Type, Mandrill bounce_description)
	BounceSubType string // SES bounceSubType
	BounceClass   int    // SparkPost bounce_class
	Reason        string // the provider's reason (Mailgun)
}

// retried are the reasons a status code gives that a reply's text may
// make more precise (Sisimai's Retry()).
var retried = map[string]bool{
	Undefined: true, OnHold: true, SystemError: true, SecurityError: true,
	Expired: true, NetworkError: true, HostUnknown: true, UserUnknown: true,
}

// The orders in which reasons' messages are tried (Sisimai's ClassOrder):
// first where the status code or the text decides, then as a fallback.
var (
	firstOrder = []string{
		MailboxFull, MesgTooBig, ExceedLimit, Suspend, HasMoved, NoRelaying, AuthFailure,
		UserUnknown, Filtered, RequirePTR, NotCompliantRFC, BadReputation, ContentError,
		Rejected, HostUnknown, SpamDetected, Speeding, TooManyConn, Blocked,
	}
	fallbackOrder = []string{
		MailboxFull, AuthFailure, BadReputation, Speeding, SpamDetected, VirusDetected,
		PolicyViolation, NoRelaying, SystemError, NetworkError, Suspend, ContentError,
		SystemFull, NotAccept, Expired, FailedSTARTTLS, SecurityError, Suppressed, MailerError,
	}
	// notUserUnknown: a 5.1.1 whose text says one of these is that one.
	notUserUnknown = []string{NoRelaying, Blocked, MailboxFull, HasMoved, Rejected, NotAccept}
	// beforeData are the commands of the envelope: a refusal there is not
	// the content's.
	beforeData = []string{"CONN", "EHLO", "HELO", "MAIL", "RCPT"}
)

// fact is what a reply says, as the probes read it.
type fact struct {
	byStatus string // the status code's reason ("" if none)
	status   string
	code     int
	text     string // lower-case
	command  string // the SMTP command replied to (RCPT, DATA...), if the text says
	reasons  uint64 // the reasons whose message strings the text holds (reasonBit)
}

// probe reports whether the reply is reason r, as Sisimai's ProbesInto
// decide (reason/why-*.go): by the status code, by the text, and by
// which command was refused.
func (f fact) probe(r string) bool {
	switch r {
	case MesgTooBig:
		if f.byStatus == MesgTooBig {
			return true
		}
		if f.byStatus == ExceedLimit || f.status == "5.2.3" {
			return false
		}
		return f.match(r)
	case Suspend:
		return f.code == 525 || f.match(r)
	case HasMoved, NotCompliantRFC, BadReputation, Speeding:
		return f.match(r)
	case NoRelaying:
		return !slices.Contains([]string{"CONN", "EHLO", "HELO"}, f.command) && f.match(r)
	case UserUnknown:
		if f.byStatus == Suspend {
			return false
		}
		if f.byStatus == UserUnknown {
			return !f.matchAny(notUserUnknown)
		}
		return (f.command == "RCPT" || f.command == "") && f.match(r)
	case Filtered:
		if f.byStatus == Suspend {
			return false
		}
		if f.byStatus == Filtered {
			return f.match(UserUnknown) || f.match(Filtered)
		}
		if slices.Contains(beforeData, f.command) {
			return false
		}
		return f.match(Filtered) || f.match(UserUnknown) && f.command != ""
	case ContentError:
		if f.probe(SpamDetected) {
			return false
		}
		return f.byStatus == r || f.match(r)
	case Rejected:
		if f.byStatus == Rejected {
			return true
		}
		switch {
		case f.command == "MAIL":
			return f.match(r)
		case f.command == "DATA":
			return f.byStatus != UserUnknown && f.match(r)
		case f.byStatus == "" || f.byStatus == SecurityError || f.byStatus == SystemError:
			return f.match(r)
		}
		return false
	case HostUnknown:
		if f.byStatus == HostUnknown {
			return !f.match(NetworkError)
		}
		return f.match(r)
	case SpamDetected:
		if f.status == "" {
			return false
		}
		if f.byStatus == r {
			return true
		}
		return !slices.Contains(beforeData, f.command) && f.match(r)
	}
	return f.byStatus == r || f.match(r)
}

// commandOf is the SMTP command a reply answered, as MTAs write it:
// Postfix's "(in reply to RCPT TO command)", "in reply to end of DATA
// command", Exim's "SMTP error from remote mail server after RCPT TO:",
// qmail's ">>> DATA"; "" if the text does not say.
func commandOf(text string) string {
	for _, lead := range []string{"in reply to ", "after ", ">>> "} {
		for rest := text; ; {
			i := strings.Index(rest, lead)
			if i < 0 {
				break
			}
			rest = strings.TrimPrefix(rest[i+len(lead):], "end of ")
			for _, c := range []string{"rcpt", "mail", "data", "ehlo", "helo", "starttls"} {
				if strings.HasPrefix(rest, c) && (len(rest) == len(c) || !isLetter(rest[len(c)])) {
					return strings.ToUpper(c)
				}
			}
		}
	}
	return ""
}

func isLetter(c byte) bool { return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' }

// Classify returns the reason of a failed delivery: the provider's own
// classification where it is precise, else the remote host's conventions
// (Gmail's, Microsoft's, Yahoo's... published replies), else the reply's
// text and enhanced status code, as Sisimai weighs them. A reply nothing
// matches is OnHold; no reply at all, Undefined.
func Classify(in Input) string {
	switch in.Event {
	case "complained":
		return Feedback
	}
	if r := fromProvider(in); r != "" {
		return r
	}
	text := strings.ToLower(strings.Join(strings.Fields(in.Text), " "))
	status := statusIn(in.Status)
	if status == "" {
		status = statusIn(text)
	}
	code := in.Code
	if code == 0 {
		code = codeIn(text)
	}
	if r := remote(in.RemoteHost, code, status, text); r != "" {
		return r
	}
	if strings.HasPrefix(status, "2.") {
		return Delivered
	}
	f := fact{byStatus: statusReasons[status], status: status, code: code, text: text, command: commandOf(text), reasons: reasonsOf(patterns.find(text))}
	for _, r := range firstOrder {
		if f.probe(r) {
			return r
		}
	}
	byStatus := f.byStatus
	if byStatus == "" || retried[byStatus] {
		for _, r := range fallbackOrder {
			if f.match(r) {
				return r
			}
		}
	}
	if byStatus != "" && byStatus != "delivered" {
		return byStatus
	}
	switch {
	case strings.HasPrefix(status, "5.6") || strings.HasPrefix(status, "4.6"):
		return ContentError
	case strings.HasPrefix(status, "5.7") || strings.HasPrefix(status, "4.7"):
		return SecurityError
	case in.Event == "expired":
		return Expired
	case f.match(Vacation):
		return Vacation
	case text != "" || code != 0 || status != "":
		return OnHold
	}
	return Undefined
}

// statusIn is the first enhanced status code in s (RFC 3463: class 2, 4
// or 5, subject and detail of 1 to 3 digits, not part of a longer number
// or version: "#5.1.1", "550 5.1.1 (bad)", not "1.5.1.1"), or "".
func statusIn(s string) string {
	for i := 0; i+5 <= len(s); i++ {
		if c := s[i]; c != '2' && c != '4' && c != '5' || i > 0 && (isDigit(s[i-1]) || s[i-1] == '.') || s[i+1] != '.' {
			continue
		}
		j := digits(s, i+2)
		if j == i+2 || j-(i+2) > 3 || j >= len(s) || s[j] != '.' {
			continue
		}
		k := digits(s, j+1)
		if k == j+1 || k-(j+1) > 3 || k < len(s) && (isDigit(s[k]) || s[k] == '.') {
			continue
		}
		return s[i:k]
	}
	return ""
}

// codeIn is the first SMTP reply code in s (three digits, 2, 4 or 5 first,
// then a space, a dash or the end), or 0.
func codeIn(s string) int {
	for i := 0; i+3 <= len(s); i++ {
		c := s[i]
		if c != '2' && c != '4' && c != '5' || i > 0 && (isDigit(s[i-1]) || s[i-1] == '.') ||
			!isDigit(s[i+1]) || !isDigit(s[i+2]) || i+3 < len(s) && s[i+3] != ' ' && s[i+3] != '-' {
			continue
		}
		return int(c-'0')*100 + int(s[i+1]-'0')*10 + int(s[i+2]-'0')
	}
	return 0
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

// digits is the end of the run of digits of s from i.
func digits(s string, i int) int {
	for i < len(s) && isDigit(s[i]) {
		i++
	}
	return i
}

// messageSet is one reason's message strings (see messages).
type messageSet struct {
	index []string
	pairs [][]string
}

// patterns finds every reason's message strings in a text at once.
var patterns = func() *matcher {
	var all []string
	for _, ms := range messages {
		all = append(all, ms.index...)
		for _, p := range ms.pairs {
			all = append(all, p...)
		}
	}
	return newMatcher(all)
}()

// reasonBit numbers the reasons that have message strings, for a set of
// them in a uint64.
var reasonBit = func() map[string]uint64 {
	out := map[string]uint64{}
	for _, r := range slices.Sorted(maps.Keys(messages)) {
		if len(out) == 64 {
			panic("bounce: more than 64 reasons have message strings")
		}
		out[r] = 1 << len(out)
	}
	return out
}()

// byPattern says, for each pattern id, which reasons hold it as a string
// of their own, and which of their pairs begin with it.
var byPattern = func() []patternUse {
	out := make([]patternUse, len(patterns.pats))
	for r, ms := range messages {
		bit := reasonBit[r]
		for _, s := range ms.index {
			out[patterns.ids[s]].index |= bit
		}
		for _, p := range ms.pairs {
			ids := make([]int32, len(p))
			for i, s := range p {
				ids[i] = patterns.ids[s]
			}
			out[ids[0]].pairs = append(out[ids[0]].pairs, pairUse{bit, ids})
		}
	}
	return out
}()

type patternUse struct {
	index uint64
	pairs []pairUse
}

type pairUse struct {
	bit uint64
	ids []int32
}

// reasonsOf is the set of reasons whose messages a text holds (found).
func reasonsOf(found found) uint64 {
	var set uint64
	for id := range found {
		u := &byPattern[id]
		set |= u.index
		for _, p := range u.pairs {
			if set&p.bit == 0 && patterns.aligned(found, p.ids) {
				set |= p.bit
			}
		}
	}
	return set
}

// match reports whether the text is one of reason's messages: it holds
// one of its strings, or the strings of one of its pairs in order.
func (f fact) match(reason string) bool {
	return f.reasons&reasonBit[reason] != 0
}

func (f fact) matchAny(reasons []string) bool {
	for _, r := range reasons {
		if f.match(r) {
			return true
		}
	}
	return false
}

// remoteRuleSet is one remote host's rules; width says what a rule's
// strings are (see remoteRule.match).
type remoteRuleSet struct {
	width int
	rules []remoteRule
}

type remoteRule struct {
	reason string
	s      []string
}

// remoteNames are remoteHosts' names, sorted: a host that two of them
// name is always given the same rules.
var remoteNames = slices.Sorted(maps.Keys(remoteHosts))

// remote is the reason a remote host's own conventions give, or "".
func remote(host string, code int, status, text string) string {
	host = strings.ToLower(host)
	if host == "" || text == "" {
		return ""
	}
	for _, name := range remoteNames {
		for _, suf := range remoteHosts[name] {
			if !strings.HasSuffix(host, suf) {
				continue
			}
			set := remoteRules[name]
			for _, r := range set.rules {
				if r.match(set.width, code, status, text) {
					return r.reason
				}
			}
			return ""
		}
	}
	return ""
}

// match: width 1, a string the text includes; 2, a reply code and a
// string (Mimecast); 3, a reply code, a status code and a string
// (Google); 4, a status code, or its first two parts and a range of the
// third, and a string (Microsoft). A code or status the event does not
// give does not rule a rule out.
func (r remoteRule) match(width, code int, status, text string) bool {
	s := r.s
	if len(s) != width {
		return false
	}
	switch width {
	case 1:
		return strings.Contains(text, strings.ToLower(s[0]))
	case 2:
		return codeIs(code, s[0]) && strings.Contains(text, s[1])
	case 3:
		return codeIs(code, s[0]) && (status == "" || status == s[1]) && strings.Contains(text, s[2])
	case 4:
		if !strings.Contains(text, s[3]) || status == "" {
			return status == "" && strings.Contains(text, s[3])
		}
		if s[1] == s[2] {
			return status == s[0]
		}
		if !strings.HasPrefix(status, s[0]) {
			return false
		}
		third, err := strconv.Atoi(status[strings.LastIndexByte(status, '.')+1:])
		lo, err1 := strconv.Atoi(s[1])
		hi, err2 := strconv.Atoi(s[2])
		return err == nil && err1 == nil && err2 == nil && lo <= third && third <= hi
	}
	return false
}

func codeIs(code int, want string) bool {
	return code == 0 || want == "" || strconv.Itoa(code) == want
}
