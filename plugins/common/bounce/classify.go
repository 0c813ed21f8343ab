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
	"regexp"
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

var (
	statusInText = regexp.MustCompile(`(?:^|[^\d.])([245]\.\d{1,3}\.\d{1,3})(?:[^\d.]|$)`)
	codeInText   = regexp.MustCompile(`(?:^|[^\d.])([245]\d\d)(?:[ -]|$)`)
)

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
		return matches(r, f.text)
	case Suspend:
		return f.code == 525 || matches(r, f.text)
	case HasMoved, NotCompliantRFC, BadReputation, Speeding:
		return matches(r, f.text)
	case NoRelaying:
		return !slices.Contains([]string{"CONN", "EHLO", "HELO"}, f.command) && matches(r, f.text)
	case UserUnknown:
		if f.byStatus == Suspend {
			return false
		}
		if f.byStatus == UserUnknown {
			return !matchesAny(f.text, notUserUnknown)
		}
		return (f.command == "RCPT" || f.command == "") && matches(r, f.text)
	case Filtered:
		if f.byStatus == Suspend {
			return false
		}
		if f.byStatus == Filtered {
			return matches(UserUnknown, f.text) || matches(Filtered, f.text)
		}
		if slices.Contains(beforeData, f.command) {
			return false
		}
		return matches(Filtered, f.text) || matches(UserUnknown, f.text) && f.command != ""
	case ContentError:
		if f.probe(SpamDetected) {
			return false
		}
		return f.byStatus == r || matches(r, f.text)
	case Rejected:
		if f.byStatus == Rejected {
			return true
		}
		switch {
		case f.command == "MAIL":
			return matches(r, f.text)
		case f.command == "DATA":
			return f.byStatus != UserUnknown && matches(r, f.text)
		case f.byStatus == "" || f.byStatus == SecurityError || f.byStatus == SystemError:
			return matches(r, f.text)
		}
		return false
	case HostUnknown:
		if f.byStatus == HostUnknown {
			return !matches(NetworkError, f.text)
		}
		return matches(r, f.text)
	case SpamDetected:
		if f.status == "" {
			return false
		}
		if f.byStatus == r {
			return true
		}
		return !slices.Contains(beforeData, f.command) && matches(r, f.text)
	}
	return f.byStatus == r || matches(r, f.text)
}

// commandRe finds the command a reply answered, as MTAs write it:
// Postfix's "(in reply to RCPT TO command)", "in reply to end of DATA
// command", Exim's "SMTP error from remote mail server after RCPT TO:".
var commandRe = regexp.MustCompile(`(?:in reply to|after|>>>) (?:end of )?(rcpt to|mail from|data|ehlo|helo|starttls|rcpt|mail)\b`)

func commandOf(text string) string {
	m := commandRe.FindStringSubmatch(text)
	if m == nil {
		return ""
	}
	c := strings.ToUpper(strings.Fields(m[1])[0])
	return c
}

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
	status := normalStatus(in.Status)
	if status == "" {
		if m := statusInText.FindStringSubmatch(text); m != nil {
			status = m[1]
		}
	}
	code := in.Code
	if code == 0 {
		if m := codeInText.FindStringSubmatch(text); m != nil {
			code, _ = strconv.Atoi(m[1])
		}
	}
	if r := remote(in.RemoteHost, code, status, text); r != "" {
		return r
	}
	if strings.HasPrefix(status, "2.") {
		return Delivered
	}
	f := fact{byStatus: statusReasons[status], status: status, code: code, text: text, command: commandOf(text)}
	for _, r := range firstOrder {
		if f.probe(r) {
			return r
		}
	}
	byStatus := f.byStatus
	if byStatus == "" || retried[byStatus] {
		for _, r := range fallbackOrder {
			if matches(r, text) {
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
	case matches(Vacation, text):
		return Vacation
	case text != "" || code != 0 || status != "":
		return OnHold
	}
	return Undefined
}

// normalStatus is an enhanced status code without what surrounds it
// ("#5.1.1", "5.1.1 (bad)"), or "".
func normalStatus(s string) string {
	m := statusInText.FindStringSubmatch(s)
	if m == nil {
		return ""
	}
	return m[1]
}

// messageSet is one reason's message strings (see messages).
type messageSet struct {
	index []string
	pairs [][]string
}

func matches(reason, text string) bool {
	if text == "" {
		return false
	}
	ms, ok := messages[reason]
	if !ok {
		return false
	}
	for _, s := range ms.index {
		if strings.Contains(text, s) {
			return true
		}
	}
	for _, p := range ms.pairs {
		if aligned(text, p) {
			return true
		}
	}
	return false
}

func matchesAny(text string, reasons []string) bool {
	for _, r := range reasons {
		if matches(r, text) {
			return true
		}
	}
	return false
}

// aligned reports whether text holds every string of p, in order.
func aligned(text string, p []string) bool {
	for _, s := range p {
		i := strings.Index(text, s)
		if i < 0 {
			return false
		}
		text = text[i+len(s):]
	}
	return true
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
