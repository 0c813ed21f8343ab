package maillog

import (
	"bufio"
	"encoding/json"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.yaml.in/yaml/v3"
)

var now = time.Date(2026, 11, 23, 17, 0, 0, 0, time.UTC)

func TestSplitLine(t *testing.T) {
	tests := []struct {
		name, line string
		want       Line
		err        bool
	}{
		{"RFC 3164, as maillog_file writes it", "Nov 23 16:26:55 mx1 postfix/smtp[20061]: 6A4C6984897: removed",
			Line{Time: time.Date(2026, 11, 23, 16, 26, 55, 0, time.UTC), HasTime: true, Host: "mx1", Program: "postfix/smtp", Message: "6A4C6984897: removed"}, false},
		{"RFC 3164, one-digit day, with a priority", "<22>Nov  3 01:02:03 mx1 postfix/qmgr[1]: x",
			Line{Time: time.Date(2026, 11, 3, 1, 2, 3, 0, time.UTC), HasTime: true, Host: "mx1", Program: "postfix/qmgr", Message: "x"}, false},
		{"RFC 3164 in December, read in January, is last year's", "Dec 31 23:59:59 mx1 postfix/smtp[1]: x",
			Line{}, false},
		{"RFC 3339 (rsyslog high precision)", "2026-11-23T16:26:55.123456+01:00 mx1 postfix/submission/smtpd[9]: y",
			Line{Time: time.Date(2026, 11, 23, 15, 26, 55, 123456000, time.UTC), HasTime: true, Host: "mx1", Program: "postfix/submission/smtpd", Message: "y"}, false},
		{"RFC 5424", "<22>1 2026-11-23T16:26:55.5Z mx1 postfix/smtp 123 - - 6A4C6984897: removed",
			Line{Time: time.Date(2026, 11, 23, 16, 26, 55, 5e8, time.UTC), HasTime: true, Host: "mx1", Program: "postfix/smtp", Message: "6A4C6984897: removed"}, false},
		{"no syslog header", "postfix/smtp[1]: 6A4C6984897: removed",
			Line{Program: "postfix/smtp", Message: "6A4C6984897: removed"}, false},
		{"not a log line", "hello world", Line{}, true},
		{"a broken timestamp", "2026-13-45T99:00:00Z mx1 postfix/smtp[1]: x", Line{}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			at := now
			if strings.HasPrefix(tt.name, "RFC 3164 in December") {
				at = time.Date(2027, 1, 1, 0, 0, 30, 0, time.UTC)
				tt.want = Line{Time: time.Date(2026, 12, 31, 23, 59, 59, 0, time.UTC), HasTime: true, Host: "mx1", Program: "postfix/smtp", Message: "x"}
			}
			got, err := SplitLine(tt.line, at, time.UTC)
			if tt.err {
				require.Error(t, err)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tt.want, got)
		})
	}
}

func readLines(t *testing.T, path string) []string {
	t.Helper()
	f, err := os.Open(path)
	require.NoError(t, err)
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		out = append(out, sc.Text())
	}
	return out
}

// TestRealPostfixLog reads the maillog_file a real Postfix wrote (see
// testdata/SOURCES.md): every event, as Postfix logged it.
func TestRealPostfixLog(t *testing.T) {
	c := NewCorrelator(Options{})
	var evs []Event
	for _, line := range readLines(t, "testdata/postfix-3.7.11-debian12.log") {
		got, reason := c.Line(line, now, time.UTC)
		require.Empty(t, reason, line)
		evs = append(evs, got...)
	}
	type brief struct {
		Event, Queue, Sender, Recipient, Client, Status string
		Code                                            int
		Latency                                         float64
		Size                                            int64
		Direction                                       string
	}
	var got []brief
	for _, e := range evs {
		got = append(got, brief{e.Event, e.QueueID, e.Sender, e.Recipient, e.ClientIP, e.SMTPStatus, e.SMTPCode, e.LatencyMS, e.Size, e.Direction})
	}
	require.Equal(t, []brief{
		{"accepted", "68ABA984896", "alice@example.com", "", "127.0.0.1", "", 0, 0, 290, ""},
		{"accepted", "6A4C6984897", "bob@example.com", "", "127.0.0.1", "", 0, 0, 310, ""},
		{"rejected", "", "carol@example.com", "reject-me@example.net", "127.0.0.1", "5.7.1", 554, 0, 0, "inbound"},
		{"lost_connection", "", "", "", "127.0.0.1", "", 0, 0, 0, "inbound"}, // a security signal: "lost connection after RCPT"
		{"delivered", "6A4C6984897", "bob@example.com", "ok2@example.net", "127.0.0.1", "2.0.0", 250, 70, 310, "outbound"},
		{"bounced", "68ABA984896", "alice@example.com", "bad1@example.net", "127.0.0.1", "5.1.1", 550, 100, 290, "outbound"},
		{"deferred", "68ABA984896", "alice@example.com", "later1@example.net", "127.0.0.1", "4.2.0", 450, 110, 290, "outbound"},
		{"delivered", "68ABA984896", "alice@example.com", "ok1@example.net", "127.0.0.1", "2.0.0", 250, 110, 290, "outbound"},
		{"accepted", "814F398489C", "", "", "", "", 0, 0, 2417, ""},
		{"delivered", "814F398489C", "", "alice@example.com", "", "2.0.0", 250, 0, 2417, "outbound"},
	}, got)
	require.Equal(t, "m1@example.com", strings.Trim(evs[5].MessageID, "<>"))
	require.Equal(t, [4]float64{20, 40, 0, 40}, evs[5].Delays)
	require.Equal(t, 1, c.Open(), "68ABA984896 waits for its deferred recipient; the others were removed")

	m := evs[5].Metric()
	require.Equal(t, map[string]string{"event": "bounced", "direction": "outbound", "mailer": "mx1"}, m.Tags())
	require.Equal(t, int64(550), m.Fields()["smtp_code"])
	require.Equal(t, 100.0, m.Fields()["latency_ms"])
	require.Equal(t, int64(1), m.Fields()["attempt"])
	require.Equal(t, int64(1795451215), m.Time().Unix(), "the line's second")
	again := NewCorrelator(Options{})
	var replayed []Event
	for _, line := range readLines(t, "testdata/postfix-3.7.11-debian12.log") {
		got, _ := again.Line(line, now, time.UTC)
		replayed = append(replayed, got...)
	}
	require.Equal(t, m.Time(), replayed[5].Metric().Time(), "a replayed line lands on its point")
	require.NotEqual(t, m.Time(), evs[6].Metric().Time(), "two lines of one second are two points")
}

