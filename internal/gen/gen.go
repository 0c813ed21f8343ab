// Package gen generates realistic mailer events (the schema of docs/DESIGN.md),
// deterministically from a seed, with a chosen fraction of bad messages.
// mailtick gen, the tests, the benchmarks and the demo all use it.
package gen

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"time"
)

// Kind says what a generated message is, so tests know what to expect.
type Kind string

const (
	Good        Kind = "good"
	MissingTime Kind = "missing_time" // valid, no time: stamped on receipt by default
	Malformed   Kind = "malformed"    // not JSON
	WrongType   Kind = "wrong_type"   // a typed key holds a value of another type
	Oversized   Kind = "oversized"    // larger than mailevents' max_message_size
)

// BadKinds are the kinds --bad draws from, in equal shares.
var BadKinds = []Kind{MissingTime, Malformed, WrongType, Oversized}

// Config sets what to generate. Zero values take the defaults of Defaults.
type Config struct {
	Seed       uint64
	Count      int           // messages; 0 = unbounded
	Start      time.Time     // time of the first event
	Interval   time.Duration // spacing of event times; events are strictly increasing
	Senders    int
	Recipients int
	Customers  int
	Mailers    int
	DC         string  // used in mailer names
	Bad        float64 // fraction of bad messages, 0..1
	// OversizedBytes is the size of an oversized message: above mailevents'
	// default max_message_size (512KiB) and below nsqd's (1MiB).
	OversizedBytes int
}

// Defaults fills unset fields.
func (c Config) Defaults() Config {
	if c.Start.IsZero() {
		c.Start = time.Now().UTC().Truncate(time.Millisecond)
	}
	if c.Interval <= 0 {
		c.Interval = time.Millisecond
	}
	if c.Senders <= 0 {
		c.Senders = 1000
	}
	if c.Recipients <= 0 {
		c.Recipients = 10000
	}
	if c.Customers <= 0 {
		c.Customers = 50
	}
	if c.Mailers <= 0 {
		c.Mailers = 8
	}
	if c.DC == "" {
		c.DC = "dc1"
	}
	if c.OversizedBytes <= 0 {
		c.OversizedBytes = 600 * 1024
	}
	return c
}

// Validate reports a config that cannot generate.
func (c Config) Validate() error {
	if c.Bad < 0 || c.Bad > 1 || math.IsNaN(c.Bad) {
		return fmt.Errorf("invalid bad fraction %v: want 0..1", c.Bad)
	}
	if c.Count < 0 {
		return fmt.Errorf("invalid count %d: must not be negative", c.Count)
	}
	return nil
}

// Event is one mailer event as mailers publish it.
type Event struct {
	Time         string  `json:"time,omitempty"`
	Event        string  `json:"event"`
	Direction    string  `json:"direction"`
	Mailer       string  `json:"mailer"`
	Customer     string  `json:"customer"`
	MessageID    string  `json:"message_id"`
	QueueID      string  `json:"queue_id"`
	Sender       string  `json:"sender"`
	Recipient    string  `json:"recipient"`
	SenderIP     string  `json:"sender_ip"`
	Helo         string  `json:"helo"`
	SMTPCode     int     `json:"smtp_code"`
	SMTPStatus   string  `json:"smtp_status"`
	SMTPResponse string  `json:"smtp_response"`
	LatencyMs    float64 `json:"latency_ms"`
	SizeBytes    int     `json:"size_bytes"`
	SpamScore    float64 `json:"spam_score"`
	Attempt      int     `json:"attempt"`
}

// Message is one generated NSQ message.
type Message struct {
	Seq   int
	Kind  Kind
	Body  []byte
	Event Event     // what the body holds (for Good and MissingTime)
	Time  time.Time // the event time written in it (zero for MissingTime)
}

// Generator yields messages; it is not safe for concurrent use.
type Generator struct {
	cfg Config
	rng *rand.Rand
	seq int
}

