package bounce

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func TestStatusCodeAndCommandIn(t *testing.T) {
	for _, tt := range []struct {
		text, status string
		code         int
		command      string
	}{
		{"host mx[1.2.3.4] said: 550-5.1.1 the email account (in reply to rcpt to command)", "5.1.1", 550, "RCPT"},
		{"smtp; 552 5.2.2 <a@b.c>: mailbox full (quota 1.2.3.4.5 exceeded)", "5.2.2", 552, ""},
		{"said: 421 4.7.0 [tss04] messages from 192.0.2.1 temporarily deferred (in reply to mail from command)", "4.7.0", 421, "MAIL"},
		{"#5.1.1 bad address", "5.1.1", 0, ""},
		{"version 1.5.1.1 and 10.4.4.1 are not codes; 4.4.1", "4.4.1", 0, ""},
		{"connect to mx.example.net[192.0.2.25]:25: connection timed out", "", 0, ""},
		{"host h said: 554 5.7.1 rejected (in reply to end of data command)", "5.7.1", 554, "DATA"},
		{"smtp error from remote mail server after rcpt to:<a@b.c>: 550 no", "", 550, "RCPT"},
		{"250-2.1.5 ok", "2.1.5", 250, ""},
		{"2550 5.1.10 x", "5.1.10", 0, ""},
	} {
		require.Equal(t, tt.status, statusIn(tt.text), tt.text)
		require.Equal(t, tt.code, codeIn(tt.text), tt.text)
		require.Equal(t, tt.command, commandOf(tt.text), tt.text)
	}
}

// TestReasonsClosed: every reason Classify can return, from the status
// codes, the message strings, the remote hosts' rules or the providers',
// is one of Reasons (processors.mailclassify registers a counter for
// each of them at start).
func TestReasonsClosed(t *testing.T) {
	for code, r := range statusReasons {
		require.Contains(t, Reasons, r, "status %s", code)
	}
	for r := range messages {
		require.Contains(t, Reasons, r)
	}
	for host, set := range remoteRules {
		for _, rule := range set.rules {
			require.Contains(t, Reasons, rule.reason, "remote host %s", host)
		}
	}
}
