package main

import (
	"bytes"
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
		{Args: []string{"udf"}, Want: "Usage: mailtick udf [spam]"},
		{Args: []string{"udf", "spam"}, Want: "Usage: mailtick udf [spam]"},
		{Args: []string{"tasks"}, Want: "Usage: mailtick tasks"},
		{Args: []string{"tasks", "plan"}, Want: "-var"},
		{Args: []string{"tasks", "apply"}, Want: "-url"},
		{Args: []string{"tasks", "list"}, Want: "-c string"},
		{Args: []string{"tasks", "prune"}, Want: "Usage: mailtick tasks"},
		{Args: []string{"check"}, Want: "Usage: mailtick check volume"},
		{Args: []string{"check", "volume"}, Want: "-warn-below"},
		{Args: []string{"rollups"}, Want: "Usage: mailtick rollups rebuild"},
		{Args: []string{"rollups", "rebuild"}, Want: "-from"},
	})
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
