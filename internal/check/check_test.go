package check

import (
	"net"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/mailtick/mailtick/internal/gen"
	"github.com/mailtick/mailtick/internal/influxq"
	"github.com/mailtick/mailtick/internal/testutil/stack"
	"github.com/mailtick/mailtick/internal/testutil/stacktest"
)

func TestVolumeIntegration(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test")
	}
	db := stacktest.InfluxDB(t, "mail")
	// 30 outbound mails two minutes ago, 50 more eight minutes ago: far from
	// the edge of a 5m window, so the count is 30 whenever the check runs.
	g, err := gen.New(gen.Config{Seed: 4})
	require.NoError(t, err)
	var lines strings.Builder
	now := time.Now()
	for i := 0; i < 80; i++ {
		m := g.Next()
		m.Event.Direction = "outbound"
		m.Time = now.Add(-2*time.Minute + time.Duration(i)*time.Second)
		if i >= 30 {
			m.Time = now.Add(-8*time.Minute + time.Duration(i)*time.Second)
		}
		lines.WriteString(m.Line("dc1"))
	}
	require.NoError(t, db.Write("mail", lines.String()))

	base := Volume{Querier: influxq.Querier{URL: db.URL, Timeout: 10 * time.Second}, Database: "mail", Measurement: "mail_event", DC: "dc1", Direction: "outbound",
		Window: 5 * time.Minute, WarnBelow: -1, CritBelow: -1, WarnAbove: -1, CritAbove: -1}
	// A server that accepts the connection and never answers.
	hung, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer hung.Close()
	// One that wants credentials.
	auth := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if u, p, ok := r.BasicAuth(); !ok || u != "nagios" || p != "s3cret" {
			http.Error(w, `{"error":"authorization failed"}`, http.StatusUnauthorized)
			return
		}
		_, _ = w.Write([]byte(`{"results":[{"series":[{"name":"mail_event","columns":["time","count"],"values":[[0,7]]}]}]}`))
	}))
	defer auth.Close()
	tests := []struct {
		name string
		edit func(*Volume)
		want Status
		line string
	}{
		{"ok", func(v *Volume) { v.WarnBelow, v.CritBelow, v.WarnAbove, v.CritAbove = 10, 5, 100, 200 },
			OK, "MAIL VOLUME OK - 30 outbound mails in dc1 in the last 5m0s | mails=30;10:100;5:200;0;"},
		{"too few", func(v *Volume) { v.WarnBelow, v.CritBelow = 40, 20 }, Warning, "MAIL VOLUME WARNING - 30 "},
		{"far too many", func(v *Volume) { v.WarnAbove, v.CritAbove = 10, 20 }, Critical, "| mails=30;~:10;~:20;0;"},
		{"other direction", func(v *Volume) { v.Direction = "inbound"; v.CritBelow = 1 }, Critical, "MAIL VOLUME CRITICAL - 0 inbound"},
		{"InfluxDB unreachable", func(v *Volume) { v.Querier.URL = "http://127.0.0.1:1" }, Unknown, "MAIL VOLUME UNKNOWN - cannot ask InfluxDB"},
		{"InfluxDB hangs: the timeout answers", func(v *Volume) {
			v.Querier.URL, v.Querier.Timeout = "http://"+hung.Addr().String(), 500*time.Millisecond
		},
			Unknown, "MAIL VOLUME UNKNOWN - cannot ask InfluxDB"},
		{"credentials", func(v *Volume) { v.Querier.URL, v.Querier.Username, v.Querier.Password = auth.URL, "nagios", "s3cret" }, OK, "MAIL VOLUME OK - 7 outbound"},
		{"wrong credentials", func(v *Volume) { v.Querier.URL, v.Querier.Username, v.Querier.Password = auth.URL, "nagios", "guess" }, Unknown, "authorization failed"},
		{"thresholds crossed", func(v *Volume) { v.WarnBelow, v.CritBelow = 5, 10 }, Unknown, "--crit-below 10 is above --warn-below 5"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v := base
			tt.edit(&v)
			res := v.Run()
			require.Equal(t, tt.want, res.Status, res.Line)
			require.Contains(t, res.Line, tt.line)
		})
	}

	// The command exits with the status.
	bin, err := stack.Binary("mailtick")
	require.NoError(t, err)
	out, err := exec.Command(bin, "check", "volume", "--url", db.URL, "--dc", "dc1", "--direction", "outbound",
		"--crit-above", "20").CombinedOutput()
	var exit *exec.ExitError
	require.ErrorAs(t, err, &exit)
	require.Equal(t, 2, exit.ExitCode(), "%s", out)
	require.Equal(t, "MAIL VOLUME CRITICAL - 30 outbound mails in dc1 in the last 5m0s | mails=30;;~:20;0;\n", string(out))
}
