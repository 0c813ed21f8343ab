package mailwebhooks

import (
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/mailtick/mailtick/internal/testutil/providertest"
	"github.com/mailtick/mailtick/internal/testutil/stack"
	"github.com/mailtick/mailtick/internal/testutil/stacktest"
	"github.com/mailtick/mailtick/plugins/common/mailevent"
)

// agentConfig runs inputs.mailwebhooks with every preset in bin/telegraf,
// writing to InfluxDB. ack_timeout is short for the test's speed.
func agentConfig(t *testing.T, k *keys, port int, influxURL string) string {
	t.Helper()
	der, err := x509.MarshalPKIXPublicKey(&k.sendgrid.PublicKey)
	require.NoError(t, err)
	var b strings.Builder
	fmt.Fprintf(&b, `[agent]
  flush_interval = "200ms"
  omit_hostname = true
[[inputs.mailwebhooks]]
  service_address = "127.0.0.1:%d"
  ack_timeout = "2s"
`, port)
	for _, name := range mailevent.PresetNames() {
		fmt.Fprintf(&b, "  [[inputs.mailwebhooks.provider]]\n    preset = %q\n", name)
		switch name {
		case "mailgun":
			b.WriteString("    signing_key = \"${MAILGUN_KEY}\"\n")
		case "sendgrid":
			fmt.Fprintf(&b, "    verification_key = %q\n", base64.StdEncoding.EncodeToString(der))
		case "mandrill":
			fmt.Fprintf(&b, "    signing_key = \"${MANDRILL_KEY}\"\n    webhook_url = \"http://127.0.0.1:%d/mandrill\"\n", port)
		case "ses_sns":
			fmt.Fprintf(&b, "    sns_certificates = [%q]\n    sns_topic_arns = [%q]\n", k.snsCert, snsTopic)
		default:
			fmt.Fprintf(&b, "    username = %q\n    password = \"${WEBHOOK_PASSWORD}\"\n", k.user)
		}
	}
	fmt.Fprintf(&b, `[[outputs.influxdb]]
  urls = [%q]
  database = "mail"
`, influxURL)
	return b.String()
}

// countByMailer counts the stored mail_event points of each provider.
func countByMailer(t *testing.T, db *stack.InfluxDB) map[string]int {
	t.Helper()
	series, err := db.Query("mail", `SELECT * FROM mail_event GROUP BY "mailer"`)
	require.NoError(t, err)
	out := map[string]int{}
	for _, s := range series {
		out[s.Tags["mailer"]] += len(s.Values)
	}
	return out
}

// TestWebhooksIntegration: every provider's published samples, signed as
// the provider signs them, POSTed to bin/telegraf, stored in a real
// InfluxDB; then InfluxDB stops, a request is answered 503, InfluxDB comes
// back, the request is sent again as the provider would, and every event
// is stored exactly once.
func TestWebhooksIntegration(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test")
	}
	k := newKeys(t)
	influx := stacktest.InfluxDB(t, "mail")
	port, err := stack.FreePort()
	require.NoError(t, err)
	agent := stacktest.Telegraf(t, agentConfig(t, k, port, influx.URL),
		"MAILGUN_KEY="+k.mailgun, "MANDRILL_KEY="+k.mandrill, "WEBHOOK_PASSWORD="+k.pass)
	base := fmt.Sprintf("http://127.0.0.1:%d", port)
	require.Eventually(t, func() bool {
		resp, err := http.Head(base + "/mandrill")
		if err == nil {
			resp.Body.Close()
		}
		return err == nil
	}, 30*time.Second, 50*time.Millisecond, "the agent must listen")

	want := map[string]int{}
	for _, name := range mailevent.PresetNames() {
		bodies, err := providertest.Bodies(name)
		require.NoError(t, err)
		mailer := strings.TrimSuffix(strings.TrimSuffix(name, "_sns"), "_events_api")
		for _, b := range bodies {
			code, msg := do(t, k.sign(t, name, base+"/"+name, b.Data, time.Now()))
			require.Equal(t, http.StatusOK, code, "%s %s: %s", name, b.Name, msg)
			var n int
			_, err := fmt.Sscanf(msg, "ok: %d events", &n)
			require.NoError(t, err, msg)
			want[mailer] += n
		}
	}
	// ses and ses_sns carry the same records (the same points), and so do
	// mailgun and mailgun_events_api for none: count what is distinct.
	want["ses"] /= 2
	var got map[string]int
	stored := func() bool {
		got = countByMailer(t, influx)
		return fmt.Sprint(got) == fmt.Sprint(want)
	}
	require.Eventually(t, stored, 30*time.Second, 200*time.Millisecond, "want %v stored", want)
	require.Len(t, want, 6)
	// Every provider event is counted by the rollups, whatever fields it
	// has: they count the field events, which every event carries (no
	// preset maps a queue id, which the counts counted before).
	series, err := influx.Query("mail", `SELECT count("events") FROM mail_event GROUP BY "mailer"`)
	require.NoError(t, err)
	counted := map[string]int{}
	for _, s := range series {
		n, err := s.Values[0][1].(json.Number).Int64()
		require.NoError(t, err)
		counted[s.Tags["mailer"]] = int(n)
	}
	require.Equal(t, fmt.Sprint(want), fmt.Sprint(counted), "count(\"events\") per provider = its stored events")

	// New events while InfluxDB is down: 503, and the provider retries.
	var events []map[string]any
	bodies, err := providertest.Bodies("sendgrid")
	require.NoError(t, err)
	require.NoError(t, json.Unmarshal(bodies[0].Data, &events))
	for _, ev := range events {
		ev["timestamp"] = ev["timestamp"].(float64) + 86400
	}
	later, err := json.Marshal(events)
	require.NoError(t, err)
	require.NoError(t, influx.Stop(30*time.Second))
	code, msg := do(t, k.sign(t, "sendgrid", base+"/sendgrid", later, time.Now()))
	require.Equal(t, http.StatusServiceUnavailable, code, msg)
	require.NoError(t, influx.Restart())
	require.Eventually(t, func() bool {
		code, _ := do(t, k.sign(t, "sendgrid", base+"/sendgrid", later, time.Now()))
		return code == http.StatusOK
	}, 60*time.Second, 500*time.Millisecond, "the retry is answered 200 once InfluxDB is back")
	want["sendgrid"] += len(events)
	require.Eventually(t, stored, 30*time.Second, 200*time.Millisecond, "nothing lost, nothing twice: want %v", want)
	// Stopped, the agent flushes what it holds and writes nothing more:
	// the count is final.
	require.NoError(t, agent.Stop(30*time.Second))
	require.Equal(t, fmt.Sprint(want), fmt.Sprint(countByMailer(t, influx)))
}
