package cli

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestRun(t *testing.T) {
	var got []string
	cmds := map[string]Command{
		"ok":    Plain(func(_ context.Context, args []string) error { got = args; return nil }),
		"fails": Plain(func(context.Context, []string) error { return errors.New("boom") }),
		"check": func(context.Context, []string) (int, error) { return 3, nil },
	}
	tests := []struct {
		args           []string
		code           int
		stdout, stderr string
	}{
		{nil, 2, "", "usage"},
		{[]string{"help"}, 0, "usage", ""},
		{[]string{"nope"}, 2, "", `x: unknown command "nope"`},
		{[]string{"ok", "a", "b"}, 0, "", ""},
		{[]string{"fails"}, 1, "", "x fails: boom"},
		{[]string{"check"}, 3, "", ""},
	}
	for _, tt := range tests {
		var stdout, stderr bytes.Buffer
		require.Equal(t, tt.code, Run("x", "usage", tt.args, cmds, &stdout, &stderr), "%v", tt.args)
		require.Contains(t, stdout.String(), tt.stdout, "%v", tt.args)
		require.Contains(t, stderr.String(), tt.stderr, "%v", tt.args)
	}
	require.Equal(t, []string{"a", "b"}, got, "the subcommand gets the arguments after its name")
}

// TestParseHelp: -h and --help print the flags to stdout and Run exits 0;
// a bad flag prints the error and the flags to stderr and Run exits 1.
func TestParseHelp(t *testing.T) {
	var stdout, stderr bytes.Buffer
	cmds := map[string]Command{
		"flags": Plain(func(_ context.Context, args []string) error {
			fs := flag.NewFlagSet("flags", flag.ExitOnError) // made ContinueOnError
			fs.Bool("v", false, "verbose")
			return Parse(fs, args, &stdout, &stderr)
		}),
	}
	tests := []struct {
		args           []string
		code           int
		stdout, stderr string
	}{
		{[]string{"flags", "-h"}, 0, "Usage of flags", ""},
		{[]string{"flags", "--help"}, 0, "verbose", ""},
		{[]string{"flags", "-v", "-help"}, 0, "verbose", ""},
		{[]string{"flags", "-x"}, 1, "", "flag provided but not defined: -x"},
	}
	for _, tt := range tests {
		stdout.Reset()
		stderr.Reset()
		require.Equal(t, tt.code, Run("x", "usage", tt.args, cmds, &stdout, &stderr), "%v", tt.args)
		require.Contains(t, stdout.String(), tt.stdout, "%v", tt.args)
		require.Contains(t, stderr.String(), tt.stderr, "%v", tt.args)
		if tt.code == 0 {
			require.Empty(t, stderr.String(), "%v", tt.args)
		} else {
			require.Contains(t, stderr.String(), "Usage of flags", "%v", tt.args)
			require.Empty(t, stdout.String(), "%v", tt.args)
		}
	}
	require.True(t, IsHelp([]string{"help", "x"}))
	require.False(t, IsHelp([]string{"plan", "-h"}))
}
