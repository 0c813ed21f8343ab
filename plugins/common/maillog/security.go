package maillog

import (
	"net/netip"
	"regexp"
	"strconv"
	"strings"

	"github.com/influxdata/telegraf"
	"github.com/influxdata/telegraf/metric"

	"github.com/mailtick/mailtick/plugins/common/eventtime"
)

// The abuse and security signals of the logs, one mail_security event a
// line (Event.Security): SASL authentication failures and logins, the
// postscreen's verdicts, TLS sessions, connections lost after a command.
// They stay in the DC (the client and the SASL user are personal data):
// its database and its Kapacitor (tickscripts/mail_abuse.tick).
const (
	SignalSASLFailure    = "sasl_failure"    // a client's AUTH refused (or, outbound, a relay's refusal of ours)
	SignalSASLLogin      = "sasl_login"      // a message submitted after AUTH: the SASL user
	SignalPostscreen     = "postscreen"      // postscreen's verdict on a client (tag verdict)
	SignalTLS            = "tls"             // a TLS session established, in or out (tags tls_protocol, tls_trust)
	SignalLostConnection = "lost_connection" // a client gone after a command (tag stage): AUTH is a guesser's
)

var (
	// "warning: host[ip]: SASL LOGIN authentication failed: reason[, sasl_username=user]"
	postfixSASLFail = regexp.MustCompile(`^warning: (\S*?)\[([0-9A-Fa-f:.]+)\](?::\d+)?: SASL (\S+) authentication failed: (.*?)(?:, sasl_username=(\S+))?$`)
	// smtp: "SASL authentication failed; server host[ip] said: 535 …"
	postfixSASLRelayFail = regexp.MustCompile(`^SASL authentication failed; server (\S*?)\[([0-9A-Fa-f:.]+)\] said: (.*)$`)
	// "Anonymous TLS connection established from host[ip]: TLSv1.3 with cipher TLS_AES_256_GCM_SHA384 (256/256 bits) …"
	postfixTLS = regexp.MustCompile(`^(\S+) TLS connection established (from|to) (\S*?)\[([0-9A-Fa-f:.]+)\](?::\d+)?: (\S+) with cipher (\S+)`)
	// postscreen: "PASS OLD [ip]:port", "DNSBL rank 3 for [ip]:port",
	// "PREGREET 11 after 0.07 from [ip]:port: …", "COMMAND TIME LIMIT from [ip]:port after RCPT"
	postscreenAccess    = regexp.MustCompile(`^(PASS OLD|PASS NEW|WHITELISTED|ALLOWLISTED|BLACKLISTED|DENYLISTED|WHITELIST VETO|ALLOWLIST VETO) \[([0-9A-Fa-f:.]+)\]`)
	postscreenDNSBL     = regexp.MustCompile(`^DNSBL rank (\d+) for \[([0-9A-Fa-f:.]+)\]`)
	postscreenViolation = regexp.MustCompile(`^(PREGREET|HANGUP|COMMAND TIME LIMIT|COMMAND COUNT LIMIT|COMMAND LENGTH LIMIT|COMMAND PIPELINING|NON-SMTP COMMAND|BARE NEWLINE)(?: \d+)?(?: after [\d.]+)? from \[([0-9A-Fa-f:.]+)\](?::\d+)?(?: after (\S+?))?(?::|$| in tests)`)
	// smtpd: "lost connection after AUTH from host[ip]"
	postfixLost = regexp.MustCompile(`^lost connection after (\S+)(?: \(\d+ bytes\))? from (\S*?)\[([0-9A-Fa-f:.]+)\]`)
	// client=host[ip], sasl_method=PLAIN, sasl_username=user
	postfixSASLUser = regexp.MustCompile(`, sasl_method=([^,\s]+), sasl_username=([^,\s]+)`)
	// Exim: "login authenticator failed for H=(helo) [ip] U=x: 535 Incorrect authentication data (set_id=user)";
	// older: "login authenticator failed for (helo) [ip]: …"
	eximAuthFail = regexp.MustCompile(`^(\S+) authenticator failed for (?:H=)?(?:\S+ )?(?:\([^)]*\) )?\[([0-9A-Fa-f:.]+)\](?::\d+)?[^:]*: (.*)$`)
	eximSetID    = regexp.MustCompile(` ?\(set_id=([^)]*)\)`)
)

// postfixSecurity reads a Postfix line without a queue id as a security
// signal, if it is one.
func (c *Correlator) postfixSecurity(ev Event, d, msg string) (Event, bool) {
	ev.Security, ev.Direction = true, "inbound"
	if m := postfixSASLFail.FindStringSubmatch(msg); m != nil {
		ev.Event, ev.ClientIP, ev.SASLMethod, ev.Response, ev.SASLUser = SignalSASLFailure, m[2], m[3], m[4], m[5]
		return ev, true
	}
	if m := postfixTLS.FindStringSubmatch(msg); m != nil {
		ev.Event, ev.TLSTrust, ev.TLSProtocol, ev.TLSCipher = SignalTLS, strings.ToLower(m[1]), m[5], m[6]
		if m[2] == "to" {
			ev.Direction, ev.Relay = "outbound", m[3]+"["+m[4]+"]"
		} else {
			ev.ClientIP = m[4]
		}
		return ev, true
	}
	if m := postfixLost.FindStringSubmatch(msg); m != nil && d == "smtpd" {
		ev.Event, ev.Stage, ev.ClientIP = SignalLostConnection, smtpStage(m[1]), m[3]
		return ev, true
	}
	if d != "postscreen" {
		return ev, false
	}
	ev.Event = SignalPostscreen
	if m := postscreenAccess.FindStringSubmatch(msg); m != nil {
		ev.Verdict, ev.ClientIP = verdict(m[1]), m[2]
		return ev, true
	}
	if m := postscreenDNSBL.FindStringSubmatch(msg); m != nil {
		ev.Verdict, ev.ClientIP = "dnsbl", m[2]
		ev.DNSBLRank, _ = strconv.Atoi(m[1])
		return ev, true
	}
	if m := postscreenViolation.FindStringSubmatch(msg); m != nil {
		ev.Verdict, ev.ClientIP, ev.Stage = verdict(m[1]), m[2], smtpStage(m[3])
		return ev, true
	}
	return ev, false
}

