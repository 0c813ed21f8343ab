package main

import (
	"bytes"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestHelp: -h and --help of every subcommand print its usage to stdout
// and exit 0, with nothing on stderr and nothing started: help is not an
// error.
func TestHelp(t *testing.T) {
	for _, tt := range []struct {
		args []string
		want string // in the usage
	}{
		{[]string{}, "Usage:"},
		{[]string{"demo"}, "-events"},
		{[]string{"bench"}, "-pairs"},
		{[]string{"stack"}, "Usage: mailtick-dev stack up|down"},
		{[]string{"stack", "up"}, "-dcs"},
		{[]string{"stack", "down"}, "-dir"},
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
