package main

import (
	"testing"

	"github.com/mailtick/mailtick/internal/testutil/clitest"
)

// TestHelp: -h and --help of every subcommand print its usage to stdout
// and exit 0, with nothing on stderr and nothing started: help is not an
// error.
func TestHelp(t *testing.T) {
	clitest.RequireHelp(t, run, []clitest.Help{
		{Args: []string{}, Want: "Usage:"},
		{Args: []string{"demo"}, Want: "-events"},
		{Args: []string{"bench"}, Want: "-pairs"},
		{Args: []string{"stack"}, Want: "Usage: mailtick-dev stack up|down"},
		{Args: []string{"stack", "up"}, Want: "-dcs"},
		{Args: []string{"stack", "down"}, Want: "-dir"},
	})
}
