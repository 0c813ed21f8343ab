package maillog

import (
	"cmp"
	"encoding/json"
	"net/netip"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/influxdata/telegraf"
	"github.com/influxdata/telegraf/metric"

	"github.com/mailtick/mailtick/plugins/common/eventtime"
)

// Event is one delivery attempt of one recipient, one reject, or one
// message accepted or expired, as the log tells it.
type Event struct {
	Time          time.Time
	Event         string // accepted, delivered, deferred, bounced, expired, rejected
	Direction     string
	Host          string // the MTA: the syslog host
	QueueID       string
	MessageID     string
	Sender        string
	Recipient     string
	OrigRecipient string
	ClientIP      string
	Helo          string
	Relay         string
	SMTPCode      int
	SMTPStatus    string
	Response      string
	LatencyMS     float64
	DeliveryMS    float64 // Exim's DT=: the delivery itself
	HasDelivery   bool
	Delays        [4]float64 // before qmgr, in qmgr, connection set-up, transmission (ms)
	HasDelays     bool
	Size          int64
	Attempt       int    // 1 for the first attempt of a recipient; 0: not known (see message.Partial)
	line          string // the whole line: its hash makes the time unique
	salt          int    // tells identical lines at the same time apart: added to the hash

	// A security signal (Event is one of the Signal* names): a
	// mail_security metric, not a mail_event.
	Security    bool
	SASLMethod  string
	SASLUser    string // the SASL login (also on the mail_events of a message submitted after AUTH)
	TLSProtocol string
	TLSCipher   string
	TLSTrust    string // Postfix: anonymous, untrusted, trusted, verified
	Verdict     string // postscreen's
	Stage       string // the SMTP command a connection was lost or a limit hit after
	DNSBLRank   int
}

// Metric is the event as a mail_event metric of the DESIGN schema.
func (e *Event) Metric() telegraf.Metric {
	if e.Security {
		return e.securityMetric()
	}
	tags := map[string]string{"event": e.Event}
	if e.Direction != "" {
		tags["direction"] = e.Direction
	}
	if e.Host != "" {
		tags["mailer"] = e.Host
	}
	fields := map[string]any{}
	str := func(k, v string) {
		if v != "" {
			fields[k] = v
		}
	}
	str("queue_id", e.QueueID)
	str("message_id", e.MessageID)
	str("sender", e.Sender)
	str("recipient", e.Recipient)
	str("orig_recipient", e.OrigRecipient)
	str("sender_ip", e.ClientIP)
	str("helo", e.Helo)
	str("relay", e.Relay)
	str("smtp_status", e.SMTPStatus)
	str("smtp_response", e.Response)
	str("sasl_user", e.SASLUser)
	if e.SMTPCode > 0 {
		fields["smtp_code"] = int64(e.SMTPCode)
	}
	if e.Event != "accepted" && e.Event != "rejected" && e.Event != "expired" {
		fields["latency_ms"] = e.LatencyMS
		if e.Attempt > 0 { // left out, rather than a number that restarts
			fields["attempt"] = int64(e.Attempt)
		}
	}
	if e.HasDelivery {
		fields["delivery_time_ms"] = e.DeliveryMS
	}
	if e.HasDelays {
		for i, k := range []string{"delay_before_qmgr_ms", "delay_in_qmgr_ms", "delay_conn_setup_ms", "delay_transmission_ms"} {
			fields[k] = e.Delays[i]
		}
	}
	if e.Size > 0 {
		fields["size_bytes"] = e.Size
	}
	// What the rollups count, in every event (as the mailevents mapping
	// adds it: its EventsField).
	fields["events"] = int64(1)
	return metric.New("mail_event", tags, fields, eventtime.Fill(e.Time, []byte(e.line), e.salt))
}

