package localstack

import (
	"encoding/json"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/mailtick/mailtick/internal/testutil/stack"
)

func ping(url string) error {
	resp, err := http.Get(url + "/ping")
	if err != nil {
		return err
	}
	resp.Body.Close()
	return nil
}

// TestUpDownIntegration runs `mailtick-dev stack up` and `mailtick-dev stack down`
// as operators do.
func TestUpDownIntegration(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test")
	}
	bin, err := stack.Binary("mailtick-dev")
	require.NoError(t, err)
	root, err := stack.Root()
	require.NoError(t, err)
	dir := t.TempDir()
	up := exec.Command(bin, "stack", "up", "--dir", dir, "--dcs", "1")
	up.Dir = root
	up.Stdout, up.Stderr = os.Stderr, os.Stderr
	require.NoError(t, up.Start())
	exited := make(chan error, 1)
	go func() { exited <- up.Wait() }()
	t.Cleanup(func() { up.Process.Kill() })

	var state State
	require.Eventually(t, func() bool {
		b, err := os.ReadFile(filepath.Join(dir, "stack.json"))
		return err == nil && json.Unmarshal(b, &state) == nil
	}, 90*time.Second, 200*time.Millisecond, "stack up must write stack.json")
	require.Len(t, state.DCs, 1)
	require.NoError(t, ping(state.Central))
	require.NoError(t, ping(state.DCs[0].InfluxDB))

	down := exec.Command(bin, "stack", "down", "--dir", dir)
	out, err := down.CombinedOutput()
	require.NoError(t, err, "%s", out)
	select {
	case err := <-exited:
		require.NoError(t, err, "stack up must end cleanly")
	case <-time.After(time.Minute):
		t.Fatal("stack up did not end after stack down")
	}
	require.Error(t, ping(state.Central), "the central InfluxDB must be stopped")
	require.Error(t, ping(state.DCs[0].InfluxDB), "the DC InfluxDB must be stopped")
	_, err = os.Stat(filepath.Join(dir, "stack.pid"))
	require.True(t, os.IsNotExist(err))
}