// TestPublicPostfixSamples reads 128 messages of real servers (see
// testdata/SOURCES.md): no line is refused, and each event is what the
// line says. The same under the syslog names of the field: a second
// instance (multi_instance_name "postfix-mx", as postmulti names them) and
// a master.cf service with its own syslog_name ("postfix/submission/smtpd").
func TestPublicPostfixSamples(t *testing.T) {
	var byLine map[string][]Event
	for _, prefix := range []string{"postfix/", "postfix-mx/", "postfix/submission/"} {
		c := NewCorrelator(Options{})
		counts := map[string]int{}
		byLine = map[string][]Event{}
		for _, row := range readLines(t, "testdata/postfix-grok-patterns.tsv") {
			if strings.HasPrefix(row, "#") {
				continue
			}
			d, msg, ok := strings.Cut(row, "\t")
			require.True(t, ok, row)
			evs, reason := c.Line("Nov 23 16:00:00 mx1 "+prefix+d+"[1]: "+msg, now, time.UTC)
			require.Empty(t, reason, row)
			for _, e := range evs {
				counts[e.Event]++
			}
			byLine[msg] = evs
		}
		require.Equal(t, map[string]int{"accepted": 1, "delivered": 8, "deferred": 2, "bounced": 4, "expired": 2, "rejected": 12,
			// the security signals (TestSecuritySignals holds them to the samples' own expectations)
			"postscreen": 20, "tls": 8, "sasl_failure": 2, "lost_connection": 6}, counts, prefix)
	}

	one := func(prefix string) Event {
		for msg, evs := range byLine {
			if strings.HasPrefix(msg, prefix) {
				require.Len(t, evs, 1, msg)
				return evs[0]
			}
		}
		t.Fatalf("no sample starts with %q", prefix)
		return Event{}
	}
	ipv6 := one("NOQUEUE: reject: RCPT from unknown[2001:980:cfb1:1:82f:f74e:a45c:3033]")
	require.Equal(t, "2001:980:cfb1:1:82f:f74e:a45c:3033", ipv6.ClientIP)
	require.Equal(t, 504, ipv6.SMTPCode)
	require.Equal(t, "5.5.2", ipv6.SMTPStatus)
	require.Equal(t, "test", ipv6.Helo)
	ps := one("NOQUEUE: reject: RCPT from [27.157.200.233]:4984")
	require.Equal(t, "27.157.200.233", ps.ClientIP, "postscreen's [ip]:port")
	require.Equal(t, "4ECEA00F.9040306@example.com", ps.Recipient)
	pipe := one("153053D: to=<tom@example.com>, orig_to=<admin@example.com>")
	require.Equal(t, "inbound", pipe.Direction)
	require.Equal(t, "admin@example.com", pipe.OrigRecipient)
	require.Equal(t, 3400.0, pipe.LatencyMS)
	long := one("AD6E41CDC05C: to=<admin@example.com>")
	require.Equal(t, "delivered", long.Event)
	gmail := one("4E74613FE76: to=<redacted@gmail.com>")
	require.Equal(t, "bounced", gmail.Event)
	require.Equal(t, "5.7.1", gmail.SMTPStatus)
	exp := one("66C15648577B: from=<uvnhbl@yahoo.com.tw>, status=expired")
	require.Equal(t, "expired", exp.Event)
	require.Equal(t, "uvnhbl@yahoo.com.tw", exp.Sender)
	require.Empty(t, byLine["NOQUEUE: reject_warning: RCPT from example.com[93.184.216.34]: 553 5.7.1 <sender@example.com>: Sender address rejected: not owned by user ph123; from=<sender@example.com> to=<recipient@example.com> proto=ESMTP helo=<example.com>"],
		"a reject_warning rejects nothing")
}

// TestCorrelatorBounded: a log full of messages that never end holds at
// most MaxMessages queue ids; the oldest go first (a hundredth at a time),
// counted.
func TestCorrelatorBounded(t *testing.T) {
	c := NewCorrelator(Options{MaxMessages: 100, TTL: time.Hour})
	at := now
	for i := 0; i < 1000; i++ {
		at = at.Add(time.Second)
		id := hexID(i)
		_, reason := c.Line(at.Format("Jan _2 15:04:05")+" mx1 postfix/qmgr[1]: "+id+": from=<a@example.com>, size=1, nrcpt=1 (queue active)", at, time.UTC)
		require.Empty(t, reason)
	}
	require.Equal(t, 100, c.Open())
	require.Equal(t, int64(900), c.Evicted)
	for i := 900; i < 1000; i++ {
		require.Contains(t, c.msgs, hexID(i), "the newest stay")
	}
	// Two hours later, the TTL takes the rest.
	later := at.Add(2 * time.Hour)
	c.Line(later.Format("Jan _2 15:04:05")+" mx1 postfix/qmgr[1]: ABCDEF123: from=<a@example.com>, size=1, nrcpt=1 (queue active)", later, time.UTC)
	require.Equal(t, 1, c.Open())
	for i := 0; i < 1000; i++ {
		c.Line(later.Format("Jan _2 15:04:05")+" mx1 postfix/smtpd[1]: NOQUEUE: reject: RCPT from x[192.0.2.1]: 554 5.7.1 <b@example.net>: Relay access denied; from=<a@example.com> to=<b@example.net> proto=ESMTP helo=<x>", later, time.UTC)
	}
	require.Equal(t, 1, c.Open(), "NOQUEUE lines hold no state")

	// The evicted ids are remembered, as many as MaxMessages, the latest.
	var st struct {
		EvictedIDs []string `json:"evicted_ids"`
	}
	b, err := c.Snapshot()
	require.NoError(t, err)
	require.NoError(t, json.Unmarshal(b, &st))
	var last []string
	for i := 900; i < 1000; i++ {
		last = append(last, hexID(i))
	}
	require.ElementsMatch(t, last, st.EvictedIDs, "the TTL took 900…999 last")
}