// message is what the log said so far of one queue id. Exported fields:
// it is the correlator's persisted state.
type message struct {
	ClientIP  string         `json:"client_ip,omitempty"`
	Helo      string         `json:"helo,omitempty"`
	MessageID string         `json:"message_id,omitempty"`
	Sender    string         `json:"sender,omitempty"`
	SASLUser  string         `json:"sasl_user,omitempty"`
	Size      int64          `json:"size,omitempty"`
	Accepted  bool           `json:"accepted,omitempty"`
	Attempts  map[string]int `json:"attempts,omitempty"` // per recipient
	Seen      int64          `json:"seen"`               // last line about it (Unix seconds)
	// Partial: the queue id's state was evicted (MaxMessages, TTL) and
	// it came back (Correlator.gone). It was accepted before, so qmgr's
	// from= of its retries emits no second accepted; how many attempts
	// its recipients had is not known, so its events carry no attempt
	// rather than attempt numbers that restart at 1.
	Partial bool `json:"partial,omitempty"`
}

// Snapshot is the correlator's state, to persist beside the log offset it
// belongs to.
func (c *Correlator) Snapshot() ([]byte, error) {
	return json.Marshal(struct {
		Messages   map[string]*message `json:"messages"`
		Evicted    int64               `json:"evicted"`
		EvictedIDs []string            `json:"evicted_ids,omitempty"`
	}{c.msgs, c.Evicted, c.evictedIDs()})
}

// Restore sets the state a Snapshot saved.
func (c *Correlator) Restore(b []byte) error {
	var st struct {
		Messages   map[string]*message `json:"messages"`
		Evicted    int64               `json:"evicted"`
		EvictedIDs []string            `json:"evicted_ids"`
	}
	if err := json.Unmarshal(b, &st); err != nil {
		return err
	}
	if st.Messages == nil {
		st.Messages = map[string]*message{}
	}
	c.msgs, c.Evicted = st.Messages, st.Evicted
	c.gone, c.goneRing, c.goneSeq = map[string]uint64{}, nil, 0
	for _, id := range st.EvictedIDs {
		c.forget(id)
	}
	return nil
}

// Options are the correlator's limits and choices.
type Options struct {
	MaxMessages    int           // queue ids kept at once; the oldest go first (counted)
	TTL            time.Duration // a queue id not seen for this long goes (counted)
	InboundDaemons []string      // delivery agents that deliver here: local, virtual, lmtp, pipe
	Host           string        // the mailer tag of lines that name no host (Exim's main log)
	// InternalNetworks, when set, decide the direction by the client:
	// mail from a client inside them is outbound, from outside inbound.
	// Events without a known client keep the direction of their transport.
	InternalNetworks []netip.Prefix
}

// Correlator turns Postfix lines into events, keeping per queue id what
// earlier lines said (client, sender, size, message-id, attempts).
type Correlator struct {
	opt      Options
	inbound  map[string]bool
	msgs     map[string]*message
	Evicted  int64          // queue ids dropped by MaxMessages or TTL
	Unknown  map[string]int // lines not read, by reason
	lastTrim time.Time
	interned map[string]string

	// The queue ids evicted last, at most MaxMessages of them (an id
	// costs a few dozen bytes here, against the hundreds its state cost):
	// gone maps each to its place in goneRing, in order of eviction, the
	// oldest overwritten first. A later line of one is of a message that
	// was accepted already, not of a new one (see message.Partial).
	gone     map[string]uint64
	goneRing []string
	goneSeq  uint64 // evictions remembered so far: the next one's place

	// Identical lines at the same time (a client refused three times in
	// one second by one smtpd logs three identical lines) are events of
	// their own, their points apart (Event.salt). A file's line is told
	// apart by its place (LineAt), which is the same when it is read
	// again; a line without one (syslog over the network, Line) or a
	// journal entry (Entry) by how many identical ones came before it at
	// that time.
	repeatAt time.Time
	repeats  map[string]int
}

// maxInterned bounds the table of shared strings; it starts over when full.
const maxInterned = 1 << 16

// intern returns one shared copy of s: a relay's messages come from few
// clients and senders, so the open queue ids share their strings instead
// of each keeping a copy (and none keeps the whole line it was cut from).
func (c *Correlator) intern(s string) string {
	if v, ok := c.interned[s]; ok {
		return v
	}
	if len(c.interned) >= maxInterned {
		clear(c.interned)
	}
	v := strings.Clone(s)
	c.interned[v] = v
	return v
}

