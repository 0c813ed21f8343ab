package agentconf

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
)

func write(t *testing.T, dir, name, text string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	require.NoError(t, os.WriteFile(p, []byte(text), 0o600))
	return p
}

// The flags as Telegraf takes them: --config X, -config=X, repeated, and
// directories of *.conf files; URLs are left out.
func TestSources(t *testing.T) {
	dir := t.TempDir()
	a := write(t, dir, "a.toml", "")
	b := write(t, dir, "b.toml", "")
	sub := filepath.Join(dir, "d")
	require.NoError(t, os.Mkdir(sub, 0o755))
	c := write(t, sub, "c.conf", "")
	write(t, sub, "ignored.txt", "")
	got, err := Sources([]string{"telegraf", "--config", a, "-config=" + b, "--strict-env-handling",
		"--config-directory", sub, "--config", "https://example.com/telegraf.conf"})
	require.NoError(t, err)
	require.Equal(t, []string{a, b, c}, got)
}

// The largest batch wins, wherever it is set; an unset one is Telegraf's
// default.
func TestLargestBatch(t *testing.T) {
	dir := t.TempDir()
	main := write(t, dir, "telegraf.conf", `
[agent]
  metric_batch_size = 2000
[[outputs.influxdb]]
  urls = ["http://${DC_INFLUXDB_URL}"]
[[outputs.file]]
  metric_batch_size = 7000
`)
	more := write(t, dir, "more.conf", `
[[outputs.discard]]
  metric_batch_size = 3000
`)
	got, err := LargestBatch([]string{main, more})
	require.NoError(t, err)
	require.Equal(t, Batch{Size: 7000, Where: "[[outputs.file]] of " + main}, got)

	got, err = LargestBatch([]string{more})
	require.NoError(t, err)
	require.Equal(t, Batch{Size: 3000, Where: "[[outputs.discard]] of " + more}, got)

	none := write(t, dir, "none.conf", "[[outputs.discard]]\n")
	got, err = LargestBatch([]string{none})
	require.NoError(t, err)
	require.Equal(t, Batch{Size: DefaultBatchSize, Where: "Telegraf's default"}, got)
}

// What cannot be read is said, and the rest still counts.
func TestLargestBatchErrors(t *testing.T) {
	dir := t.TempDir()
	bad := write(t, dir, "bad.conf", "[agent]\n  metric_batch_size = \"many\"\n[[outputs.file]]\n  metric_batch_size = 4000\n")
	got, err := LargestBatch([]string{bad, filepath.Join(dir, "missing.conf")})
	require.ErrorContains(t, err, `[agent] of `+bad+`: metric_batch_size "many" is not an integer`)
	require.ErrorContains(t, err, "missing.conf")
	require.Equal(t, 4000, got.Size)
}
