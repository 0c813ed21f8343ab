package maillog

import (
	"fmt"
	"net/smtp"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/mailtick/mailtick/internal/testutil/stack"
	"github.com/mailtick/mailtick/internal/testutil/stacktest"
)

// TestRealPostfixIntegration: a real Postfix (Debian's package) on
// loopback, with its own maillog_file, relays to the test's sink, which
// answers 250, 450 or 550 by recipient. Every line Postfix writes is
// read; each recipient's first delivery attempt is one event whose
// outcome and code are what the sink answered, with the message's sender,
// client, size and message-id; a recipient Postfix itself refuses is one
// rejected event; the bounce Postfix sends the sender is an event of its
// own. Nothing in the log is left unread.
// The same with enable_long_queue_ids = yes (Postfix 2.9 and later): the
// queue ids are long, and correlate as the short ones do.
func TestRealPostfixIntegration(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test")
	}
	t.Run("short queue ids", func(t *testing.T) { realPostfix(t, false) })
	t.Run("long queue ids", func(t *testing.T) { realPostfix(t, true) })
}

func realPostfix(t *testing.T, long bool) {
	pf, sk := stacktest.Postfix(t)
	if long {
		require.NoError(t, pf.Set("enable_long_queue_ids=yes"))
	}

	send := func(from string, to []string, id string) error {
		body := fmt.Sprintf("From: <%s>\r\nSubject: mailtick test\r\nMessage-ID: <%s>\r\n\r\nhello\r\n", from, id)
		return smtp.SendMail(pf.SMTP, nil, from, to, []byte(body))
	}
	require.NoError(t, send("alice@example.com", []string{"ok1@example.net", "later1@example.net", "bad1@example.net"}, "m1@example.com"))
	require.NoError(t, send("bob@example.com", []string{"ok2@example.net"}, "m2@example.com"))
	err := send("carol@example.com", []string{"reject-me@example.net"}, "m3@example.com")
	require.ErrorContains(t, err, "554", "Postfix refuses this recipient itself")

	want := []string{"ok1@example.net", "later1@example.net", "bad1@example.net", "ok2@example.net", "alice@example.com"}
	c := NewCorrelator(Options{})
	byRcpt := map[string][]Event{}
	var rejected []Event
	read := 0
	require.Eventually(t, func() bool {
		b, _ := os.ReadFile(pf.Maillog)
		lines := strings.Split(string(b), "\n")
		for ; read < len(lines)-1; read++ { // the last part may be a line being written
			evs, reason := c.Line(lines[read], time.Now(), time.Local)
			require.Empty(t, reason, "line %q", lines[read])
			for _, ev := range evs {
				switch ev.Event {
				case "rejected":
					rejected = append(rejected, ev)
				case "accepted":
				default:
					byRcpt[ev.Recipient] = append(byRcpt[ev.Recipient], ev)
				}
			}
		}
		for _, r := range want {
			if len(byRcpt[r]) == 0 {
				return false
			}
		}
		return len(rejected) == 1
	}, 60*time.Second, 100*time.Millisecond, "an event for each of %v", want)

	outcome := map[int]string{250: "delivered", 450: "deferred", 550: "bounced"}
	for _, r := range want {
		code, ok := sk.First(r)
		require.True(t, ok, "the sink saw %s", r)
		ev := byRcpt[r][0]
		require.Equal(t, outcome[code], ev.Event, r)
		require.Equal(t, "outbound", ev.Direction, r)
		require.Equal(t, 1, ev.Attempt, r)
		require.NotEmpty(t, ev.QueueID, r)
		if long { // e.g. 4Bq2Ky6ZXYz9sZM: more than the short ids' 12 hex digits
			require.Greater(t, len(ev.QueueID), 12, "%s: queue id %s", r, ev.QueueID)
		}
		require.Equal(t, "mx1", ev.Host, r)
		require.True(t, ev.HasDelays, r)
		require.GreaterOrEqual(t, ev.LatencyMS, 0.0, r)
		require.Greater(t, ev.Size, int64(0), r)
		if r == "alice@example.com" { // the non-delivery notice Postfix wrote
			require.Empty(t, ev.Sender, "a bounce has the null sender")
			continue
		}
		require.Equal(t, "127.0.0.1", ev.ClientIP, r)
		if code != 250 {
			require.Equal(t, code, ev.SMTPCode, r)
		}
		require.NotEmpty(t, ev.SMTPStatus, r)
		require.Contains(t, []string{"alice@example.com", "bob@example.com"}, ev.Sender, r)
		require.Contains(t, []string{"m1@example.com", "m2@example.com"}, strings.Trim(ev.MessageID, "<>"), r)
	}
	rj := rejected[0]
	require.Equal(t, "reject-me@example.net", rj.Recipient)
	require.Equal(t, "carol@example.com", rj.Sender)
	require.Equal(t, 554, rj.SMTPCode)
	require.Equal(t, "127.0.0.1", rj.ClientIP)
	require.Zero(t, c.Evicted)

	// The log, kept as this run wrote it, is the testdata of the unit test.
	if os.Getenv("MAILTICK_SAVE_MAILLOG") != "" && !long {
		b, _ := os.ReadFile(pf.Maillog)
		require.NoError(t, os.WriteFile(filepath.Join("testdata", "postfix-3.7.11-debian12.log"), b, 0o644))
	}
}

// TestRealPostfixSASLIntegration: a real Postfix asking an auth server
// over Dovecot's protocol (stack.SASLAuth) logs refused logins, an
// accepted one with the message it submitted, and a client that hangs
// up; the reader gives each its security signal.
func TestRealPostfixSASLIntegration(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test: a real Postfix")
	}
	pf, _ := stacktest.Postfix(t)
	auth, err := stack.StartSASLAuth(map[string]string{"alice": "right"})
	require.NoError(t, err)
	t.Cleanup(auth.Stop)
	require.NoError(t, pf.UseSASL(auth))
	for i := 0; i < 3; i++ {
		require.ErrorContains(t, pf.Login("alice", "wrong", ""), "535", "a refused login")
	}
	require.NoError(t, pf.Login("alice", "right", "ok@example.net"))
	require.NoError(t, pf.Hangup())

	c := NewCorrelator(Options{})
	signals := map[string][]Event{}
	read := 0
	require.Eventually(t, func() bool {
		b, _ := os.ReadFile(pf.Maillog)
		lines := strings.Split(string(b), "\n")
		for ; read < len(lines)-1; read++ {
			evs, reason := c.Line(lines[read], time.Now(), time.Local)
			require.Empty(t, reason, "line %q", lines[read])
			for _, ev := range evs {
				signals[ev.Event] = append(signals[ev.Event], ev)
			}
		}
		return len(signals["sasl_failure"]) == 3 && len(signals["sasl_login"]) == 1 && len(signals["lost_connection"]) >= 1
	}, 60*time.Second, 100*time.Millisecond, "3 SASL failures, a login and a lost connection")
	for _, ev := range signals["sasl_failure"] {
		require.Equal(t, "127.0.0.1", ev.ClientIP)
		require.Equal(t, "PLAIN", strings.ToUpper(ev.SASLMethod))
	}
	login := signals["sasl_login"][0]
	require.Equal(t, "alice", login.SASLUser)
	require.Equal(t, "127.0.0.1", login.ClientIP)
	require.Equal(t, "EHLO", strings.ToUpper(signals["lost_connection"][0].Stage))
}