// NewCorrelator returns a correlator with opt (zero values: 100,000 queue
// ids, 7 days, local/virtual/lmtp/pipe inbound).
func NewCorrelator(opt Options) *Correlator {
	if opt.MaxMessages <= 0 {
		opt.MaxMessages = 100000
	}
	if opt.TTL <= 0 {
		opt.TTL = 7 * 24 * time.Hour
	}
	if opt.InboundDaemons == nil {
		opt.InboundDaemons = []string{"local", "virtual", "lmtp", "pipe"}
	}
	c := &Correlator{opt: opt, inbound: map[string]bool{}, msgs: map[string]*message{}, Unknown: map[string]int{}, interned: map[string]string{}, gone: map[string]uint64{}}
	for _, d := range opt.InboundDaemons {
		c.inbound[d] = true
	}
	return c
}

// Open is the number of queue ids held.
func (c *Correlator) Open() int { return len(c.msgs) }

var (
	// Short queue ids are upper-case hex; long ones (enable_long_queue_ids)
	// use an alphabet without vowels, so no English word is one.
	queueID   = regexp.MustCompile(`^([0-9A-F]{6,12}|[0-9B-DF-HJ-NP-TV-Zb-df-hj-np-tv-z]{12,20}): (.*)$`)
	replyCode = regexp.MustCompile(`^([245]\d\d)(?:[ -]([245]\.\d{1,3}\.\d{1,3}))?`)
	hostAddr  = regexp.MustCompile(`^(\S*?)\[([0-9A-Fa-f:.]+)\](?::\d+)?`)
)

// Line reads one line, Postfix's (any syslog format) or Exim's main log. It returns the events the line completes; reason
// is set when the line could not be read. now is the reader's clock, and
// the time of a line without a timestamp.
func (c *Correlator) Line(raw string, now time.Time, loc *time.Location) ([]Event, string) {
	evs, reason := c.lineAt(raw, now, now, loc)
	c.repeated(raw, evs)
	return evs, reason
}

// LineAt is Line with the time to give a line that has no timestamp of its
// own apart from the clock: a reader of files passes one distinct for each
// line and the same when the line is read again, so that such lines are
// points of their own, overwritten on a replay.
func (c *Correlator) LineAt(raw string, now, received time.Time, loc *time.Location) ([]Event, string) {
	evs, reason := c.lineAt(raw, now, received, loc)
	for i := range evs {
		// Below a second: syslog's times are at most microseconds, the
		// precision Fill fills below.
		evs[i].salt = int(received.UnixNano() % int64(time.Second))
	}
	return evs, reason
}

func (c *Correlator) lineAt(raw string, now, received time.Time, loc *time.Location) ([]Event, string) {
	if isExim(raw) {
		return c.eximDone(c.exim(raw, c.opt.Host, loc))
	}
	l, err := SplitLine(raw, now, loc)
	if err != nil {
		reason := ReasonNoProgram
		if err == errBadTime {
			reason = ReasonBadTime
		}
		c.Unknown[reason]++
		return nil, reason
	}
	if !l.HasTime {
		l.Time = received
	}
	if l.Host == "" {
		l.Host = c.opt.Host
	}
	return c.entry(l, raw)
}

// Entry reads one entry of a structured log, the systemd journal's: its
// time (to the microsecond, with its zone), host, program
// (SYSLOG_IDENTIFIER) and message are fields of their own, so nothing is
// guessed.
func (c *Correlator) Entry(at time.Time, host, program, message string) ([]Event, string) {
	if host == "" {
		host = c.opt.Host
	}
	text := host + " " + program + ": " + message
	evs, reason := c.entry(Line{Time: at, HasTime: true, Host: host, Program: program, Message: message}, text)
	c.repeated(text, evs)
	return evs, reason
}

// repeated numbers the events of text among the identical lines at
// their time (see Correlator.repeats).
func (c *Correlator) repeated(text string, evs []Event) {
	if len(evs) == 0 {
		return
	}
	if t := evs[0].Time; !t.Equal(c.repeatAt) || c.repeats == nil {
		c.repeatAt, c.repeats = t, map[string]int{}
	}
	n := c.repeats[text]
	c.repeats[text] = n + 1
	for i := range evs {
		evs[i].salt = n
	}
}

