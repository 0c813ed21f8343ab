// Package cli runs the subcommands of mailtick's commands: one way to
// parse the command word, handle signals, print errors and choose the exit
// code. The commands' main functions only call it and exit.
package cli

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

// Command is a subcommand: it returns the process's exit code, and an
// error to print (exit code 1 when it returns 0 with an error).
type Command func(ctx context.Context, args []string) (int, error)

// Plain adapts a subcommand that only fails or not.
func Plain(f func(ctx context.Context, args []string) error) Command {
	return func(ctx context.Context, args []string) (int, error) { return 0, f(ctx, args) }
}

// Run runs the subcommand named by args[0] and returns the exit code: 2
// for a missing or unknown one (usage on stderr), 0 for help (usage on
// stdout), 0 too when the subcommand returns flag.ErrHelp (it printed its
// own usage: see Parse). SIGINT and SIGTERM cancel the subcommand's
// context.
func Run(name, usage string, args []string, commands map[string]Command, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	switch args[0] {
	case "-h", "--help", "help":
		fmt.Fprint(stdout, usage)
		return 0
	}
	cmd, ok := commands[args[0]]
	if !ok {
		fmt.Fprintf(stderr, "%s: unknown command %q\n\n%s", name, args[0], usage)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	code, err := cmd(ctx, args[1:])
	if errors.Is(err, flag.ErrHelp) {
		return code
	}
	if err != nil {
		fmt.Fprintf(stderr, "%s %s: %v\n", name, args[0], err)
		if code == 0 {
			code = 1
		}
	}
	return code
}

// Parse parses a subcommand's flags, whatever error handling fs was made
// with. -h, -help or --help prints fs's usage to stdout and returns
// flag.ErrHelp, which Run answers with exit code 0: help is not an error.
// A bad flag prints the error and the usage to stderr and returns the
// error.
func Parse(fs *flag.FlagSet, args []string, stdout, stderr io.Writer) error {
	var out bytes.Buffer
	fs.Init(fs.Name(), flag.ContinueOnError)
	fs.SetOutput(&out)
	err := fs.Parse(args)
	fs.SetOutput(stderr)
	if errors.Is(err, flag.ErrHelp) {
		stdout.Write(out.Bytes())
	} else {
		stderr.Write(out.Bytes())
	}
	return err
}

// IsHelp reports whether args ask for help before anything else (-h,
// -help, --help or help): for subcommands that take a word before their
// flags (tasks plan, stack up), which answer it as Parse does.
func IsHelp(args []string) bool {
	if len(args) == 0 {
		return false
	}
	switch args[0] {
	case "-h", "-help", "--help", "help":
		return true
	}
	return false
}
