package stack

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
)

// Exim is a real Exim (Debian's, unpacked by make setup into .cache/exim)
// with a configuration and spool of its own. It runs no daemon: messages
// given to it stay queued (queue_only), as behind a busy or unreachable
// next hop.
type Exim struct {
	Spool string // its spool_directory
	conf  string
	bin   string
}

const eximConf = `primary_hostname = mx1.dc1.example.net
spool_directory = %[1]s/spool
log_file_path = %[1]s/log/%%slog
exim_user = Debian-exim
exim_group = Debian-exim
never_users =
trusted_users = root
queue_only = true
keep_environment =
begin routers
nowhere:
  driver = redirect
  data = :blackhole:
`

// StartExim writes Exim's configuration and spool in dir.
func StartExim(dir string) (*Exim, error) {
	bin, err := Binary("exim")
	if err != nil {
		return nil, err
	}
	dir, err = filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	e := &Exim{Spool: filepath.Join(dir, "spool"), conf: filepath.Join(dir, "exim.conf"), bin: bin}
	for _, d := range []string{e.Spool, filepath.Join(dir, "log")} {
		if err := os.MkdirAll(d, 0o750); err != nil {
			return nil, err
		}
		if out, err := exec.Command("chown", "Debian-exim:Debian-exim", d).CombinedOutput(); err != nil {
			return nil, fmt.Errorf("chown Debian-exim (make setup creates the user): %v: %s", err, out)
		}
	}
	if err := reachable(dir); err != nil { // Exim's user
		return nil, err
	}
	if err := writeFile(e.conf, fmt.Sprintf(eximConf, dir)); err != nil {
		return nil, err
	}
	if _, err := e.run(nil, "-bV"); err != nil {
		return nil, err
	}
	return e, nil
}

// run runs exim with the configuration and args, body on its stdin.
func (e *Exim) run(body []byte, args ...string) (string, error) {
	cmd := exec.Command(e.bin, append([]string{"-C", e.conf}, args...)...)
	root := filepath.Dir(filepath.Dir(filepath.Dir(e.bin)))
	cmd.Env = append(os.Environ(), "LD_LIBRARY_PATH="+filepath.Join(root, "usr/lib/x86_64-linux-gnu"))
	cmd.Stdin = bytes.NewReader(body)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("exim %s: %v: %s", strings.Join(args, " "), err, out)
	}
	return string(out), nil
}

// Submit queues a message from sender to the recipients; it returns its
// id.
func (e *Exim) Submit(sender string, recipients ...string) (string, error) {
	before, err := e.IDs()
	if err != nil {
		return "", err
	}
	if _, err := e.run([]byte("Subject: queued\n\nhi\n"), append([]string{"-odq", "-f", sender}, recipients...)...); err != nil {
		return "", err
	}
	after, err := e.IDs()
	if err != nil {
		return "", err
	}
	for _, id := range after {
		if !strings.Contains(strings.Join(before, " "), id) {
			return id, nil
		}
	}
	return "", fmt.Errorf("exim queued no new message")
}

// IDs lists the queue's message ids, from exim -bpr: "25m  2.9K <id>
// <sender>", its recipients on the lines after.
func (e *Exim) IDs() ([]string, error) {
	out, err := e.run(nil, "-bpr")
	var ids []string
	for _, line := range strings.Split(out, "\n") {
		if f := strings.Fields(line); len(f) >= 3 && strings.Count(f[2], "-") == 2 {
			ids = append(ids, f[2])
		}
	}
	return ids, err
}

// Freeze freezes a message (exim -Mf).
func (e *Exim) Freeze(id string) error {
	_, err := e.run(nil, "-Mf", id)
	return err
}

// Queue is what Exim itself says of its queue: the count (exim -bpc) and
// the listing (exim -bp), in which frozen messages are marked.
func (e *Exim) Queue() (count int, listing string, err error) {
	out, err := e.run(nil, "-bpc")
	if err != nil {
		return 0, "", err
	}
	if count, err = strconv.Atoi(strings.TrimSpace(lastLine(out))); err != nil {
		return 0, "", fmt.Errorf("exim -bpc: %q", out)
	}
	listing, err = e.run(nil, "-bp")
	return count, listing, err
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return lines[len(lines)-1]
}