// TestEvictedQueueIDComesBack: a queue id whose state was evicted and that
// is seen again (qmgr's retry of a deferred message, its delivery) is not
// accepted a second time, and its attempts, unknown, are left out rather
// than counted from 1 again; through a checkpoint too. A new message
// reusing an evicted id (it starts with smtpd's client=) is new.
func TestEvictedQueueIDComesBack(t *testing.T) {
	opt := Options{MaxMessages: 10, TTL: 24 * time.Hour}
	c := NewCorrelator(opt)
	at := now
	read := func(line string) []Event {
		t.Helper()
		at = at.Add(time.Second)
		evs, reason := c.Line(at.Format("Jan _2 15:04:05")+" mx1 "+line, at, time.UTC)
		require.Empty(t, reason, line)
		return evs
	}
	read("postfix/smtpd[1]: 4F2A1C0D3B: client=unknown[192.0.2.9]")
	read("postfix/cleanup[2]: 4F2A1C0D3B: message-id=<m1@example.com>")
	evs := read("postfix/qmgr[3]: 4F2A1C0D3B: from=<a@example.com>, size=420, nrcpt=1 (queue active)")
	require.Len(t, evs, 1)
	require.Equal(t, "accepted", evs[0].Event)
	evs = read("postfix/smtp[4]: 4F2A1C0D3B: to=<b@example.org>, relay=none, delay=1, delays=0.1/0.1/0.8/0, dsn=4.4.1, status=deferred (connect to mx.example.org[198.51.100.5]:25: Connection refused)")
	require.Equal(t, 1, evs[0].Attempt)
	for i := 0; i < 10; i++ { // a busy while: ten newer messages push it out
		read("postfix/qmgr[3]: " + hexID(i) + ": from=<x@example.com>, size=1, nrcpt=1 (queue active)")
	}
	require.Equal(t, int64(1), c.Evicted)
	b, err := c.Snapshot() // the plugin's checkpoint
	require.NoError(t, err)
	c = NewCorrelator(opt)
	require.NoError(t, c.Restore(b))

	require.Empty(t, read("postfix/qmgr[3]: 4F2A1C0D3B: from=<a@example.com>, size=420, nrcpt=1 (queue active)"),
		"qmgr's retry from the deferred queue: accepted once only")
	evs = read("postfix/smtp[4]: 4F2A1C0D3B: to=<b@example.org>, relay=mx.example.org[198.51.100.5]:25, delay=1000, delays=999/0.1/0.5/0.4, dsn=2.0.0, status=sent (250 2.0.0 Ok)")
	require.Len(t, evs, 1)
	require.Equal(t, "delivered", evs[0].Event)
	require.Equal(t, "a@example.com", evs[0].Sender, "from the retry's from=")
	require.Zero(t, evs[0].Attempt, "the second attempt, not known to be: not attempt 1")
	require.NotContains(t, evs[0].Metric().Fields(), "attempt")
	require.Equal(t, 1000000.0, evs[0].Metric().Fields()["latency_ms"])
	read("postfix/qmgr[3]: 4F2A1C0D3B: removed")

	// hexID(0) went when 4F2A1C0D3B came back; its id is reused by a new
	// message, which is accepted, its attempts counted from 1.
	read("postfix/smtpd[1]: " + hexID(0) + ": client=unknown[192.0.2.10]")
	evs = read("postfix/qmgr[3]: " + hexID(0) + ": from=<n@example.com>, size=9, nrcpt=1 (queue active)")
	require.Len(t, evs, 1)
	require.Equal(t, "accepted", evs[0].Event)
	require.Equal(t, "192.0.2.10", evs[0].ClientIP)
	evs = read("postfix/smtp[4]: " + hexID(0) + ": to=<b@example.org>, relay=mx.example.org[198.51.100.5]:25, delay=1, delays=0.1/0.1/0.5/0.3, dsn=2.0.0, status=sent (250 2.0.0 Ok)")
	require.Equal(t, 1, evs[0].Attempt)
}

// TestRFC3164Time: a timestamp without year nor zone is placed by the
// reader's clock: the year that puts it latest but not ahead (a day's
// margin), Feb 29 in a leap year, and in the hour a fall back repeats the
// instant that is not ahead of the clock.
func TestRFC3164Time(t *testing.T) {
	berlin, err := time.LoadLocation("Europe/Berlin")
	require.NoError(t, err)
	utc := func(y int, m time.Month, d, h, mi, s int) time.Time { return time.Date(y, m, d, h, mi, s, 0, time.UTC) }
	for _, tt := range []struct {
		name, stamp string
		now         time.Time
		loc         *time.Location
		want        time.Time
	}{
		{"a few seconds ahead across New Year: next year's", "Jan  1 00:00:02", utc(2026, 12, 31, 23, 59, 58), time.UTC, utc(2027, 1, 1, 0, 0, 2)},
		{"December read in January: last year's", "Dec 31 23:59:59", utc(2027, 1, 1, 0, 0, 30), time.UTC, utc(2026, 12, 31, 23, 59, 59)},
		{"hours ahead (a zone set wrong): this year's", "Nov 23 20:00:00", utc(2026, 11, 23, 10, 0, 0), time.UTC, utc(2026, 11, 23, 20, 0, 0)},
		{"Feb 29 read in January: the leap year before", "Feb 29 12:00:00", utc(2029, 1, 10, 8, 0, 0), time.UTC, utc(2028, 2, 29, 12, 0, 0)},
		{"Feb 29 read on Mar 1", "Feb 29 23:59:59", utc(2028, 3, 1, 0, 0, 5), time.UTC, utc(2028, 2, 29, 23, 59, 59)},
		{"Feb 29 read years on", "Feb 29 12:00:00", utc(2026, 11, 23, 17, 0, 0), time.UTC, utc(2024, 2, 29, 12, 0, 0)},
		{"the repeated hour's first pass, read as written", "Oct 25 02:30:00", utc(2026, 10, 25, 0, 30, 5), berlin, utc(2026, 10, 25, 0, 30, 0)},
		{"its second pass, read as written", "Oct 25 02:30:00", utc(2026, 10, 25, 1, 30, 5), berlin, utc(2026, 10, 25, 1, 30, 0)},
		{"its second pass, the reader's clock a minute behind", "Oct 25 02:30:00", utc(2026, 10, 25, 1, 29, 0), berlin, utc(2026, 10, 25, 1, 30, 0)},
		{"its first minute's first pass", "Oct 25 02:00:00", utc(2026, 10, 25, 0, 0, 1), berlin, utc(2026, 10, 25, 0, 0, 0)},
		{"the hour after it", "Oct 25 03:00:00", utc(2026, 10, 25, 2, 0, 1), berlin, utc(2026, 10, 25, 2, 0, 0)},
		{"the hour before it", "Oct 25 01:59:59", utc(2026, 10, 25, 0, 0, 1), berlin, utc(2026, 10, 24, 23, 59, 59)},
		{"summer time", "Jul  1 12:00:00", utc(2026, 7, 1, 10, 0, 5), berlin, utc(2026, 7, 1, 10, 0, 0)},
	} {
		t.Run(tt.name, func(t *testing.T) {
			l, err := SplitLine(tt.stamp+" mx1 postfix/smtp[1]: x", tt.now, tt.loc)
			require.NoError(t, err)
			require.Equal(t, tt.want, l.Time)
		})
	}
}