// eximDone finishes the events of an Exim line: the queue ids aged by its
// time, the direction by the client's network.
func (c *Correlator) eximDone(evs []Event, reason string) ([]Event, string) {
	if len(evs) > 0 {
		c.trim(evs[0].Time)
	}
	c.direction(evs)
	return evs, reason
}

// entry reads one line, split (Postfix's, or Exim's through syslog); raw makes the times of its events
// distinct (eventtime.Fill).
func (c *Correlator) entry(l Line, raw string) ([]Event, string) {
	if strings.HasPrefix(l.Program, "exim") {
		// Exim's main log through syslog or the journal, its lines
		// with or without their own timestamp (syslog_timestamp): the
		// entry's time is theirs.
		rest := l.Message
		if isExim(rest) {
			if _, r, ok := eximLine(rest, time.UTC); ok {
				rest = r
			}
		}
		return c.eximDone(c.eximAt(l.Time.UTC(), rest, raw, l.Host))
	}
	evs, reason := c.postfix(l, raw)
	c.trim(l.Time)
	if reason != "" {
		c.Unknown[reason]++
		return nil, reason
	}
	c.direction(evs)
	return evs, ""
}

// direction sets the direction by the client's network, when
// InternalNetworks are set and the client is known.
func (c *Correlator) direction(evs []Event) {
	if len(c.opt.InternalNetworks) == 0 {
		return
	}
	for i := range evs {
		ip, err := netip.ParseAddr(evs[i].ClientIP)
		if err != nil {
			continue
		}
		evs[i].Direction = "inbound"
		for _, p := range c.opt.InternalNetworks {
			if p.Contains(ip.Unmap()) {
				evs[i].Direction = "outbound"
				break
			}
		}
	}
}

func (c *Correlator) msg(id string, at time.Time) *message {
	m, ok := c.msgs[id]
	if !ok {
		if len(c.msgs) >= c.opt.MaxMessages {
			c.evictOldest()
		}
		m = &message{}
		if _, ok := c.gone[id]; ok {
			// Evicted, and back (a delivery, qmgr's retry of a deferred
			// message): no second accepted, no attempts from 1 again.
			m.Accepted, m.Partial = true, true
			delete(c.gone, id)
		}
		c.msgs[strings.Clone(id)] = m
	}
	m.Seen = at.Unix()
	return m
}

// begin marks the line that starts a message (smtpd's client=, pickup's
// uid=, cleanup's message-id=, Exim's <=): a queue id evicted before and
// seen in such a line is a new message reusing it (Postfix's short ids
// come back once their file is gone), not the evicted one resumed.
func (c *Correlator) begin(id string) {
	delete(c.gone, id)
}

// forget drops the state of a queue id that has not ended, remembering
// the id in the bounded ring of evicted ids.
func (c *Correlator) forget(id string) {
	delete(c.msgs, id)
	n := uint64(c.opt.MaxMessages)
	if uint64(len(c.goneRing)) < n {
		c.goneRing = append(c.goneRing, id)
	} else {
		slot := c.goneSeq % n
		// The id this place held, unless evicted again since (a later
		// place) or back meanwhile (no place).
		if at, ok := c.gone[c.goneRing[slot]]; ok && at == c.goneSeq-n {
			delete(c.gone, c.goneRing[slot])
		}
		c.goneRing[slot] = id
	}
	c.gone[id] = c.goneSeq
	c.goneSeq++
}

// evictedIDs are the remembered evicted ids, oldest first.
func (c *Correlator) evictedIDs() []string {
	n := uint64(len(c.goneRing))
	if n == 0 || len(c.gone) == 0 {
		return nil
	}
	out := make([]string, 0, len(c.gone))
	for seq := c.goneSeq - n; seq < c.goneSeq; seq++ {
		id := c.goneRing[seq%uint64(c.opt.MaxMessages)]
		if at, ok := c.gone[id]; ok && at == seq {
			out = append(out, id)
		}
	}
	return out
}

