package main

import (
	"bytes"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/mailtick/mailtick/internal/testutil/clitest"
)

// TestHelp: -h and --help of every subcommand print its usage to stdout
// and exit 0, with nothing on stderr and nothing run (no server is asked,
// no UDF served): help is not an error.
func TestHelp(t *testing.T) {
	clitest.RequireHelp(t, run, []clitest.Help{
		{Args: []string{}, Want: "Usage:"},
		{Args: []string{"gen"}, Want: "-nsqd"},
		{Args: []string{"sla"}, Want: "Usage: mailtick sla"},
		{Args: []string{"deliverability"}, Want: "Usage: mailtick deliverability"},
		{Args: []string{"udf"}, Want: "Usage: mailtick udf mail_latency_hist|mail_spam"},
		{Args: []string{"udf", "mail_spam"}, Want: "Usage: mailtick udf mail_latency_hist|mail_spam"},
		{Args: []string{"tasks"}, Want: "Usage: mailtick tasks"},
		{Args: []string{"tasks", "plan"}, Want: "-var"},
		{Args: []string{"tasks", "apply"}, Want: "-url"},
		{Args: []string{"tasks", "list"}, Want: "-c string"},
		{Args: []string{"tasks", "prune"}, Want: "Usage: mailtick tasks"},
		{Args: []string{"check"}, Want: "Usage: mailtick check volume"},
		{Args: []string{"check", "volume"}, Want: "-warn-below"},
		{Args: []string{"rollups"}, Want: "Usage: mailtick rollups rebuild"},
		{Args: []string{"rollups", "rebuild"}, Want: "-from"},
		{Args: []string{"trace"}, Want: "Usage: mailtick trace"},
	})
}

// TestTraceBadFlags: mailtick trace's errors name the flag and the value,
// before any server is asked.
func TestTraceBadFlags(t *testing.T) {
	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"--message-id", "x", "--from", "yesterday"}, `invalid --from "yesterday"`},
		{[]string{"--message-id", "x", "--format", "xml"}, `invalid --format "xml"`},
		{[]string{"--message-id", "x", "--from", "2026-11-24T00:00:00Z", "--to", "2026-11-23T00:00:00Z"}, "from must come first"},
		{[]string{"--url", "http://127.0.0.1:1"}, "nothing to look up"},
		{[]string{"m1@example.com"}, "the keys are flags"},
	} {
		var stdout, stderr bytes.Buffer
		require.Equal(t, 1, run(append([]string{"trace"}, tt.args...), &stdout, &stderr), tt.args)
		require.Contains(t, stderr.String(), tt.want, tt.args)
	}
	// The same range flags of mailtick rollups rebuild, where --from has
	// no default.
	var stdout, stderr bytes.Buffer
	require.Equal(t, 1, run([]string{"rollups", "rebuild", "--to", "2026-11-23T00:00:00Z"}, &stdout, &stderr))
	require.Contains(t, stderr.String(), "--from is required")
}

// TestBadFlag: a flag that does not exist is an error, its message and
// the usage on stderr (check volume answers as a Nagios plugin: UNKNOWN).
func TestBadFlag(t *testing.T) {
	var stdout, stderr bytes.Buffer
	require.Equal(t, 1, run([]string{"sla", "--nope"}, &stdout, &stderr))
	require.Contains(t, stderr.String(), "flag provided but not defined: -nope")
	require.Contains(t, stderr.String(), "Usage: mailtick sla")
	require.Empty(t, stdout.String())

	stdout.Reset()
	stderr.Reset()
	require.Equal(t, 3, run([]string{"check", "volume", "--nope"}, &stdout, &stderr))
	require.Contains(t, stdout.String(), "MAIL VOLUME UNKNOWN - flag provided but not defined: -nope")
}

// TestUDFNames: each UDF by its name; the arguments of 0.3.0 still serve
// theirs (kapacitord refuses to start when a declared UDF fails); anything
// else is refused with the kapacitor.conf block to write.
func TestUDFNames(t *testing.T) {
	for args, want := range map[string]string{
		"mail_latency_hist": "mail_latency_hist", "mail_spam": "mail_spam",
		"": "mail_latency_hist", "spam": "mail_spam",
	} {
		got, err := udfName(strings.Fields(args))
		require.NoError(t, err, "%q", args)
		require.Equal(t, want, got, "%q", args)
	}
	for _, args := range [][]string{{"mailtick_hist"}, {"hist"}, {"mail_spam", "x"}} {
		var stdout, stderr bytes.Buffer
		require.Equal(t, 1, run(append([]string{"udf"}, args...), &stdout, &stderr), "%q", args)
		require.Contains(t, stderr.String(), `[udf.functions.mail_latency_hist] args = ["udf", "mail_latency_hist"]`, "%q", args)
		require.Contains(t, stderr.String(), "renamed from mailtick_hist and mailtick_spam", "%q", args)
		require.Empty(t, stdout.String())
	}
}
