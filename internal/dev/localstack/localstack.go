// Package localstack is `mailtick-dev stack up|down`: the whole system of the
// demo (a central InfluxDB and DCs as deployed) kept running on loopback
// for people to use, until `down`. `up` runs in the foreground, writes what
// it started to <dir>/stack.json and its pid to <dir>/stack.pid; `down`
// signals it and waits.
package localstack

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/mailtick/mailtick/internal/dev/dc"
)

// State is stack.json: where everything listens.
type State struct {
	Central string    `json:"central_influxdb"`
	DCs     []DCState `json:"dcs"`
}

// DCState is one DC of stack.json.
type DCState struct {
	Name        string `json:"name"`
	NSQD        string `json:"nsqd_tcp"`
	Lookupd     string `json:"nsqlookupd_http"`
	InfluxDB    string `json:"influxdb"`
	Kapacitor   string `json:"kapacitor"`
	Listener    string `json:"agent_listener"`
	AgentLog    string `json:"agent_log"`
	SelfMetrics string `json:"self_metrics_db"`
}

// Up starts the stack in dir and keeps it until ctx ends.
func Up(ctx context.Context, dir string, dcs int, w io.Writer) error {
	if dcs < 1 {
		return fmt.Errorf("invalid --dcs %d: at least 1", dcs)
	}
	if pid, err := readPid(dir); err == nil && syscall.Kill(pid, 0) == nil {
		return fmt.Errorf("a stack already runs in %s (pid %d): mailtick-dev stack down --dir %s", dir, pid, dir)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	sys, err := dc.StartSystem(dir, dcs, dc.Options{}, nil)
	if err != nil {
		return err
	}
	defer sys.Stop()
	state := State{Central: sys.Central.URL}
	for _, d := range sys.DCs {
		state.DCs = append(state.DCs, DCState{Name: d.Name, NSQD: d.NSQD.TCPAddr, Lookupd: d.Lookupd.HTTPAddr,
			InfluxDB: d.DB.URL, Kapacitor: d.Kapacitor.URL, Listener: d.Listen, AgentLog: d.Agent.LogPath, SelfMetrics: "telegraf"})
	}
	b, _ := json.MarshalIndent(state, "", "  ")
	if err := os.WriteFile(filepath.Join(dir, "stack.json"), append(b, '\n'), 0o644); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "stack.pid"), []byte(strconv.Itoa(os.Getpid())+"\n"), 0o644); err != nil {
		return err
	}
	defer os.Remove(filepath.Join(dir, "stack.pid"))
	fmt.Fprintf(w, "%s\nThe stack runs; send traffic with `mailtick gen --nsqd <nsqd_tcp>`; stop it with Ctrl-C or `mailtick-dev stack down --dir %s`.\n", b, dir)
	<-ctx.Done()
	fmt.Fprintln(w, "Stopping the stack.")
	return nil
}

// Down stops the stack that runs in dir and waits until it is gone.
func Down(dir string, wait time.Duration) error {
	pid, err := readPid(dir)
	if err != nil {
		return fmt.Errorf("no stack runs in %s: %w", dir, err)
	}
	if err := syscall.Kill(pid, syscall.SIGTERM); err != nil {
		return fmt.Errorf("stopping the stack (pid %d): %w", pid, err)
	}
	deadline := time.Now().Add(wait)
	for time.Now().Before(deadline) {
		if syscall.Kill(pid, 0) != nil {
			return nil
		}
		time.Sleep(100 * time.Millisecond)
	}
	return fmt.Errorf("the stack (pid %d) did not stop within %s", pid, wait)
}

func readPid(dir string) (int, error) {
	b, err := os.ReadFile(filepath.Join(dir, "stack.pid"))
	if err != nil {
		return 0, err
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 0 {
		return 0, errors.New("stack.pid is unreadable")
	}
	return pid, nil
}