// evictOldest drops the oldest hundredth of the queue ids at once, so
// that a log full of messages that never end costs one scan per hundred
// new ids, not one per id.
func (c *Correlator) evictOldest() {
	type aged struct {
		id   string
		seen int64
	}
	all := make([]aged, 0, len(c.msgs))
	for id, m := range c.msgs {
		all = append(all, aged{id, m.Seen})
	}
	slices.SortFunc(all, func(a, b aged) int { return cmp.Compare(a.seen, b.seen) })
	for _, a := range all[:max(1, len(all)/100)] {
		c.forget(a.id)
		c.Evicted++
	}
}

// trim drops queue ids not seen for TTL, at most once a minute of log time.
func (c *Correlator) trim(now time.Time) {
	if now.Sub(c.lastTrim) < time.Minute {
		return
	}
	c.lastTrim = now
	for id, m := range c.msgs {
		if now.Sub(time.Unix(m.Seen, 0)) > c.opt.TTL {
			c.forget(id)
			c.Evicted++
		}
	}
}

// postfix reads the message of a Postfix line: the events it completes,
// or the reason it is refused.
func (c *Correlator) postfix(l Line, raw string) ([]Event, string) {
	d := daemon(l.Program)
	ev := Event{Time: l.Time, Host: l.Host, line: raw}
	if rest, ok := strings.CutPrefix(l.Message, "NOQUEUE: "); ok {
		// reject_warning, discard, filter, hold, redirect: no reject
		if strings.HasPrefix(rest, "reject: ") || strings.HasPrefix(rest, "milter-reject: ") {
			return c.reject(ev, rest), ""
		}
		return nil, ""
	}
	m := queueID.FindStringSubmatch(l.Message)
	if m == nil {
		if sec, ok := c.postfixSecurity(ev, d, l.Message); ok {
			return []Event{sec}, ""
		}
		return nil, "" // connect, disconnect, other warnings, statistics: no event
	}
	id, rest := m[1], m[2]
	ev.QueueID = id
	switch {
	case strings.HasPrefix(rest, "client="):
		c.begin(id)
		msg := c.msg(id, l.Time)
		if hm := hostAddr.FindStringSubmatch(strings.TrimPrefix(rest, "client=")); hm != nil {
			msg.ClientIP = c.intern(hm[2])
		}
		if sm := postfixSASLUser.FindStringSubmatch(rest); sm != nil {
			msg.SASLUser = c.intern(sm[2])
			ev.Security, ev.Direction, ev.Event, ev.SASLMethod, ev.SASLUser, ev.ClientIP = true, "inbound", SignalSASLLogin, sm[1], sm[2], msg.ClientIP
			return []Event{ev}, ""
		}
		return nil, ""
	case strings.HasPrefix(rest, "message-id="):
		c.begin(id)
		msg := c.msg(id, l.Time)
		msg.MessageID = strings.Clone(strings.TrimSuffix(strings.TrimPrefix(rest, "message-id="), " "))
		return nil, ""
	case strings.HasPrefix(rest, "uid=") && d == "pickup":
		c.begin(id) // "uid=0 from=<root>": a local submission starts
		return nil, ""
	case strings.HasPrefix(rest, "reject: ") || strings.HasPrefix(rest, "milter-reject: "):
		evs := c.reject(ev, rest)
		c.fromMessage(&evs[0], c.msgs[id])
		if wholeMessage(d, rest) {
			// The message is refused and its queue file removed, with no
			// "removed" line: its state goes now.
			delete(c.msgs, id)
			delete(c.gone, id)
		}
		// A recipient refused (RCPT) after another was accepted: the
		// message goes on to its other recipients, and their events
		// need its client and sender.
		return evs, ""
	case rest == "removed":
		delete(c.msgs, id)
		delete(c.gone, id)
		return nil, ""
	case strings.HasPrefix(rest, "from=") && d == "qmgr":
		return c.queued(ev, id, rest, l.Time), ""
	case strings.HasPrefix(rest, "to="):
		return c.delivery(ev, id, d, rest, l.Time)
	case d == "smtp" || d == "lmtp":
		if sm := postfixSASLRelayFail.FindStringSubmatch(rest); sm != nil {
			ev.Security, ev.Direction, ev.Event, ev.Relay, ev.Response = true, "outbound", SignalSASLFailure, sm[1]+"["+sm[2]+"]", sm[3]
			return []Event{ev}, ""
		}
	}
	return nil, ""
}