// TestRejectRCPTKeepsTheMessage: Postfix refuses one recipient of a
// transaction after accepting another ("<queue id>: reject: RCPT"); the
// message goes on to the other: the reject is an event, and the message's
// state stays for the events after it. A reject of the message itself
// (cleanup, END-OF-MESSAGE) ends it: Postfix logs no "removed" for it.
func TestRejectRCPTKeepsTheMessage(t *testing.T) {
	c := NewCorrelator(Options{})
	var evs []Event
	for _, line := range []string{
		"Nov 23 16:30:00 mx1 postfix/smtpd[123]: 4F2A1C0D3B: client=unknown[192.0.2.9]",
		"Nov 23 16:30:00 mx1 postfix/smtpd[123]: 4F2A1C0D3B: reject: RCPT from unknown[192.0.2.9]: 550 5.1.1 <nobody@example.net>: Recipient address rejected: User unknown in local recipient table; from=<a@example.com> to=<nobody@example.net> proto=ESMTP helo=<x>",
		"Nov 23 16:30:01 mx1 postfix/cleanup[124]: 4F2A1C0D3B: message-id=<m9@example.com>",
		"Nov 23 16:30:01 mx1 postfix/qmgr[125]: 4F2A1C0D3B: from=<a@example.com>, size=420, nrcpt=1 (queue active)",
		"Nov 23 16:30:02 mx1 postfix/smtp[126]: 4F2A1C0D3B: to=<b@example.org>, relay=mx.example.org[198.51.100.5]:25, delay=2, delays=0.1/0.1/0.8/1, dsn=2.0.0, status=sent (250 2.0.0 Ok)",
		"Nov 23 16:30:02 mx1 postfix/qmgr[125]: 4F2A1C0D3B: removed",
	} {
		got, reason := c.Line(line, now, time.UTC)
		require.Empty(t, reason, line)
		evs = append(evs, got...)
	}
	require.Len(t, evs, 3)
	rj, acc, dlv := evs[0], evs[1], evs[2]
	require.Equal(t, "rejected", rj.Event)
	require.Equal(t, "4F2A1C0D3B", rj.QueueID)
	require.Equal(t, "nobody@example.net", rj.Recipient)
	require.Equal(t, "192.0.2.9", rj.ClientIP)
	require.Equal(t, 550, rj.SMTPCode)
	require.Equal(t, "accepted", acc.Event)
	require.Equal(t, "192.0.2.9", acc.ClientIP)
	require.Equal(t, "delivered", dlv.Event)
	require.Equal(t, "b@example.org", dlv.Recipient)
	require.Equal(t, "192.0.2.9", dlv.ClientIP, "the client is still known")
	require.Equal(t, "<m9@example.com>", dlv.MessageID)
	require.Equal(t, "192.0.2.9", dlv.Metric().Fields()["sender_ip"])
	require.Zero(t, c.Open(), "removed")

	c.Line("Nov 23 16:31:00 mx1 postfix/smtpd[123]: 4104E3D: client=x.example.com[61.238.241.86]", now, time.UTC)
	evs, _ = c.Line("Nov 23 16:31:01 mx1 postfix/cleanup[124]: 4104E3D: milter-reject: END-OF-MESSAGE from x.example.com[61.238.241.86]: 5.7.1 Blocked by SpamAssassin; from=<w@example.com> to=<v@example.net> proto=ESMTP helo=<x>", now, time.UTC)
	require.Len(t, evs, 1)
	require.Equal(t, "rejected", evs[0].Event)
	require.Zero(t, c.Open(), "the whole message refused: nothing more of it comes")
}

// TestDeliveryStatuses: soft_bounce's status=SOFTBOUNCE is a deferral
// (the recipient stays queued); a status this reader does not know is
// refused with a reason, not dropped unseen.
func TestDeliveryStatuses(t *testing.T) {
	c := NewCorrelator(Options{})
	evs, reason := c.Line("Nov 23 16:30:02 mx1 postfix/smtp[126]: 4F2A1C0D3B: to=<b@example.org>, relay=mx.example.org[198.51.100.5]:25, delay=1.2, delays=0.1/0/0.6/0.5, dsn=4.1.1, status=SOFTBOUNCE (host mx.example.org[198.51.100.5] said: 550 5.1.1 <b@example.org>: Recipient address rejected: User unknown (in reply to RCPT TO command))", now, time.UTC)
	require.Empty(t, reason)
	require.Len(t, evs, 1)
	require.Equal(t, "deferred", evs[0].Event)
	require.Equal(t, 550, evs[0].SMTPCode)
	require.Equal(t, "4.1.1", evs[0].SMTPStatus)
	require.Equal(t, 1, evs[0].Attempt)

	evs, reason = c.Line("Nov 23 16:30:03 mx1 postfix/smtp[126]: 4F2A1C0D3B: to=<c@example.org>, relay=mx.example.org[198.51.100.5]:25, delay=1.2, delays=0.1/0/0.6/0.5, dsn=2.0.0, status=quarantined (250 2.0.0 Ok)", now, time.UTC)
	require.Equal(t, ReasonUnknownLine, reason)
	require.Empty(t, evs)
	require.Equal(t, 1, c.Unknown[ReasonUnknownLine])
}

