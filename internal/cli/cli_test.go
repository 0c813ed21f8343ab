package cli

import (
	"bytes"
	"context"
	"errors"
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
