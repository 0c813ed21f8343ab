package main

import (
	"bytes"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestHelp: -h and --help of every subcommand print its usage to stdout
// and exit 0, with nothing on stderr and nothing run (no server is asked,
// no UDF served): help is not an error.
func TestHelp(t *testing.T) {
	for _, tt := range []struct {
		args []string
		want string // in the usage
	}{
		{[]string{}, "Usage:"},
		{[]string{"gen"}, "-nsqd"},
		{[]string{"sla"}, "Usage: mailtick sla"},
		{[]string{"udf"}, "Usage: mailtick udf [spam]"},
		{[]string{"udf", "spam"}, "Usage: mailtick udf [spam]"},
		{[]string{"tasks"}, "Usage: mailtick tasks"},
		{[]string{"tasks", "plan"}, "-var"},
		{[]string{"tasks", "apply"}, "-url"},
		{[]string{"tasks", "list"}, "-c string"},
		{[]string{"tasks", "prune"}, "Usage: mailtick tasks"},
		{[]string{"check"}, "Usage: mailtick check volume"},
		{[]string{"check", "volume"}, "-warn-below"},
		{[]string{"rollups"}, "Usage: mailtick rollups rebuild"},
		{[]string{"rollups", "rebuild"}, "-from"},
	} {
		for _, h := range []string{"-h", "--help"} {
			args := append(append([]string{}, tt.args...), h)
			t.Run(strings.Join(args, " "), func(t *testing.T) {
				var stdout, stderr bytes.Buffer
				require.Equal(t, 0, run(args, &stdout, &stderr), "exit code; stderr: %s", stderr.String())
				require.Contains(t, stdout.String(), tt.want)
				require.Empty(t, stderr.String())
			})
		}
	}
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