func hexID(i int) string {
	const digits = "0123456789ABCDEF"
	b := []byte("A0000000")
	for j := len(b) - 1; j > 0 && i > 0; j-- {
		b[j] = digits[i%16]
		i /= 16
	}
	return string(b)
}

// TestEximTestSuiteLog reads the main logs of Exim's own test suite (see
// testdata/SOURCES.md): every arrival, delivery, deferral, bounce and
// reject is one event, counted apart by the flag each line has.
func TestEximTestSuiteLog(t *testing.T) {
	c := NewCorrelator(Options{Host: "exim1"})
	lines := readLines(t, "testdata/exim-testsuite.log")
	counts := map[string]int{}
	var evs []Event
	for _, line := range lines {
		got, reason := c.Line(line, now, time.UTC)
		require.Empty(t, reason, line)
		for _, e := range got {
			counts[e.Event]++
		}
		evs = append(evs, got...)
	}
	want := map[string]int{}
	for _, line := range lines {
		f := strings.Fields(line)
		if len(f) > 2 && strings.HasPrefix(f[2], "[") { // [pid]
			f = append(f[:2], f[3:]...)
		}
		switch {
		case len(f) > 3 && f[3] == "<=":
			want["accepted"]++
		case len(f) > 3 && (f[3] == "=>" || f[3] == "->" || f[3] == ">>"):
			want["delivered"]++
		case len(f) > 3 && f[3] == "**":
			want["bounced"]++
		case len(f) > 3 && f[3] == "==":
			want["deferred"]++
		case strings.Contains(line, "rejected RCPT") || strings.Contains(line, "rejected by non-SMTP ACL"):
			want["rejected"]++
		}
	}
	require.Equal(t, want, counts)

	find := func(pred func(Event) bool) Event {
		for _, e := range evs {
			if pred(e) {
				return e
			}
		}
		t.Fatal("no such event")
		return Event{}
	}
	defer452 := find(func(e Event) bool { return e.Event == "deferred" && e.SMTPCode == 452 })
	require.Equal(t, "userx@domain.com", defer452.Recipient)
	require.Equal(t, "outbound", defer452.Direction)
	require.Equal(t, "exim1", defer452.Host)
	rj := find(func(e Event) bool { return e.Event == "rejected" && e.ClientIP == "10.0.0.2" })
	require.Equal(t, "userx@test.ex", rj.Recipient)
	require.Equal(t, "jules@box3.plc.example", rj.Sender)
	require.Equal(t, "test", rj.Helo)
	require.Equal(t, "Sender verify failed", rj.Response)
	local := find(func(e Event) bool { return e.Event == "delivered" && e.Recipient == "userx" })
	require.Equal(t, "inbound", local.Direction, "a local transport, no H=")
	require.True(t, strings.HasPrefix(local.OrigRecipient, "userx@"), "the address in <…>: %q", local.OrigRecipient)
	ms := find(func(e Event) bool { return e.Event == "accepted" && e.Time.Nanosecond() != 0 })
	require.Equal(t, 712000000, ms.Time.Nanosecond(), "millisecond timestamps")
}

// TestEximArrivalAndTimes: an arrival's client and helo go with its
// deliveries; QT= is the latency, DT= the delivery's own time.
func TestEximArrivalAndTimes(t *testing.T) {
	c := NewCorrelator(Options{Host: "exim1"})
	lines := []string{
		"2026-11-23 16:26:55 1vN0aB-000000001Z-0001 <= alice@example.com H=mail.example.org (client.example.org) [192.0.2.7] P=esmtp S=2417 id=m1@example.com",
		"2026-11-23 16:26:57 1vN0aB-000000001Z-0001 => bob@example.net R=dnslookup T=remote_smtp H=mx.example.net [198.51.100.5] C=\"250 2.0.0 Ok\" QT=2s DT=1.5s",
		"2026-11-23 16:26:57 1vN0aB-000000001Z-0001 Completed",
	}
	var evs []Event
	for _, l := range lines {
		got, reason := c.Line(l, now, time.UTC)
		require.Empty(t, reason)
		evs = append(evs, got...)
	}
	require.Len(t, evs, 2)
	d := evs[1]
	require.Equal(t, "delivered", d.Event)
	require.Equal(t, "client.example.org", d.Helo)
	require.Equal(t, "192.0.2.7", d.ClientIP)
	require.Equal(t, "m1@example.com", d.MessageID)
	require.Equal(t, int64(2417), d.Size)
	require.Equal(t, 2000.0, d.LatencyMS)
	require.Equal(t, 250, d.SMTPCode)
	require.Equal(t, "outbound", d.Direction)
	require.Equal(t, 1500.0, d.Metric().Fields()["delivery_time_ms"])
	require.Zero(t, c.Open(), "Completed forgets the message")
}

