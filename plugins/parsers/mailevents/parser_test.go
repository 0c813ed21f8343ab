package mailevents

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/influxdata/telegraf/plugins/parsers"
	"github.com/influxdata/telegraf/testutil"
	"github.com/stretchr/testify/require"

	"github.com/mailtick/mailtick/internal/testutil/stack"
	"github.com/mailtick/mailtick/internal/testutil/stacktest"
	"github.com/mailtick/mailtick/plugins/common/mailevent"
)

func newParser(t *testing.T) *Parser {
	t.Helper()
	creator, ok := parsers.Parsers["mailevents"]
	require.True(t, ok, `registered as data_format = "mailevents"`)
	p := creator("http_listener_v2").(*Parser)
	p.Log = testutil.Logger{}
	require.NoError(t, p.Init())
	return p
}

func TestParser(t *testing.T) {
	p := newParser(t)
	p.SetDefaultTags(map[string]string{"dc": "dc9", "host": "mx1"})
	ms, err := p.Parse([]byte(`{"time":"2026-11-22T14:00:00Z","event":"bounced","direction":"outbound",
"mailer":"mx12.dc3.example.net","customer":"c10234","smtp_code":550,"recipient":"bob@x.org"}`))
	require.NoError(t, err)
	require.Len(t, ms, 1)
	require.Equal(t, "mail_event", ms[0].Name(), "the mapping's measurement, not the input's name")
	require.Equal(t, map[string]string{"dc": "dc9", "host": "mx1", "direction": "outbound", "event": "bounced",
		"mailer": "mx12.dc3.example.net", "customer": "c10234"}, ms[0].Tags())
	require.Equal(t, int64(550), ms[0].Fields()["smtp_code"])

	// An event's own tag wins over a default tag.
	ms, err = p.Parse([]byte(`{"time":1700000000,"dc":"dc1","a":1}`))
	require.NoError(t, err)
	require.Equal(t, "dc1", ms[0].Tags()["dc"])

	// Some bad events: the good ones come back, the bad are counted.
	ms, err = p.Parse([]byte("{\"time\":1700000000,\"a\":1}\n{\"time\":\n{\"time\":1700000001,\"a\":2}"))
	require.NoError(t, err)
	require.Len(t, ms, 2)
	require.Equal(t, int64(1), p.refused[mailevent.ReasonMalformed].Get())

	// Nothing good: an error, so the input refuses the body.
	_, err = p.Parse([]byte(`not json`))
	require.ErrorContains(t, err, "no event could be read (1 refused; the first: malformed_json")

	m, err := p.ParseLine(`{"time":1700000000,"a":1}`)
	require.NoError(t, err)
	require.Equal(t, time.Unix(1700000000, 0).UnixNano(), m.Time().UnixNano())
	_, err = p.ParseLine(`[{"time":1,"a":1},{"time":2,"a":2}]`)
	require.ErrorContains(t, err, "exactly one event")
}

// TestParserInTelegrafIntegration: bin/telegraf runs the stock
// inputs.http_listener_v2 with data_format = "mailevents": events POSTed to
// it come out as mail_event metrics, a body without any good event gets a
// 400.
func TestParserInTelegrafIntegration(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test")
	}
	port, err := stack.FreePort()
	require.NoError(t, err)
	out := filepath.Join(t.TempDir(), "metrics.out")
	stacktest.Telegraf(t, fmt.Sprintf(`[agent]
  flush_interval = "200ms"
  omit_hostname = true
[[inputs.http_listener_v2]]
  service_address = "127.0.0.1:%d"
  paths = ["/events"]
  data_format = "mailevents"
  tag_keys = ["dc", "direction", "event", "mailer", "customer"]
  [inputs.http_listener_v2.tags]
    dc = "dc7"
[[outputs.file]]
  files = [%q]
  data_format = "influx"
`, port, out))
	url := fmt.Sprintf("http://127.0.0.1:%d/events", port)
	var body strings.Builder
	for i := 0; i < 50; i++ {
		fmt.Fprintf(&body, `{"time":%d,"event":"delivered","direction":"outbound","latency_ms":%d.5,"smtp_code":250}`+"\n", 1700000000+i, i)
	}
	resp, err := http.Post(url, "application/json", strings.NewReader(body.String()))
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusNoContent, resp.StatusCode)

	resp, err = http.Post(url, "application/json", strings.NewReader("not json"))
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusBadRequest, resp.StatusCode, "a body with no good event is refused")

	var lines []string
	require.Eventually(t, func() bool {
		b, _ := os.ReadFile(out)
		lines = strings.Split(strings.TrimSpace(string(b)), "\n")
		return len(lines) >= 50 && lines[0] != ""
	}, 30*time.Second, 50*time.Millisecond, "want 50 metrics in %s", out)
	require.Len(t, lines, 50)
	require.Equal(t, "mail_event,dc=dc7,direction=outbound,event=delivered latency_ms=0.5,smtp_code=250i,events=1i 1700000000000000000", lines[0])
}
