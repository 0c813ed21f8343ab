package stack_test

import (
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/mailtick/mailtick/internal/stack"
	"github.com/mailtick/mailtick/internal/stack/stacktest"
)

// TestServersStartIntegration starts every server the project uses, so a
// broken build or start-up shows here first, with the server's own log.
func TestServersStartIntegration(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test")
	}
	lookupd := stacktest.NSQLookupd(t)
	nsqd := stacktest.NSQDWith(t, stack.NSQDOptions{Lookupd: []string{lookupd.TCPAddr}})
	require.NotEmpty(t, nsqd.TCPAddr)

	influx := stacktest.InfluxDB(t)
	_, err := influx.Query("", "CREATE DATABASE smoke")
	require.NoError(t, err)
	series, err := influx.Query("", "SHOW DATABASES")
	require.NoError(t, err)
	require.Contains(t, series[0].Values, []any{"smoke"})

	// Flux is enabled (the flux/ scripts of later issues run on it).
	resp, err := http.Post(influx.URL+"/api/v2/query", "application/vnd.flux",
		strings.NewReader(`buckets()`))
	require.NoError(t, err)
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, resp.StatusCode, "%s", body)
	require.Contains(t, string(body), "smoke/autogen")

	kapa := stacktest.Kapacitor(t, influx.URL)
	require.NotEmpty(t, kapa.URL)
}
