package maillog

import (
	"fmt"
	"net/smtp"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mailtick/mailtick/internal/testutil/stacktest"
	ml "github.com/mailtick/mailtick/plugins/common/maillog"
)

// TestPostfixKillIntegration: a real Postfix writes its maillog_file;
// bin/telegraf follows it with inputs.maillog into a real InfluxDB; the
// agent is killed (SIGKILL) while mail flows and started again. In the
// end InfluxDB holds exactly the events the whole log holds, read apart
// by plugins/common/maillog: none lost, none twice.
func TestPostfixKillIntegration(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test")
	}
	pf, _ := stacktest.Postfix(t)
	influx := stacktest.InfluxDB(t, "mail")
	state := filepath.Join(t.TempDir(), "state")
	agent := stacktest.Telegraf(t, fmt.Sprintf(`[agent]
  flush_interval = "200ms"
  flush_jitter = "0s"
  omit_hostname = true
[[inputs.maillog]]
  files = [%q]
  state_dir = %q
  from_beginning = true
  poll_interval = "50ms"
  checkpoint_interval = "500ms"
  timezone = "UTC"
  [inputs.maillog.tags]
    dc = "dc1"
[[outputs.influxdb]]
  urls = [%q]
  database = "mail"
`, pf.Maillog, state, influx.URL))

	send := func(batch, n int) {
		for i := 0; i < n; i++ {
			to := []string{fmt.Sprintf("ok%d-%d@example.net", batch, i), fmt.Sprintf("bad%d-%d@example.net", batch, i)}
			if i%3 == 0 {
				to = append(to, fmt.Sprintf("later%d-%d@example.net", batch, i))
			}
			body := fmt.Sprintf("Subject: t\r\nMessage-ID: <%d.%d@example.com>\r\n\r\nhi\r\n", batch, i)
			require.NoError(t, smtp.SendMail(pf.SMTP, nil, "alice@example.com", to, []byte(body)))
		}
	}
	count := func() int {
		n, err := influx.Count("mail", `SELECT count("queue_id") FROM mail_event`) // no reject here: every event has one
		require.NoError(t, err)
		return int(n)
	}
	// expected reads the whole log apart: the events it holds.
	expected := func() int {
		b, err := os.ReadFile(pf.Maillog)
		require.NoError(t, err)
		c := ml.NewCorrelator(ml.Options{})
		n := 0
		for _, line := range strings.Split(string(b), "\n") {
			evs, _ := c.Line(line, time.Now(), time.UTC)
			n += len(evs)
		}
		return n
	}
	settled := func(msg string) {
		var want, got int
		if !assert.Eventually(t, func() bool {
			want, got = expected(), count()
			return want > 0 && got == want
		}, 20*time.Second, 250*time.Millisecond, msg) {
			rows, _ := influx.Query("mail", `SELECT * FROM mail_event LIMIT 3`)
			st, _ := os.ReadDir(state)
			t.Fatalf("%s: %d events stored, the log holds %d; rows %v; state %v; agent log:\n%s", msg, got, want, rows, st, agent.LogTail(60))
		}
	}

	send(1, 20)
	settled("the first mail")
	send(2, 20)
	require.NoError(t, agent.Kill(), "SIGKILL while mail flows")
	send(3, 20)
	require.NoError(t, agent.Restart())
	settled("after the kill and restart: every event once")
	// No more lines; once the agent has read and delivered the whole log
	// and stopped, nothing more can be written: the count is final.
	require.NoError(t, pf.Stop())
	fi, err := os.Stat(pf.Maillog)
	require.NoError(t, err)
	checkpointed(t, (&MailLog{StateDir: state}).followerState(pf.Maillog), fi.Size())
	require.NoError(t, agent.Stop(30*time.Second))
	require.Equal(t, expected(), count())
}
