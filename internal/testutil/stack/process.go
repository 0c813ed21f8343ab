// Package stack starts the real servers mailtick talks to (nsqd,
// nsqlookupd, influxd, kapacitord) and the mailtick build of Telegraf on
// loopback, each on free ports with its own data folder. Tests (through
// stacktest), the demo and `mailtick-dev stack` use it; nothing else starts
// servers.
package stack

import (
	"bufio"
	_ "embed"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"
)

// versionsEnv holds the server versions, as scripts/servers.sh builds them
// into .cache/servers/<name>-<version>/.
//
//go:embed versions.env
var versionsEnv string

// version returns a version that versions.env sets.
func version(key string) string {
	for _, line := range strings.Split(versionsEnv, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), key+"="); ok {
			return v
		}
	}
	panic("internal/testutil/stack/versions.env does not set " + key)
}

// Versions of the servers.
var (
	NSQVersion       = version("NSQ_VERSION")
	InfluxDBVersion  = version("INFLUXDB_VERSION")
	KapacitorVersion = version("KAPACITOR_VERSION")
)

var binaries = map[string]string{
	"nsqd":         ".cache/servers/nsq-" + NSQVersion + "/nsqd",
	"nsqlookupd":   ".cache/servers/nsq-" + NSQVersion + "/nsqlookupd",
	"influxd":      ".cache/servers/influxdb-" + InfluxDBVersion + "/influxd",
	"kapacitord":   ".cache/servers/kapacitor-" + KapacitorVersion + "/kapacitord",
	"exim":         ".cache/exim/root/usr/sbin/exim4",
	"telegraf":     "bin/telegraf",
	"mailtick":     "bin/mailtick",
	"mailtick-dev": "bin/mailtick-dev",
}

// Root returns the repository root: $MAILTICK_ROOT, or the nearest folder
// above the working directory whose go.mod is mailtick's.
func Root() (string, error) {
	if r := os.Getenv("MAILTICK_ROOT"); r != "" {
		return r, nil
	}
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		b, err := os.ReadFile(filepath.Join(dir, "go.mod"))
		if err == nil && strings.HasPrefix(string(b), "module github.com/mailtick/mailtick\n") {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("not inside the mailtick repository; set MAILTICK_ROOT")
		}
		dir = parent
	}
}

// Binary returns the path of a built server or mailtick binary.
func Binary(name string) (string, error) {
	rel, ok := binaries[name]
	if !ok {
		return "", fmt.Errorf("unknown binary %q", name)
	}
	root, err := Root()
	if err != nil {
		return "", err
	}
	path := filepath.Join(root, rel)
	if _, err := os.Stat(path); err != nil {
		how := "make servers"
		switch {
		case strings.HasPrefix(rel, "bin/"):
			how = "make build"
		case name == "exim":
			how = "make setup"
		}
		return "", fmt.Errorf("%s is not built (%v): run `%s` first", name, err, how)
	}
	return path, nil
}

// FreePort returns a loopback TCP port nobody listens on right now.
func FreePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func freeAddrs(n int) ([]string, error) {
	addrs := make([]string, n)
	for i := range addrs {
		p, err := FreePort()
		if err != nil {
			return nil, err
		}
		addrs[i] = fmt.Sprintf("127.0.0.1:%d", p)
	}
	return addrs, nil
}

// Process is one running server.
type Process struct {
	Name    string
	Dir     string // its data folder
	LogPath string // its stdout and stderr

	cmd    *exec.Cmd
	log    *os.File
	exited chan struct{}
	mu     sync.Mutex
	err    error
}

// StartProcess runs bin with args, in its own process group, logging to
// dir/<name>.log. The process dies with the program that started it.
func StartProcess(name, bin string, args []string, dir string, env ...string) (*Process, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	logPath := filepath.Join(dir, name+".log")
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, args...)
	cmd.Dir = dir
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.Env = append(os.Environ(), env...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		logf.Close()
		return nil, fmt.Errorf("starting %s: %w", name, err)
	}
	p := &Process{Name: name, Dir: dir, LogPath: logPath, cmd: cmd, log: logf, exited: make(chan struct{})}
	go func() {
		err := cmd.Wait()
		p.mu.Lock()
		p.err = err
		p.mu.Unlock()
		logf.Close()
		close(p.exited)
	}()
	return p, nil
}

// Exited is closed when the process has ended.
func (p *Process) Exited() <-chan struct{} { return p.exited }

// Pid is the process id.
func (p *Process) Pid() int { return p.cmd.Process.Pid }

// Signal sends sig to the process group.
func (p *Process) Signal(sig syscall.Signal) error {
	return syscall.Kill(-p.cmd.Process.Pid, sig)
}

// Stop asks the process to end (SIGTERM) and kills it after grace.
func (p *Process) Stop(grace time.Duration) error {
	select {
	case <-p.exited:
		return nil
	default:
	}
	_ = p.Signal(syscall.SIGTERM)
	select {
	case <-p.exited:
		return nil
	case <-time.After(grace):
	}
	return p.Kill()
}

// Kill ends the process group at once (SIGKILL) and waits for it.
func (p *Process) Kill() error {
	_ = p.Signal(syscall.SIGKILL)
	select {
	case <-p.exited:
		return nil
	case <-time.After(10 * time.Second):
		return fmt.Errorf("%s (pid %d) did not die after SIGKILL", p.Name, p.Pid())
	}
}

// LogTail returns the last n lines the process printed.
func (p *Process) LogTail(n int) string {
	f, err := os.Open(p.LogPath)
	if err != nil {
		return ""
	}
	defer f.Close()
	var lines []string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for sc.Scan() {
		lines = append(lines, sc.Text())
		if len(lines) > n {
			lines = lines[1:]
		}
	}
	return strings.Join(lines, "\n")
}

// waitReady polls ready until it succeeds, the process exits, or timeout.
func (p *Process) waitReady(timeout time.Duration, ready func() error) error {
	deadline := time.Now().Add(timeout)
	var last error
	for time.Now().Before(deadline) {
		select {
		case <-p.exited:
			p.mu.Lock()
			err := p.err
			p.mu.Unlock()
			return fmt.Errorf("%s exited before it was ready (%v); its log ends:\n%s", p.Name, err, p.LogTail(20))
		default:
		}
		if last = ready(); last == nil {
			return nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	_ = p.Kill()
	return fmt.Errorf("%s not ready after %s (%v); its log ends:\n%s", p.Name, timeout, last, p.LogTail(20))
}

// startReady starts a server on fresh ports and waits until it answers.
// A port taken between choosing and binding makes the server exit; that is
// retried with new ports.
func startReady(name string, ports int, dir string, start func(addrs []string) (*Process, func() error, error)) (*Process, []string, error) {
	var err error
	for attempt := 0; attempt < 3; attempt++ {
		var addrs []string
		if addrs, err = freeAddrs(ports); err != nil {
			return nil, nil, err
		}
		var p *Process
		var ready func() error
		if p, ready, err = start(addrs); err != nil {
			return nil, nil, err
		}
		// start may have replaced a free port by a fixed one.
		if err = p.waitReady(30*time.Second, ready); err == nil {
			return p, addrs, nil
		}
		if !strings.Contains(err.Error(), "address already in use") {
			break
		}
	}
	return nil, nil, fmt.Errorf("starting %s in %s: %w", name, dir, err)
}