// TestEximRejectDialects: a recipient reject is one rejected event with
// its sender, recipient, client and reason, whether the addresses have
// angle brackets (Exim's default) or not (as some configurations log
// them); a null sender is empty. A reject of a shape the reader does not
// know is counted, never dropped unseen.
func TestEximRejectDialects(t *testing.T) {
	for _, tt := range []struct{ line, sender, rcpt, response string }{
		{"2026-11-23 16:30:02 H=mail.example.org [198.51.100.7] F=<user@example.org> rejected RCPT <rcpt@example.net>: relay not permitted",
			"user@example.org", "rcpt@example.net", "relay not permitted"},
		{"2026-11-23 16:30:02 H=mail.example.org [198.51.100.7] F=user@example.org rejected RCPT rcpt@example.net: relay not permitted",
			"user@example.org", "rcpt@example.net", "relay not permitted"},
		{"2026-11-23 16:30:02 H=(helo.example) [198.51.100.7] F=<> rejected RCPT postmaster@example.net: Unrouteable address",
			"", "postmaster@example.net", "Unrouteable address"},
	} {
		c := NewCorrelator(Options{})
		evs, reason := c.Line(tt.line, now, time.UTC)
		require.Empty(t, reason, tt.line)
		require.Len(t, evs, 1, tt.line)
		require.Equal(t, "rejected", evs[0].Event)
		require.Equal(t, tt.sender, evs[0].Sender, tt.line)
		require.Equal(t, tt.rcpt, evs[0].Recipient, tt.line)
		require.Equal(t, "198.51.100.7", evs[0].ClientIP)
		require.Equal(t, tt.response, evs[0].Response)
	}
	c := NewCorrelator(Options{})
	evs, reason := c.Line("2026-11-23 16:30:02 H=mail.example.org [198.51.100.7] rejected RCPT", now, time.UTC)
	require.Empty(t, evs)
	require.Equal(t, ReasonUnknownLine, reason)
	require.Equal(t, 1, c.Unknown[ReasonUnknownLine])
}

func TestEximDuration(t *testing.T) {
	for in, want := range map[string]float64{"1s": 1000, "2m3s": 123000, "1d2h": 93600000, "0.123s": 123, "1w": 604800000} {
		got, ok := eximDuration(in)
		require.True(t, ok, in)
		require.InDelta(t, want, got, 1e-6, in)
	}
	for _, bad := range []string{"", "qqs", "q.qqqs", "12", "3x"} {
		_, ok := eximDuration(bad)
		require.False(t, ok, bad)
	}
	f := eximFields(`R=all T=smtp H=127.0.0.1 [127.0.0.1] C="250 OK id=10HmaY" QT=1s`)
	require.Equal(t, map[string]string{"R": "all", "T": "smtp", "H": "127.0.0.1", "C": "250 OK id=10HmaY", "QT": "1s"}, f)
}

// FuzzLine: no line, however broken, panics or leaves state it should not:
// a line is read or refused with a reason, and the state stays bounded.
func FuzzLine(f *testing.F) {
	for _, file := range []string{"testdata/postfix-3.7.11-debian12.log", "testdata/exim-testsuite.log"} {
		for _, l := range readLines(&testing.T{}, file) {
			f.Add(l)
		}
	}
	f.Add("<22>1 - - - - - -")
	f.Add("Nov 23 16:26:55 mx1 postfix/smtp[1]: ABCDEF123456: to=<, status=")
	c := NewCorrelator(Options{MaxMessages: 50})
	f.Fuzz(func(t *testing.T, line string) {
		evs, reason := c.Line(line, now, time.UTC)
		if reason != "" && len(evs) > 0 {
			t.Fatalf("refused with events: %q", line)
		}
		for i := range evs {
			_ = evs[i].Metric()
		}
		if c.Open() > 50 {
			t.Fatalf("%d queue ids held, limit 50", c.Open())
		}
	})
}

// TestDirectionByClientNetwork: with internal networks set, mail from a
// client inside them is outbound, from outside inbound, whatever the
// transport; a local submission (no client) keeps its transport's.
func TestDirectionByClientNetwork(t *testing.T) {
	c := NewCorrelator(Options{InternalNetworks: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("127.0.0.0/8")}})
	var dirs []string
	for _, line := range readLines(t, "testdata/postfix-3.7.11-debian12.log") {
		evs, _ := c.Line(line, now, time.UTC)
		for _, e := range evs {
			dirs = append(dirs, e.Event+":"+e.Direction)
		}
	}
	require.Equal(t, []string{"accepted:outbound", "accepted:outbound", "rejected:outbound", "lost_connection:outbound", "delivered:outbound",
		"bounced:outbound", "deferred:outbound", "delivered:outbound", "accepted:", "delivered:outbound"}, dirs,
		"127.0.0.1 is inside: outbound, the reject too; the bounce notice has no client")
	ext := NewCorrelator(Options{InternalNetworks: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}})
	evs, _ := ext.Line("Nov 23 16:00:00 mx1 postfix/smtpd[1]: NOQUEUE: reject: RCPT from x[192.0.2.9]: 554 5.7.1 <z@example.net>: Relay access denied; from=<y@example.com> to=<z@example.net> proto=ESMTP helo=<x>", now, time.UTC)
	require.Equal(t, "inbound", evs[0].Direction)
}

// TestEveryEventCounted: every event of a real Postfix's log, of the
// public Postfix samples (NOQUEUE rejects, postscreen: no queue id) and of
// Exim's test suite carries events=1, the field the rollups count: none is
// left out of the counts for lacking a queue id or a latency.
func TestEveryEventCounted(t *testing.T) {
	var lines []string
	for _, file := range []string{"testdata/postfix-3.7.11-debian12.log", "testdata/exim-testsuite.log"} {
		lines = append(lines, readLines(t, file)...)
	}
	for _, row := range readLines(t, "testdata/postfix-grok-patterns.tsv") {
		if d, msg, ok := strings.Cut(row, "\t"); ok && !strings.HasPrefix(row, "#") {
			lines = append(lines, "Nov 23 16:00:00 mx1 postfix/"+d+"[1]: "+msg)
		}
	}
	c := NewCorrelator(Options{Host: "mx1"})
	var events, noQueue int
	for _, line := range lines {
		evs, _ := c.Line(line, now, time.UTC)
		for i := range evs {
			m := evs[i].Metric()
			n, ok := m.GetField("events")
			require.True(t, ok, "event without the events field: %v", m)
			require.Equal(t, int64(1), n)
			events++
			if evs[i].QueueID == "" {
				noQueue++
			}
		}
	}
	require.Greater(t, events, 20)
	require.Positive(t, noQueue, "events without a queue id are among them")
}