// New returns a generator; the same Config yields the same messages.
func New(cfg Config) (*Generator, error) {
	cfg = cfg.Defaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &Generator{cfg: cfg, rng: rand.New(rand.NewPCG(cfg.Seed, 0x6d61696c7469636b))}, nil
}

// outcome is one kind of event, its share, and its replies: the first
// is the generic one, the others are used where the recipient's provider
// matches (replies a Postfix mailer would log, "<rcpt>: host H said: ...").
type outcome struct {
	event   string
	weight  int
	replies []reply
}

type reply struct {
	provider string // "" any
	code     int
	status   string
	text     string // %[1]s queue id, %[2]s recipient, %[3]s client IP, %[4]s sender
}

// The replies are the providers' published ones (Gmail's "SMTP error
// reference", Microsoft's "Email non-delivery reports in Exchange Online",
// Yahoo's "SMTP error codes", postgrey's greylisting text, Spamhaus's
// DNSBL reject as Postfix writes it), so that the classifier sees what it
// will see; the events stay generated, for volume.
var outcomes = []outcome{
	{"delivered", 66, []reply{{"", 250, "2.0.0", "250 2.0.0 Ok: queued as %[1]s"}}},
	{"accepted", 12, []reply{{"", 250, "2.0.0", "250 2.0.0 <%[2]s> accepted from [%[3]s]"}}},
	{"deferred", 9, []reply{
		{"", 451, "4.7.1", "451 4.7.1 Client host [%[3]s] temporarily blocked, try again later"},
		{"", 450, "4.2.0", "<%[2]s>: host mx.example.org[192.0.2.25] said: 450 4.2.0 <%[2]s>: Recipient address rejected: Greylisted, see http://postgrey.schweikert.ch/help/example.org.html (in reply to RCPT TO command)"},
		{"gmail", 452, "4.2.2", "<%[2]s>: host gmail-smtp-in.l.google.com[142.250.102.27] said: 452-4.2.2 The recipient's inbox is out of storage space. Please direct the recipient to 452 4.2.2 https://support.google.com/mail/?p=OverQuotaTemp (in reply to RCPT TO command)"},
		{"gmail", 421, "4.7.28", "<%[2]s>: host gmail-smtp-in.l.google.com[142.250.102.27] said: 421-4.7.28 Gmail has detected an unusual rate of mail originating from your IP address [%[3]s]. (in reply to end of DATA command)"},
		{"yahoo", 421, "4.7.0", "<%[2]s>: host mta6.am0.yahoodns.net[67.195.204.72] said: 421 4.7.0 [TSS04] Messages from %[3]s temporarily deferred due to unexpected volume or user complaints - 4.16.55.1; see https://postmaster.yahooinc.com/error-codes (in reply to MAIL FROM command)"},
		{"microsoft", 451, "4.7.650", "<%[2]s>: host hotmail-com.olc.protection.outlook.com[52.101.0.1] said: 451 4.7.650 The mail server [%[3]s] has been temporarily rate limited due to IP reputation. (in reply to MAIL FROM command)"},
	}},
	{"bounced", 6, []reply{
		{"", 550, "5.1.1", "550 5.1.1 <%[2]s>: Recipient address rejected: User unknown"},
		{"gmail", 550, "5.1.1", "<%[2]s>: host gmail-smtp-in.l.google.com[142.250.102.27] said: 550-5.1.1 The email account that you tried to reach does not exist. Please try double-checking the recipient's email address for typos or unnecessary spaces. For more information, go to https://support.google.com/mail/?p=NoSuchUser (in reply to RCPT TO command)"},
		{"microsoft", 550, "5.5.0", "<%[2]s>: host hotmail-com.olc.protection.outlook.com[52.101.0.1] said: 550 5.5.0 Requested action not taken: mailbox unavailable (S2017062302). (in reply to RCPT TO command)"},
		{"microsoft", 550, "5.7.1", "<%[2]s>: host hotmail-com.olc.protection.outlook.com[52.101.0.1] said: 550 5.7.1 Unfortunately, messages from [%[3]s] weren't sent. Please contact your Internet service provider since part of their network is on our block list (S3150). (in reply to MAIL FROM command)"},
	}},
	{"rejected", 5, []reply{{"", 554, "5.7.1", "554 5.7.1 Service unavailable; client [%[3]s] blocked using zen.spamhaus.org, sender %[4]s"}}},
	{"failed", 2, []reply{{"", 552, "5.2.2", "552 5.2.2 <%[2]s>: mailbox full (quota 1.2.3.4.5 exceeded on 2026-11-22)"}}},
}

