// Package clitest holds what the tests of mailtick's and mailtick-dev's
// command lines check alike.
package clitest

import (
	"bytes"
	"io"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// Help is one subcommand whose -h and --help must print usage holding
// Want.
type Help struct {
	Args []string
	Want string
}

// RequireHelp checks that -h and --help of every subcommand make run
// print its usage to stdout and return 0, with nothing on stderr: help is
// not an error.
func RequireHelp(t *testing.T, run func(args []string, stdout, stderr io.Writer) int, cases []Help) {
	t.Helper()
	for _, tt := range cases {
		for _, h := range []string{"-h", "--help"} {
			args := append(append([]string{}, tt.Args...), h)
			t.Run(strings.Join(args, " "), func(t *testing.T) {
				var stdout, stderr bytes.Buffer
				require.Equal(t, 0, run(args, &stdout, &stderr), "exit code; stderr: %s", stderr.String())
				require.Contains(t, stdout.String(), tt.Want)
				require.Empty(t, stderr.String())
			})
		}
	}
}
