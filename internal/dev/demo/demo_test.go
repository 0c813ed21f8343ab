package demo

import (
	"bytes"
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestDemoIntegration runs `make demo`'s job, smaller: three DCs and
// central on loopback, the NSQ traffic with its bursts, the real
// Postfix with the password guessing, and checks what it reports: the
// alerts, the privacy check, and the Grafana dashboards, every panel run
// against the demo's databases and equal to the CLI's answers (Run fails
// otherwise, saying which).
func TestDemoIntegration(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test: the whole demo")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 12*time.Minute)
	defer cancel()
	var out bytes.Buffer
	dir := t.TempDir()
	err := Run(ctx, Options{Events: 2000, Rate: 1000, Bad: 0.01, HTML: filepath.Join(dir, "demo.html")}, &out)
	require.NoError(t, err, "the demo failed; what it printed:\n%s", out.String())
	text := out.String()
	require.Regexp(t, `dc2: deliverability alerts on topic "mail_deliverability": [1-9]\d* CRITICAL`, text)
	require.Regexp(t, `dc3: abuse alerts on topic "mail_abuse": \d+ CRITICAL, [1-9]\d* WARNING`, text, "25 refused logins from one network: brute_force's warning")
	require.Regexp(t, `top senders by distinct recipients per minute \(mail_spam; senders are pseudonyms\)\n  dc   distinct_recipients  sender\n  dc1  200 `, text, "the spam burst: 200 distinct recipients in a minute")
	require.Regexp(t, `Privacy check: [1-9]\d* string values and tag values in the central database, 0 holding`, text)
	require.Regexp(t, `Grafana dashboards \(grafana/, provisioned as grafana/provisioning says\): 5 dashboards, [1-9]\d* panels, every one with data at every rollup level \(the DC dashboard: in a DC at least, over the last 15 minutes; \d+ panel runs, \d+ queries\); [1-9]\d* values shown for dc1, dc2 equal`, text)
}