// pick is the reply of o to a recipient at provider: one of the
// provider's own, or the generic one, by n.
func (o outcome) pick(provider string, n uint64) reply {
	var own []reply
	for _, r := range o.replies[1:] {
		if r.provider == "" || r.provider == provider {
			own = append(own, r)
		}
	}
	if len(own) == 0 || n%3 == 0 {
		return o.replies[0]
	}
	return own[n%uint64(len(own))]
}

var totalWeight = func() int {
	n := 0
	for _, o := range outcomes {
		n += o.weight
	}
	return n
}()

// Next returns the next message.
func (g *Generator) Next() Message {
	r := g.rng
	seq := g.seq
	g.seq++
	tm := g.cfg.Start.Add(time.Duration(seq) * g.cfg.Interval)
	if g.cfg.Interval > 1 {
		tm = tm.Add(time.Duration(r.Int64N(int64(g.cfg.Interval))))
	}
	ev := g.event(tm)

	kind := Good
	if g.cfg.Bad > 0 && r.Float64() < g.cfg.Bad {
		kind = BadKinds[r.IntN(len(BadKinds))]
	}
	msg := Message{Seq: seq, Kind: kind, Event: ev, Time: tm}
	switch kind {
	case MissingTime:
		msg.Event.Time = ""
		msg.Time = time.Time{}
		msg.Body = marshal(msg.Event)
	case Malformed:
		body := marshal(ev)
		msg.Body = body[:len(body)/2]
	case WrongType:
		body := marshal(ev)
		if r.IntN(2) == 0 {
			msg.Body = []byte(strings.Replace(string(body), fmt.Sprintf(`"smtp_code":%d`, ev.SMTPCode), `"smtp_code":"five-fifty"`, 1))
		} else {
			msg.Body = []byte(strings.Replace(string(body), `"latency_ms":`, `"latency_ms":true,"x":`, 1))
		}
	case Oversized:
		ev.SMTPResponse = strings.Repeat("x", g.cfg.OversizedBytes)
		msg.Body = marshal(ev)
	default:
		msg.Body = marshal(ev)
	}
	return msg
}

// marshal writes an event as mailers do: no HTML escaping of <, > and &.
func marshal(ev Event) []byte {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(ev); err != nil {
		panic(err) // Event holds only strings and numbers
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte{'\n'})
}

