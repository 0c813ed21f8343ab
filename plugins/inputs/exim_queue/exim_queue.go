// Package exim_queue is inputs.exim_queue: the length of Exim's queue,
// its frozen messages, their size and the oldest message's age, read from
// the spool as Exim writes it (the stock inputs.postfix does the same for
// Postfix's queue folders). No exim process is run: reading the spool
// needs no setuid binary and no admin user, only the spool's group.
//
//revive:disable-next-line:var-naming Telegraf's plugin folders are named as the plugins
package exim_queue

import (
	"bufio"
	_ "embed"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/influxdata/telegraf"
	"github.com/influxdata/telegraf/plugins/inputs"
)

//go:embed sample.conf
var sampleConfig string

// EximQueue reads an Exim spool.
type EximQueue struct {
	SpoolDirectory string `toml:"spool_directory"`
	MaxMessages    int    `toml:"max_messages"`

	now func() time.Time
}

func (*EximQueue) SampleConfig() string { return sampleConfig }

// Init checks the options; errors name the option and the bad value.
func (e *EximQueue) Init() error {
	if e.SpoolDirectory == "" {
		return fmt.Errorf("%q must be set: Exim's spool_directory", "spool_directory")
	}
	if e.MaxMessages <= 0 {
		return fmt.Errorf("invalid %q value %d: must be positive", "max_messages", e.MaxMessages)
	}
	if e.now == nil {
		e.now = time.Now
	}
	return nil
}

// state is one of the two points: the messages waiting for delivery, and
// the frozen ones (Exim tries them no more until thawed or timed out).
type state struct {
	length, size int64
	oldest       int64 // received, Unix seconds; 0: none
}

// Gather reads the spool's header files: one per message.
func (e *EximQueue) Gather(acc telegraf.Accumulator) error {
	input := filepath.Join(e.SpoolDirectory, "input")
	dirs := []string{input}
	entries, err := os.ReadDir(input)
	if errors.Is(err, fs.ErrNotExist) {
		// Exim makes input/ for its first message: a spool without it
		// is empty; without the spool, the option is wrong.
		_, err = os.Stat(e.SpoolDirectory)
		dirs = nil
	}
	if err != nil {
		return fmt.Errorf("%q %q: %w", "spool_directory", e.SpoolDirectory, err)
	}
	for _, d := range entries {
		if d.IsDir() && len(d.Name()) == 1 { // split_spool_directory
			dirs = append(dirs, filepath.Join(input, d.Name()))
		}
	}
	states := map[string]*state{"queued": {}, "frozen": {}}
	seen, truncated := 0, false
	for _, dir := range dirs {
		names, err := os.ReadDir(dir)
		if err != nil {
			acc.AddError(fmt.Errorf("%s: %w", dir, err))
			continue
		}
		for _, n := range names {
			name := n.Name()
			if !strings.HasSuffix(name, "-H") {
				continue
			}
			if seen == e.MaxMessages {
				truncated = true
				break
			}
			received, frozen, err := readHeader(filepath.Join(dir, name))
			if errors.Is(err, fs.ErrNotExist) {
				continue // delivered meanwhile
			}
			if err != nil {
				acc.AddError(err)
				continue
			}
			seen++
			st := states["queued"]
			if frozen {
				st = states["frozen"]
			}
			st.length++
			for _, part := range []string{name, strings.TrimSuffix(name, "H") + "D"} {
				if fi, err := os.Stat(filepath.Join(dir, part)); err == nil {
					st.size += fi.Size()
				}
			}
			if st.oldest == 0 || received < st.oldest {
				st.oldest = received
			}
		}
	}
	now := e.now()
	for name, st := range states {
		age := int64(0)
		if st.oldest > 0 {
			age = max(0, now.Unix()-st.oldest)
		}
		acc.AddFields("exim_queue", map[string]any{"length": st.length, "size": st.size, "age": age, "truncated": truncated},
			map[string]string{"state": name, "spool_directory": e.SpoolDirectory}, now)
	}
	return nil
}

// readHeader reads a message's -H file: the time it was received (its
// fourth line, "<seconds> <warnings sent>") and whether it is frozen (an
// option line "-frozen <time>", among the "-" lines after it). An ACL
// variable's option line ("-aclc <name> <length>", "-aclm …") is followed
// by its value, which may span lines: it is skipped by its length.
func readHeader(path string) (received int64, frozen bool, err error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, false, err
	}
	defer f.Close()
	r := bufio.NewReaderSize(f, 4096)
	for line := 1; ; line++ {
		text, err := r.ReadString('\n')
		if err != nil {
			if received == 0 {
				return 0, false, fmt.Errorf("%s: not an Exim header file (no fourth line)", path)
			}
			return received, frozen, nil
		}
		text = strings.TrimSuffix(text, "\n")
		switch {
		case line == 4:
			secs, _, _ := strings.Cut(text, " ")
			if received, err = strconv.ParseInt(secs, 10, 64); err != nil {
				return 0, false, fmt.Errorf("%s: line 4 %q is not Exim's \"<received> <warnings>\"", path, text)
			}
		case line < 4:
		case !strings.HasPrefix(text, "-"):
			return received, frozen, nil // the options end
		case text == "-frozen" || strings.HasPrefix(text, "-frozen "):
			frozen = true
		case strings.HasPrefix(text, "-aclc ") || strings.HasPrefix(text, "-aclm "):
			f := strings.Fields(text)
			n, err := strconv.Atoi(f[len(f)-1])
			if err != nil || n < 0 {
				return 0, false, fmt.Errorf("%s: ACL variable line %q has no length", path, text)
			}
			if _, err := r.Discard(n + 1); err != nil { // the value and its newline
				return 0, false, fmt.Errorf("%s: ACL variable of %d bytes cut short", path, n)
			}
		}
	}
}

func init() {
	inputs.Add("exim_queue", func() telegraf.Input {
		return &EximQueue{SpoolDirectory: "/var/spool/exim4", MaxMessages: 1000000}
	})
}