// wholeMessage tells whether a reject with a queue id refuses the message
// itself rather than one of its recipients: cleanup's header_checks and
// body_checks, and any reject after the recipients are known (DATA,
// END-OF-MESSAGE: smtpd's data restrictions, a milter, a proxy filter).
// Postfix logs no "removed" for such a message.
func wholeMessage(daemon, rest string) bool {
	if daemon == "cleanup" {
		return true
	}
	_, stage, _ := strings.Cut(rest, ": ") // "RCPT from …", "END-OF-MESSAGE from …"
	return strings.HasPrefix(stage, "DATA ") || strings.HasPrefix(stage, "END-OF-MESSAGE ") ||
		strings.HasPrefix(stage, "END-OF-MESSAGE:")
}

// queued reads qmgr's "from=<s>, size=N, nrcpt=N (queue active)", and
// "from=<s>, status=expired, returned to sender".
func (c *Correlator) queued(ev Event, id, rest string, at time.Time) []Event {
	msg := c.msg(id, at)
	kv, status, text := keyValues(rest)
	msg.Sender = c.intern(trimAngle(kv["from"]))
	if n, err := strconv.ParseInt(kv["size"], 10, 64); err == nil {
		msg.Size = n
	}
	if status == "expired" {
		ev.Event, ev.Response = "expired", text
		c.fromMessage(&ev, msg)
		return []Event{ev}
	}
	if msg.Accepted {
		return nil // qmgr logs from= again on each retry from the deferred queue
	}
	msg.Accepted = true
	ev.Event = "accepted"
	c.fromMessage(&ev, msg)
	return []Event{ev}
}

// delivery reads a delivery agent's "to=<r>, [orig_to=<o>,] relay=...,
// delay=D, delays=a/b/c/d, dsn=X.Y.Z, status=S (reply)".
func (c *Correlator) delivery(ev Event, id, d, rest string, at time.Time) ([]Event, string) {
	kv, status, text := keyValues(rest)
	switch status {
	case "sent":
		ev.Event = "delivered"
	case "deferred", "bounced", "expired":
		ev.Event = status
	case "SOFTBOUNCE":
		// soft_bounce = yes: a recipient that would have bounced is kept
		// in the queue and tried again, as a deferred one is (postconf(5):
		// "keep mail queued that would otherwise be returned to the
		// sender"). Postfix's bounce_append hands it to the defer
		// service, logs dsn=4.X.Y and keeps the remote's 5xx reply.
		ev.Event = "deferred"
	case "deliverable", "undeliverable", "undeliverable-but-not-cached", "deliverable-but-not-cached":
		return nil, "" // address verification probes, not deliveries
	default:
		return nil, ReasonUnknownLine
	}
	msg := c.msg(id, at)
	ev.Recipient = trimAngle(kv["to"])
	ev.OrigRecipient = trimAngle(kv["orig_to"])
	if !msg.Partial { // else the attempts before the eviction are not known
		if msg.Attempts == nil {
			msg.Attempts = map[string]int{}
		}
		msg.Attempts[ev.Recipient]++
		ev.Attempt = msg.Attempts[ev.Recipient]
	}
	ev.Relay = kv["relay"]
	ev.SMTPStatus = kv["dsn"]
	ev.Response = text
	if f, err := strconv.ParseFloat(kv["delay"], 64); err == nil {
		ev.LatencyMS = f * 1000
	}
	ev.Delays, ev.HasDelays = parseDelays(kv["delays"])
	ev.SMTPCode = replyCodeOf(text)
	ev.Direction = "outbound"
	if c.inbound[d] {
		ev.Direction = "inbound"
	}
	c.fromMessage(&ev, msg)
	return []Event{ev}, ""
}