// verdict names a postscreen verdict as a tag value: "pass_old",
// "command_time_limit". The deny and allow lists' old names are the new
// ones (Postfix 3.6 renamed them).
func verdict(s string) string {
	return strings.ToLower(verdictNames.Replace(s))
}

var verdictNames = strings.NewReplacer("WHITELIST", "ALLOWLIST", "BLACKLIST", "DENYLIST", " ", "_", "-", "_")

// smtpStage is the SMTP command a connection was at, as a bounded tag: the
// commands, else "other" (postscreen's "." is the end of DATA).
func smtpStage(s string) string {
	switch s = strings.ToUpper(s); s {
	case "":
		return ""
	case "CONNECT", "HELO", "EHLO", "STARTTLS", "AUTH", "MAIL", "RCPT", "DATA", "BDAT", "RSET", "NOOP", "VRFY", "ETRN", "QUIT", "UNKNOWN", "END-OF-MESSAGE":
		return strings.ToLower(s)
	case ".":
		return "end-of-message"
	}
	return "other"
}

// eximSecurity reads an Exim line without a message id as a security
// signal, if it is one.
func eximSecurity(ev Event, rest string) (Event, bool) {
	m := eximAuthFail.FindStringSubmatch(rest)
	if m == nil {
		return ev, false
	}
	ev.Security, ev.Direction = true, "inbound"
	ev.Event, ev.SASLMethod, ev.ClientIP, ev.Response = SignalSASLFailure, m[1], m[2], m[3]
	if id := eximSetID.FindStringSubmatch(m[3]); id != nil { // "535 Incorrect authentication data (set_id=user)"
		ev.SASLUser, ev.Response = id[1], eximSetID.ReplaceAllString(m[3], "")
	}
	return ev, true
}

// eximSecurityOf: the signals of an Exim line's A= (on an arrival, the
// authenticator and the id it authenticated: a SASL login; on a delivery
// it is ours to the next hop) and X= (its TLS session:
// "TLS1.3:TLS_AES_256_GCM_SHA384:256").
func eximSecurityOf(ev Event, kv map[string]string, direction, clientIP string, arrival bool) []Event {
	var out []Event
	ev.Security, ev.Direction, ev.ClientIP = true, direction, clientIP
	if a := kv["A"]; a != "" && arrival {
		login := ev
		method, user, _ := strings.Cut(a, ":")
		user, _, _ = strings.Cut(user, ":") // A=authname:authid:authsender
		login.Event, login.SASLMethod, login.SASLUser = SignalSASLLogin, method, user
		login.line += " A"
		out = append(out, login)
	}
	if x := kv["X"]; x != "" {
		tls := ev
		proto, cipher, _ := strings.Cut(x, ":")
		cipher, _, _ = strings.Cut(cipher, ":")
		tls.Event, tls.TLSProtocol, tls.TLSCipher = SignalTLS, strings.Replace(proto, "TLS", "TLSv", 1), cipher
		tls.line += " X"
		out = append(out, tls)
	}
	return out
}

// clientNet is the network a client is in, for grouping guessers: its
// /24 (IPv4) or /64 (IPv6, a host's usual share).
func clientNet(ip string) string {
	a, err := netip.ParseAddr(ip)
	if err != nil {
		return ""
	}
	bits := 64
	if a.Unmap().Is4() {
		a, bits = a.Unmap(), 24
	}
	p, err := a.Prefix(bits)
	if err != nil {
		return ""
	}
	return p.String()
}

// securityMetric is a signal as a mail_security metric: tags bounded
// (signal, verdict, stage, TLS protocol and trust, SASL method) but for
// client_net and sasl_user, which the DC's alerts group by; the client's
// address and the rest as fields.
func (e *Event) securityMetric() telegraf.Metric {
	tags := map[string]string{"signal": e.Event}
	fields := map[string]any{"events": int64(1)}
	for k, v := range map[string]string{"direction": e.Direction, "mailer": e.Host, "verdict": e.Verdict,
		"stage": e.Stage, "tls_protocol": e.TLSProtocol, "tls_trust": e.TLSTrust,
		"sasl_method": strings.ToLower(e.SASLMethod), "sasl_user": e.SASLUser, "client_net": clientNet(e.ClientIP)} {
		if v != "" {
			tags[k] = v
		}
	}
	for k, v := range map[string]string{"client_ip": e.ClientIP, "relay": e.Relay, "tls_cipher": e.TLSCipher,
		"smtp_response": e.Response, "queue_id": e.QueueID} {
		if v != "" {
			fields[k] = v
		}
	}
	if e.DNSBLRank > 0 {
		fields["dnsbl_rank"] = int64(e.DNSBLRank)
	}
	return metric.New("mail_security", tags, fields, eventtime.Fill(e.Time, []byte(e.line), e.salt))
}