// TestEntryReadsAsLine: the journal's entries (time, host, program and
// message as fields of their own) give the events their lines give: every
// line of the real Postfix's log and of Exim's test suite, the Exim lines
// with their own timestamp and without (syslog_timestamp = false), and
// through syslog (program exim, as rsyslog writes what Exim sends it).
func TestEntryReadsAsLine(t *testing.T) {
	type entry struct {
		at                     time.Time
		host, program, message string
	}
	for _, tt := range []struct {
		name    string
		file    string
		entries func(line string) (entry, bool)
	}{
		{"postfix", "testdata/postfix-3.7.11-debian12.log", func(line string) (entry, bool) {
			l, err := SplitLine(line, now, time.UTC)
			return entry{l.Time, l.Host, l.Program, l.Message}, err == nil
		}},
		{"exim with its timestamp", "testdata/exim-testsuite.log", func(line string) (entry, bool) {
			at, _, ok := eximLine(line, time.UTC)
			return entry{at, "exim1", "exim", line}, ok
		}},
		{"exim without", "testdata/exim-testsuite.log", func(line string) (entry, bool) {
			at, rest, ok := eximLine(line, time.UTC)
			return entry{at, "exim1", "exim", rest}, ok
		}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			lines, entries := NewCorrelator(Options{Host: "exim1"}), NewCorrelator(Options{Host: "other"})
			n := 0
			for _, line := range readLines(t, tt.file) {
				want, wantReason := lines.Line(line, now, time.UTC)
				e, ok := tt.entries(line)
				if !ok {
					continue
				}
				got, reason := entries.Entry(e.at, e.host, e.program, e.message)
				require.Equal(t, wantReason, reason, line)
				require.Len(t, got, len(want), line)
				for i := range want {
					w, g := want[i], got[i]
					// The texts differ (an entry's has no timestamp), and
					// so may their counts of identical texts.
					w.line, g.line, w.salt, g.salt = "", "", 0, 0
					require.Equal(t, w, g, line)
				}
				n += len(got)
			}
			require.Greater(t, n, 8)
		})
	}
	// Exim through syslog: "host exim[pid]: <its line>".
	c := NewCorrelator(Options{})
	evs, reason := c.Line("Nov 23 16:26:55 mx2 exim[812]: 2026-11-23 16:26:55 1vN0aB-000000001Z-0001 <= alice@example.com H=mail.example.org [192.0.2.7] P=esmtp S=2417 id=m1@example.com", now, time.UTC)
	require.Empty(t, reason)
	require.Len(t, evs, 1)
	require.Equal(t, "accepted", evs[0].Event)
	require.Equal(t, "mx2", evs[0].Host)
}

// TestSecuritySignals: the security signals of postfix-grok-patterns'
// test suite (testdata/postfix-grok-patterns: each file a Postfix message
// and the fields its authors expect from it, unchanged): every postscreen
// verdict, TLS session, SASL failure and lost connection the samples'
// expectations name is a signal with their client, verdict, DNSBL rank,
// stage, TLS trust, protocol and cipher; no other sample gives a signal.
func TestSecuritySignals(t *testing.T) {
	files, err := filepath.Glob("testdata/postfix-grok-patterns/*.yaml")
	require.NoError(t, err)
	require.Greater(t, len(files), 90)
	signals := map[string]int{}
	for _, f := range files {
		b, err := os.ReadFile(f)
		require.NoError(t, err)
		var tc struct {
			Data    string            `yaml:"data"`
			Results map[string]string `yaml:"results"`
		}
		require.NoError(t, yaml.Unmarshal(b, &tc), f)
		daemon, _, _ := strings.Cut(filepath.Base(f), "_")
		r := tc.Results
		var want *Event
		switch {
		case r["postfix_postscreen_access"] != "":
			want = &Event{Event: SignalPostscreen, Verdict: verdict(r["postfix_postscreen_access"]), ClientIP: r["postfix_client_ip"]}
		case r["postfix_postscreen_violation"] != "":
			want = &Event{Event: SignalPostscreen, Verdict: verdict(r["postfix_postscreen_violation"]), ClientIP: r["postfix_client_ip"],
				Stage: smtpStage(r["postfix_smtp_stage"])}
			want.DNSBLRank, _ = strconv.Atoi(r["postfix_postscreen_dnsbl_rank"])
		case r["postfix_tls_trustlevel"] != "":
			want = &Event{Event: SignalTLS, TLSTrust: strings.ToLower(r["postfix_tls_trustlevel"]), TLSProtocol: r["postfix_tls_version"],
				TLSCipher: r["postfix_tls_cipher"], ClientIP: r["postfix_client_ip"]}
			if r["postfix_relay_ip"] != "" {
				want.Relay = r["postfix_relay_hostname"] + "[" + r["postfix_relay_ip"] + "]"
			}
		case r["postfix_smtpd_lostconn_data"] == "lost connection" && daemon == "smtpd":
			want = &Event{Event: SignalLostConnection, Stage: smtpStage(r["postfix_smtp_stage"]), ClientIP: r["postfix_client_ip"]}
		case strings.Contains(r["postfix_message"], "authentication failed"):
			want = &Event{Event: SignalSASLFailure, ClientIP: r["postfix_client_ip"], SASLMethod: "LOGIN", Response: "UGFzc3dvcmQ6"}
		case strings.Contains(tc.Data, "SASL authentication failed; server"):
			want = &Event{Event: SignalSASLFailure, Relay: r["postfix_relay_hostname"] + "[" + r["postfix_relay_ip"] + "]", Response: r["postfix_smtp_response"]}
		}
		c := NewCorrelator(Options{})
		evs, reason := c.Line("Nov 23 16:00:00 mx1 postfix/"+daemon+"[1]: "+tc.Data, now, time.UTC)
		require.Empty(t, reason, f)
		var got *Event
		for i := range evs {
			if evs[i].Security {
				require.Nil(t, got, "one signal a line: %s", f)
				got = &evs[i]
			}
		}
		if want == nil {
			require.Nil(t, got, "%s: %q is no signal", f, tc.Data)
			continue
		}
		require.NotNil(t, got, "%s: %q", f, tc.Data)
		signals[got.Event]++
		brief := func(e *Event) Event {
			return Event{Event: e.Event, Verdict: e.Verdict, ClientIP: e.ClientIP, Stage: e.Stage, DNSBLRank: e.DNSBLRank,
				TLSTrust: e.TLSTrust, TLSProtocol: e.TLSProtocol, TLSCipher: e.TLSCipher, Relay: e.Relay,
				SASLMethod: e.SASLMethod, SASLUser: e.SASLUser, Response: e.Response}
		}
		require.Equal(t, brief(want), brief(got), "%s: %q", f, tc.Data)
		m := got.Metric()
		require.Equal(t, "mail_security", m.Name())
		if got.ClientIP != "" {
			require.Equal(t, clientNet(got.ClientIP), m.Tags()["client_net"])
		}
	}
	require.Equal(t, map[string]int{"postscreen": 22, "tls": 8, "sasl_failure": 2, "lost_connection": 6}, signals)
}