// reject reads "reject: RCPT from host[ip]: 554 5.7.1 <r>: text; from=<s>
// to=<r> proto=ESMTP helo=<h>" (smtpd, postscreen, cleanup).
func (c *Correlator) reject(ev Event, rest string) []Event {
	_, rest, _ = strings.Cut(rest, ": ") // "reject: ", "milter-reject: "
	ev.Event, ev.Direction = "rejected", "inbound"
	if i := strings.Index(rest, " from "); i >= 0 {
		if hm := hostAddr.FindStringSubmatch(rest[i+6:]); hm != nil {
			ev.ClientIP = hm[2]
		}
		if j := strings.Index(rest[i:], ": "); j >= 0 {
			rest = rest[i+j+2:]
		}
	}
	reply, tail, _ := strings.Cut(rest, "; ")
	ev.Response = reply
	ev.SMTPCode = replyCodeOf(reply)
	if m := replyCode.FindStringSubmatch(reply); m != nil {
		ev.SMTPStatus = m[2]
	}
	for _, f := range strings.FieldsFunc(tail, func(r rune) bool { return r == ' ' || r == ',' }) {
		k, v, ok := strings.Cut(f, "=")
		if !ok {
			continue
		}
		switch k {
		case "from":
			ev.Sender = trimAngle(v)
		case "to":
			ev.Recipient = trimAngle(v)
		case "helo":
			ev.Helo = trimAngle(v)
		}
	}
	return []Event{ev}
}

// fromMessage copies what earlier lines said of the message.
func (c *Correlator) fromMessage(ev *Event, msg *message) {
	if msg == nil {
		return
	}
	ev.MessageID = msg.MessageID
	if ev.Sender == "" {
		ev.Sender = msg.Sender
	}
	if ev.ClientIP == "" {
		ev.ClientIP = msg.ClientIP
	}
	if ev.Helo == "" {
		ev.Helo = msg.Helo
	}
	ev.SASLUser = msg.SASLUser
	ev.Size = msg.Size
}

// keyValues reads "k=v, k=v, status=word (text)".
func keyValues(s string) (kv map[string]string, status, text string) {
	kv = map[string]string{}
	head := s
	if i := strings.Index(s, "status="); i >= 0 {
		head = s[:i]
		st := s[i+len("status="):]
		word, after, _ := strings.Cut(st, " ")
		status = strings.TrimSuffix(word, ",")
		text = strings.TrimSpace(after)
		if strings.HasPrefix(text, "(") && strings.HasSuffix(text, ")") {
			text = text[1 : len(text)-1]
		}
	}
	for _, f := range strings.Split(head, ", ") {
		k, v, ok := strings.Cut(strings.TrimSpace(f), "=")
		if ok {
			kv[k] = strings.TrimSuffix(v, ",")
		}
	}
	return kv, status, text
}

func trimAngle(s string) string {
	return strings.TrimSuffix(strings.TrimPrefix(s, "<"), ">")
}

func replyCodeOf(text string) int {
	if m := replyCode.FindStringSubmatch(text); m != nil {
		n, _ := strconv.Atoi(m[1])
		return n
	}
	// "host x[1.2.3.4] said: 550 5.1.1 ..." and "... refused to talk to me: 421 ..."
	if i := strings.Index(text, ": "); i >= 0 {
		for _, part := range strings.Split(text, ": ")[1:] {
			if m := replyCode.FindStringSubmatch(part); m != nil {
				n, _ := strconv.Atoi(m[1])
				return n
			}
		}
	}
	return 0
}

// LogEvents counts the events of MTA log files read in order through one
// Correlator, as inputs.maillog would read them: what a DC database must
// hold after the agent read them (the demo and the soak test check it).
func LogEvents(paths ...string) (int64, error) {
	c := NewCorrelator(Options{})
	var n int64
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			return n, err
		}
		for _, line := range strings.Split(string(b), "\n") {
			evs, _ := c.Line(line, time.Now(), time.Local)
			n += int64(len(evs))
		}
	}
	return n, nil
}