func (g *Generator) event(tm time.Time) Event {
	r := g.rng
	c := g.cfg
	pick := r.IntN(totalWeight)
	o := outcomes[0]
	for _, x := range outcomes {
		if pick < x.weight {
			o = x
			break
		}
		pick -= x.weight
	}
	direction := "outbound"
	if r.IntN(2) == 0 {
		direction = "inbound"
	}
	// A customer sends from its own domain, as a platform's customers do:
	// the sender is one of those at the customer's domain.
	customer := r.IntN(c.Customers)
	senderN := r.IntN(max(1, c.Senders/domains))*domains + customer%domains
	sender := g.address("sender", senderN)
	recipient := g.address("rcpt", r.IntN(c.Recipients))
	ip := g.ip(senderN % domains)
	qid := r.Uint64() & 0xFFFFFFFFFF
	queueID := fmt.Sprintf("%010X", qid)
	rep := o.pick(providerOf(recipient), qid>>20)
	latency := math.Round(math.Exp(r.NormFloat64()*0.9+5.5)*10) / 10 // median ~245 ms, long tail
	return Event{
		Time:         tm.Format(time.RFC3339Nano),
		Event:        o.event,
		Direction:    direction,
		Mailer:       fmt.Sprintf("mx%02d.%s.example.net", r.IntN(c.Mailers)+1, c.DC),
		Customer:     fmt.Sprintf("c%05d", customer+1),
		MessageID:    fmt.Sprintf("<%016x@mail.example.com>", r.Uint64()),
		QueueID:      queueID,
		Sender:       sender,
		Recipient:    recipient,
		SenderIP:     ip,
		Helo:         fmt.Sprintf("mail%d.%s", senderN%3, domainOf(sender)),
		SMTPCode:     rep.code,
		SMTPStatus:   rep.status,
		SMTPResponse: fmt.Sprintf(rep.text, queueID, recipient, ip, sender),
		LatencyMs:    latency,
		SizeBytes:    1000 + r.IntN(200000),
		SpamScore:    math.Round(r.Float64()*100) / 10,
		Attempt:      1 + r.IntN(3),
	}
}

// address returns a mailbox; some carry plus-tags or dots, as real ones do.
// domains is how many mail domains the generated addresses spread over.
const domains = 97

// rcptDomains are where recipients are, as the mailbox providers' shares
// of a European B2C list look: of every 97 recipient domains, the first
// 25 are Gmail's, and so on; the rest are companies' own.
var rcptDomains = []struct {
	upTo   int
	domain string
}{{25, "gmail.com"}, {35, "outlook.com"}, {40, "hotmail.com"}, {48, "yahoo.com"}, {52, "icloud.com"}, {55, "gmx.de"}, {57, "aol.com"}}

// providerOf is the provider a generated recipient is at (the one its
// replies come from; processors.mailclassify finds it by its own table).
func providerOf(addr string) string {
	switch domainOf(addr) {
	case "gmail.com":
		return "gmail"
	case "outlook.com", "hotmail.com":
		return "microsoft"
	case "yahoo.com":
		return "yahoo"
	}
	return ""
}

func (g *Generator) address(role string, n int) string {
	domain := fmt.Sprintf("example%d.org", n%domains)
	if role == "rcpt" {
		for _, d := range rcptDomains {
			if n%domains < d.upTo {
				domain = d.domain
				break
			}
		}
	}
	switch n % 10 {
	case 0:
		return fmt.Sprintf("%s%d+news@%s", role, n, domain)
	case 1:
		return fmt.Sprintf("first.last%d@%s", n, domain)
	default:
		return fmt.Sprintf("%s%d@%s", role, n, domain)
	}
}

func domainOf(addr string) string {
	return addr[strings.LastIndexByte(addr, '@')+1:]
}

// ip returns one of the four sending addresses of a sender domain, as a
// domain's outbound relays would be; one domain in five sends over IPv6.
func (g *Generator) ip(domain int) string {
	host := domain*4 + g.rng.IntN(4)
	if domain%5 == 0 {
		return fmt.Sprintf("2001:db8:%x::%x", domain+1, host%4+1)
	}
	return fmt.Sprintf("203.0.%d.%d", 113+host/254, 1+host%254)
}

// Line renders a message's event as inputs.mailevents stores it (the raw
// mail_event point), for tests that seed a database directly.
func (m Message) Line(dc string) string {
	ev := m.Event
	return fmt.Sprintf("mail_event,customer=%s,dc=%s,direction=%s,event=%s events=1i,queue_id=%q,sender=%q,recipient=%q,sender_ip=%q,helo=%q,latency_ms=%v %d\n",
		ev.Customer, dc, ev.Direction, ev.Event, ev.QueueID, ev.Sender, ev.Recipient, ev.SenderIP, ev.Helo, ev.LatencyMs, m.Time.UnixNano())
}