// TestEximSecuritySignals: Exim's own test suite's logs of SMTP AUTH and
// TLS (testdata/exim-auth-testsuite.log): every "authenticator failed"
// is a SASL failure with the authenticator, the client and the set_id
// when logged; every arrival with A= a SASL login (authenticator, and the
// id after it when logged), its mail_events carrying the user; every
// arrival with X= an inbound TLS session.
func TestEximSecuritySignals(t *testing.T) {
	c := NewCorrelator(Options{Host: "exim1"})
	var got, want []string
	users := 0
	for _, line := range readLines(t, "testdata/exim-auth-testsuite.log") {
		evs, _ := c.Line(line, now, time.UTC)
		for _, e := range evs {
			if e.Security {
				got = append(got, strings.Join([]string{e.Event, e.SASLMethod, e.SASLUser, e.ClientIP, e.TLSProtocol, e.TLSCipher}, " "))
			} else if e.SASLUser != "" {
				users++
			}
		}
		if !isExim(line) {
			continue
		}
		_, rest, _ := eximLine(line, time.UTC)
		ip := ""
		if i := strings.Index(rest, " ["); i >= 0 {
			ip = rest[i+2 : i+2+strings.IndexByte(rest[i+2:], ']')]
		}
		if method, after, ok := strings.Cut(rest, " authenticator failed for "); ok {
			user := ""
			if _, id, ok := strings.Cut(after, "(set_id="); ok {
				user, _, _ = strings.Cut(id, ")")
			}
			want = append(want, strings.Join([]string{"sasl_failure", method, user, ip, "", ""}, " "))
		}
		if !strings.Contains(rest, " <= ") {
			continue
		}
		for _, f := range strings.Fields(rest) {
			if a, ok := strings.CutPrefix(f, "A="); ok {
				parts := strings.Split(a, ":")
				user := ""
				if len(parts) > 1 {
					user = parts[1]
				}
				want = append(want, strings.Join([]string{"sasl_login", parts[0], user, ip, "", ""}, " "))
			}
			if x, ok := strings.CutPrefix(f, "X="); ok {
				parts := strings.Split(x, ":")
				want = append(want, strings.Join([]string{"tls", "", "", ip, "TLSv" + strings.TrimPrefix(parts[0], "TLS"), parts[1]}, " "))
			}
		}
	}
	require.Len(t, want, 35, "the suite's logs hold 35 such lines")
	require.Equal(t, want, got)
	require.Positive(t, users, "the mail_events of a message submitted after AUTH carry the SASL user")
}

// TestIdenticalLinesAreEvents: three identical lines in one second (a
// client refused three times by one smtpd) are three points, at three
// times; the next second starts over; read again, the first keeps its
// time (a replay overwrites, it does not add).
func TestIdenticalLinesAreEvents(t *testing.T) {
	now := time.Date(2026, 12, 4, 10, 0, 0, 0, time.UTC)
	refused := "Dec  4 09:43:54 mx1 postfix/smtpd[496]: warning: unknown[203.0.113.7]: SASL PLAIN authentication failed: authentication failure"
	c := NewCorrelator(Options{})
	times := map[time.Time]bool{}
	for i := 0; i < 3; i++ {
		evs, reason := c.Line(refused, now, time.UTC)
		require.Empty(t, reason)
		require.Len(t, evs, 1)
		require.Equal(t, i, evs[0].salt)
		times[evs[0].securityMetric().Time()] = true
	}
	require.Len(t, times, 3, "three points, not one overwritten twice")
	next := strings.Replace(refused, "09:43:54", "09:43:55", 1)
	evs, _ := c.Line(next, now, time.UTC)
	require.Equal(t, 0, evs[0].salt, "a new second starts over")
	again, _ := NewCorrelator(Options{}).Line(refused, now, time.UTC)
	require.True(t, times[again[0].securityMetric().Time()], "read again, the line's first point")
}

// TestIdenticalLinesInAFile: a file's identical lines are told apart by
// their place, the same when read again, so that a replay from any
// checkpoint lands each on its own point (a count of the ones before it
// would start over at the checkpoint and land on a twin's point).
func TestIdenticalLinesInAFile(t *testing.T) {
	now := time.Date(2026, 12, 4, 10, 0, 0, 0, time.UTC)
	refused := "Dec  4 09:43:54 mx1 postfix/smtpd[496]: warning: unknown[203.0.113.7]: SASL PLAIN authentication failed: authentication failure"
	base := time.Date(2026, 12, 4, 9, 0, 0, 0, time.UTC)
	at := func(c *Correlator, offset int) time.Time {
		evs, reason := c.LineAt(refused, now, base.Add(time.Duration(offset)), time.UTC)
		require.Empty(t, reason)
		require.Len(t, evs, 1)
		return evs[0].securityMetric().Time()
	}
	first := NewCorrelator(Options{})
	var times []time.Time
	for i := 0; i < 5; i++ {
		times = append(times, at(first, i*len(refused)))
	}
	require.Len(t, map[time.Time]bool{times[0]: true, times[1]: true, times[2]: true, times[3]: true, times[4]: true}, 5)
	replay := NewCorrelator(Options{}) // from a checkpoint after the second line
	for i := 2; i < 5; i++ {
		require.Equal(t, times[i], at(replay, i*len(refused)), "line %d read again", i)
	}
}
