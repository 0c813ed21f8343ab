package stack_test

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/mailtick/mailtick/internal/gen"
	"github.com/mailtick/mailtick/internal/testutil/stack"
	"github.com/mailtick/mailtick/internal/testutil/stacktest"
)

// TestServersStartIntegration starts every server the project uses, so a
// broken build or start-up shows here first, with the server's own log.
func TestServersStartIntegration(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test")
	}
	lookupd := stacktest.NSQLookupd(t)
	nsqd := stacktest.NSQDWith(t, stack.NSQDOptions{Lookupd: []string{lookupd.TCPAddr}})
	sink, err := gen.NewNSQSink(nsqd.TCPAddr, "smoke")
	require.NoError(t, err)
	require.NoError(t, sink.Write([][]byte{[]byte("x"), []byte("y")}))
	sink.Close()
	st, err := nsqd.TopicStats("smoke")
	require.NoError(t, err)
	require.Equal(t, int64(2), st.MessageCount, "nsqd takes messages")

	influx := stacktest.InfluxDB(t)
	_, err = influx.Query("", "CREATE DATABASE smoke")
	require.NoError(t, err)
	series, err := influx.Query("", "SHOW DATABASES")
	require.NoError(t, err)
	require.Contains(t, series[0].Values, []any{"smoke"})

	// Flux is enabled (the flux/ scripts run on it).
	resp, err := http.Post(influx.URL+"/api/v2/query", "application/vnd.flux",
		strings.NewReader(`buckets()`))
	require.NoError(t, err)
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, resp.StatusCode, "%s", body)
	require.Contains(t, string(body), "smoke/autogen")

	kapa := stacktest.Kapacitor(t, influx.URL)
	resp, err = http.Get(kapa.URL + "/kapacitor/v1/ping")
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusNoContent, resp.StatusCode, "kapacitord answers its ping")
}

// TestTelegrafConfIntegration: the repository's telegraf.conf loads and
// runs (`telegraf --test`) with its settings from the environment, against
// a fresh stack.
func TestTelegrafConfIntegration(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test")
	}
	root, err := stack.Root()
	require.NoError(t, err)
	bin, err := stack.Binary("telegraf")
	require.NoError(t, err)
	lookupd := stacktest.NSQLookupd(t)
	stacktest.NSQDWith(t, stack.NSQDOptions{Lookupd: []string{lookupd.TCPAddr}})
	influx := stacktest.InfluxDB(t)
	port, err := stack.FreePort()
	require.NoError(t, err)

	cmd := exec.Command(bin, "--config", filepath.Join(root, "telegraf.conf"), "--strict-env-handling", "--test", "--test-wait", "1")
	cmd.Env = append(os.Environ(),
		"MAILTICK_DC=dc9", "NSQLOOKUPD_HTTP="+lookupd.HTTPAddr, "DC_INFLUXDB_URL="+influx.URL,
		fmt.Sprintf("LISTEN_ADDRESS=127.0.0.1:%d", port), "MAILTICK_LISTENER_PASSWORD=test", "CENTRAL_INFLUXDB_URL="+influx.URL,
		"MAILTICK_PII_KEY=0123456789abcdef-test", "MAILTICK_PII_KEY_ID=test", "SPOOL_DIR="+t.TempDir(),
		"MAILLOG_FILE="+filepath.Join(t.TempDir(), "mail.log"), "MAILLOG_STATE_DIR="+t.TempDir())
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "%s", out)
	for _, want := range []string{"internal_mailevents,", "output=rollupfwd", "processor=piiscrub", "input=influxdb_listener", "dc=dc9"} {
		require.Contains(t, string(out), want)
	}
	for _, line := range strings.Split(string(out), "\n") {
		if strings.Contains(line, "Outputs are not used in testing mode") {
			continue // --test's own
		}
		require.NotContains(t, line, " W! ", "a fresh start logs no warning")
		require.NotContains(t, line, " E! ", "a fresh start logs no error")
	}
}
