package tickscripts

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/influxdata/telegraf"
	"github.com/stretchr/testify/require"

	"github.com/mailtick/mailtick/internal/testutil/stack"
	"github.com/mailtick/mailtick/internal/testutil/stacktest"
	ml "github.com/mailtick/mailtick/plugins/common/maillog"
)

// writeLog reads Postfix and Exim log lines as inputs.maillog does and
// writes their metrics (mail_security among them) to the DC database.
func writeLog(t *testing.T, db *stack.InfluxDB, lines []string) {
	t.Helper()
	c := ml.NewCorrelator(ml.Options{})
	var ms []telegraf.Metric
	for _, line := range lines {
		evs, reason := c.Line(line, time.Now(), time.UTC)
		require.Empty(t, reason, line)
		for i := range evs {
			ms = append(ms, evs[i].Metric())
		}
	}
	stacktest.WriteMetrics(t, db, "mail", "dc1", ms)
}

// TestAbuseAlertsIntegration: the shipped mail_abuse tasks on a real
// Kapacitor, over the signals the log reader makes of Postfix's and Exim's
// own lines (the forms of postfix-grok-patterns' and Exim's test suites):
// a network guessing passwords (25 refused logins in 10 minutes, from
// three addresses of one /24, Postfix and Exim) raises a WARNING, one
// with a few refusals nothing; a SASL user logging in from 12 addresses
// in an hour goes CRITICAL, one from 2 raises nothing.
func TestAbuseAlertsIntegration(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test")
	}
	db := stacktest.InfluxDB(t, "mail", "mail_rollups")
	kapa := stacktest.Kapacitor(t, db.URL)
	at := time.Now().UTC().Add(-5 * time.Minute)
	stamp := func(i int) string { return at.Add(time.Duration(i) * time.Second).Format(time.RFC3339Nano) }
	var lines []string
	for i := 0; i < 25; i++ {
		if i%2 == 0 {
			lines = append(lines, fmt.Sprintf("%s mx1 postfix/smtpd[7]: warning: unknown[203.0.113.%d]: SASL LOGIN authentication failed: UGFzc3dvcmQ6", stamp(i), 10+i%3))
		} else {
			lines = append(lines, fmt.Sprintf("%s mx2 exim[9]: %s login authenticator failed for (guess) [203.0.113.%d]: 535 Incorrect authentication data (set_id=admin)",
				stamp(i), at.Add(time.Duration(i)*time.Second).Format("2006-01-02 15:04:05"), 10+i%3))
		}
	}
	for i := 0; i < 3; i++ { // a user mistyping
		lines = append(lines, fmt.Sprintf("%s mx1 postfix/smtpd[7]: warning: unknown[198.51.100.7]: SASL PLAIN authentication failed: authentication failure", stamp(100+i)))
	}
	for i := 0; i < 12; i++ { // one account from 12 places
		lines = append(lines, fmt.Sprintf("%s mx1 postfix/smtpd[7]: 4A%05X: client=unknown[192.0.2.%d], sasl_method=PLAIN, sasl_username=stolen@example.com", stamp(200+i), i, 20+i))
	}
	for i := 0; i < 6; i++ { // one from two
		lines = append(lines, fmt.Sprintf("%s mx1 postfix/smtpd[7]: 4B%05X: client=unknown[192.0.2.%d], sasl_method=PLAIN, sasl_username=alice@example.com", stamp(300+i), i, 100+i%2))
	}
	writeLog(t, db, lines)
	// The shipped webhook handler, to a receiver of the test's.
	posted := make(chan map[string]any, 100)
	receiver := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var alert map[string]any
		if json.NewDecoder(r.Body).Decode(&alert) == nil {
			posted <- alert
		}
	}))
	t.Cleanup(receiver.Close)
	t.Setenv("MAILTICK_ALERT_WEBHOOK", receiver.URL)
	c := deployShipped(t, kapa.URL, "mail_abuse_")

	const guessers = "mail_abuse/brute_force/client_net=203.0.113.0/24"
	const stolen = "mail_abuse/account_spread/sasl_user=stolen@example.com"
	require.Eventually(t, func() bool {
		l := levels(t, c, "mail_abuse")
		return l[guessers] == "WARNING" && l[stolen] == "CRITICAL"
	}, 60*time.Second, 200*time.Millisecond, "the guessing network and the stolen account: %v", levels(t, c, "mail_abuse"))
	require.Len(t, levels(t, c, "mail_abuse"), 2, "the mistyping user, alice's two addresses and the volumes raise nothing: %v", levels(t, c, "mail_abuse"))
	// Both reached the handler tasks.toml declares, as Kapacitor posts
	// them.
	got := map[string]string{}
	for len(got) < 2 {
		select {
		case a := <-posted:
			got[fmt.Sprint(a["id"])] = fmt.Sprint(a["level"])
		case <-time.After(30 * time.Second):
			t.Fatalf("the webhook handler received %v", got)
		}
	}
	require.Equal(t, map[string]string{guessers: "WARNING", stolen: "CRITICAL"}, got)

	// The counts are written for the DC's dashboards.
	for q, want := range map[string]int64{
		`SELECT last("n") FROM "mail_abuse" WHERE "abuse" = 'brute_force' AND "client_net" = '203.0.113.0/24'`:       25,
		`SELECT last("n") FROM "mail_abuse" WHERE "abuse" = 'brute_force' AND "client_net" = '198.51.100.0/24'`:      3,
		`SELECT last("n") FROM "mail_abuse" WHERE "abuse" = 'account_spread' AND "sasl_user" = 'alice@example.com'`:  2,
		`SELECT last("n") FROM "mail_abuse" WHERE "abuse" = 'account_volume' AND "sasl_user" = 'stolen@example.com'`: 12,
	} {
		require.Eventually(t, func() bool {
			n, err := db.Count("mail_rollups", q)
			return err == nil && n == want
		}, 30*time.Second, 200*time.Millisecond, "%s: %d", q, want)
	}
}
