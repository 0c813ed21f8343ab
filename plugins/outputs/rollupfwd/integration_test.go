package rollupfwd

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/influxdata/telegraf"
	"github.com/influxdata/telegraf/config"
	"github.com/influxdata/telegraf/metric"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mailtick/mailtick/internal/testutil/stack"
	"github.com/mailtick/mailtick/internal/testutil/stacktest"
)

func centralCount(t *testing.T, db *stack.InfluxDB) int64 {
	t.Helper()
	n, err := db.Count("central", "SELECT count(count) FROM mail_counts")
	if err != nil && !errors.Is(err, stack.ErrNoDatabase) && !errors.Is(err, syscall.ECONNREFUSED) {
		require.NoError(t, err)
	}
	return n
}

// requireAll waits for points 0..n-1 and checks each arrived once, intact.
func requireAll(t *testing.T, db *stack.InfluxDB, n int, within time.Duration) {
	t.Helper()
	require.Eventually(t, func() bool { return centralCount(t, db) >= int64(n) },
		within, 50*time.Millisecond, "want %d points central", n)
	require.Equal(t, int64(n), centralCount(t, db))
	series, err := db.Query("central", "SELECT count FROM mail_counts")
	require.NoError(t, err)
	for i, row := range series[0].Values {
		require.Equal(t, json.Number(fmt.Sprint(t0.Add(time.Duration(i)*time.Second).UnixNano())), row[0])
		require.Equal(t, json.Number(fmt.Sprint(i)), row[1])
	}
}

func TestNormalFlowIntegration(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test")
	}
	db := stacktest.InfluxDB(t)
	r := newPlugin(t, t.TempDir(), []string{db.URL}, func(r *RollupFwd) { r.SegmentBytes = 8 << 10 })
	const n, batch = 5000, 500
	for i := 0; i < n; i += batch {
		require.NoError(t, r.Write(rollups(i, batch)))
	}
	_, segs := r.spool.Stats()
	require.Greater(t, segs, 2, "the batches span several segments")
	requireAll(t, db, n, 30*time.Second)
	require.Eventually(t, func() bool { _, segs := r.spool.Stats(); return segs == 1 },
		5*time.Second, 20*time.Millisecond, "sent segments are deleted, but the one written to")
}

func TestOutageBackfillIntegration(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test")
	}
	db := stacktest.InfluxDB(t)
	r := newPlugin(t, t.TempDir(), []string{db.URL}, nil)
	require.NoError(t, r.Write(rollups(0, 100)))
	requireAll(t, db, 100, 30*time.Second)

	require.NoError(t, db.Stop(10*time.Second))
	const n, batch = 50000, 1000
	for i := 100; i < n; i += batch {
		require.NoError(t, r.Write(rollups(i, min(batch, n-i))), "the agent keeps accepting during the outage")
	}
	size, _ := r.spool.Stats()
	require.Positive(t, size)

	require.NoError(t, db.Restart())
	start := time.Now()
	requireAll(t, db, n, 2*time.Minute)
	t.Logf("backfilled %d points in %s: %.0f points/s", n-100, time.Since(start).Round(time.Millisecond), float64(n-100)/time.Since(start).Seconds())
}

// TestSlowDestinationIntegration: one central server down does not hold
// back the other; when it comes back it gets everything too.
func TestSlowDestinationIntegration(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test")
	}
	up, down := stacktest.InfluxDB(t), stacktest.InfluxDB(t)
	require.NoError(t, down.Stop(10*time.Second))
	r := newPlugin(t, t.TempDir(), []string{down.URL, up.URL}, nil)
	for i := 0; i < 3000; i += 500 {
		require.NoError(t, r.Write(rollups(i, 500)))
	}
	requireAll(t, up, 3000, 30*time.Second)
	require.NoError(t, down.Restart())
	requireAll(t, down, 3000, 60*time.Second)
}

// TestBadPointsIsolatedIntegration: a batch with a field-type conflict is
// split until the bad point stands alone; it goes to the reject file with
// the server's reason, every other point is written.
func TestBadPointsIsolatedIntegration(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test")
	}
	db := stacktest.InfluxDB(t)
	dir := t.TempDir()
	r := newPlugin(t, dir, []string{db.URL}, nil)
	require.NoError(t, r.Write(rollups(0, 1))) // count is an integer from now on
	requireAll(t, db, 1, 30*time.Second)

	batch := rollups(1, 99)
	batch[41] = metric.New("mail_counts", map[string]string{"dc": "dc1"}, map[string]any{"count": 1.5}, t0.Add(42*time.Second))
	require.NoError(t, r.Write(batch))
	require.Eventually(t, func() bool { return centralCount(t, db) == 99 }, 30*time.Second, 50*time.Millisecond)
	require.Eventually(t, func() bool {
		b, _ := os.ReadFile(filepath.Join(dir, "rejected.jsonl"))
		return strings.Contains(string(b), `"reason":"refused"`) && strings.Contains(string(b), "field type conflict") &&
			strings.Contains(string(b), "count=1.5")
	}, 10*time.Second, 50*time.Millisecond, "the bad point, alone, with the server's reason")
}

// TestGuardIntegration: whatever a misconfigured processor lets through,
// no clear e-mail or IP address reaches the server.
func TestGuardIntegration(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test")
	}
	db := stacktest.InfluxDB(t)
	r := newPlugin(t, t.TempDir(), []string{db.URL}, nil)
	leaky := []telegraf.Metric{
		metric.New("mail_counts", map[string]string{"dc": "alice@example.com"}, map[string]any{"count": int64(1)}, t0),
		metric.New("mail_counts", map[string]string{"dc": "dc1"}, map[string]any{"count": int64(1), "label": "via 198.51.100.4"}, t0.Add(time.Second)),
		metric.New("mail_counts", map[string]string{"dc": "dc1", "sender": "bob"}, map[string]any{"count": int64(1)}, t0.Add(2*time.Second)),
	}
	require.NoError(t, r.Write(append(leaky, rollups(3, 1)...)))
	require.Eventually(t, func() bool { return centralCount(t, db) == 1 }, 30*time.Second, 50*time.Millisecond)
	series, err := db.Query("central", "SELECT * FROM mail_counts")
	require.NoError(t, err)
	out, _ := json.Marshal(series)
	require.NotContains(t, string(out), "alice@example.com")
	require.NotContains(t, string(out), "198.51.100.4")
	require.NotContains(t, string(out), "sender")
}

// TestAgentCrashIntegration runs the real agent (influxdb_listener ->
// rollupfwd), kills it with SIGKILL while its spool holds data the central
// side (down) has not taken, and restarts it: nothing is lost.
func TestAgentCrashIntegration(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test")
	}
	db := stacktest.InfluxDB(t)
	require.NoError(t, db.Stop(10*time.Second))
	port, err := stack.FreePort()
	require.NoError(t, err)
	spoolDir := filepath.Join(t.TempDir(), "spool")
	conf := fmt.Sprintf(`[agent]
  flush_interval = "100ms"
  metric_batch_size = 500
  omit_hostname = true
[[inputs.influxdb_listener]]
  service_address = "127.0.0.1:%d"
[[outputs.rollupfwd]]
  urls = [%q]
  database = "central"
  spool_dir = %q
  retry_min = "50ms"
  retry_max = "200ms"
  allow_tags = ["dc", "direction"]
  allow_fields = ["count"]
`, port, db.URL, spoolDir)
	agent := stacktest.Telegraf(t, conf)

	const n = 4000
	var body strings.Builder
	for _, m := range rollups(0, n) {
		fmt.Fprintf(&body, "mail_counts,dc=dc1,direction=outbound count=%di %d\n", m.Fields()["count"], m.Time().UnixNano())
	}
	require.Eventually(t, func() bool {
		resp, err := http.Post(fmt.Sprintf("http://127.0.0.1:%d/write?precision=ns", port), "text/plain", strings.NewReader(body.String()))
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusNoContent
	}, 10*time.Second, 50*time.Millisecond, "the listener must take the points")
	// Every point in the spool; a failure says how many were (more would
	// be duplicates). The bound is generous: a busy machine's fsyncs are slow.
	require.EventuallyWithT(t, func(c *assert.CollectT) {
		_, err := os.Stat(spoolDir)
		if assert.NoError(c, err, "the spool folder") {
			assert.Equal(c, n, len(spooled(t, spoolDir)), "points in the spool")
		}
	}, 60*time.Second, 50*time.Millisecond)

	require.NoError(t, agent.Kill())
	require.NoError(t, db.Restart())
	require.NoError(t, agent.Restart()) // the test's cleanup stops the live process
	requireAll(t, db, n, 60*time.Second)
}

// TestV2WriteIntegration writes through the InfluxDB 2.x API (/api/v2/write
// with organization, bucket and token), which InfluxDB 1.8 also serves
// (bucket = database/retention-policy).
func TestV2WriteIntegration(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test")
	}
	db := stacktest.InfluxDB(t, "central")
	r := newPlugin(t, t.TempDir(), []string{db.URL}, func(r *RollupFwd) {
		r.Database, r.Organization, r.Bucket = "", "mail", "central/autogen"
		r.Token = config.NewSecret([]byte("unused-by-1.8-without-auth"))
	})
	require.NoError(t, r.Write(rollups(0, 300)))
	requireAll(t, db, 300, 30*time.Second)
}

// TestFullFilesystemOutageIntegration: central down, the spool on a
// filesystem that fills (the shipped spool_full = "block": Write fails,
// Telegraf keeps the metrics); central comes back: the spool drains, frees
// its filesystem (a sender caught up lets go of the deleted segment, which
// kept its room taken), and takes new batches again; every point arrives.
func TestFullFilesystemOutageIntegration(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test")
	}
	db := stacktest.InfluxDB(t)
	r := newPlugin(t, stacktest.Tmpfs(t, t.TempDir(), 256<<10), []string{db.URL}, nil)
	require.NoError(t, r.Write(rollups(0, 100)))
	requireAll(t, db, 100, 30*time.Second)
	require.NoError(t, db.Stop(10*time.Second))

	next, full := 100, false
	for ; next < 100000 && !full; next += 500 {
		if err := r.Write(rollups(next, 500)); err != nil {
			require.ErrorContains(t, err, "no room left")
			full = true
			next -= 500 // Telegraf keeps that batch and writes it again
		}
	}
	require.True(t, full, "the filesystem must fill")
	require.NoError(t, db.Restart())
	require.Eventually(t, func() bool { return r.Write(rollups(next, 500)) == nil }, 2*time.Minute, 100*time.Millisecond,
		"once central took the spool, Write succeeds again")
	next += 500
	requireAll(t, db, next, time.Minute)
}
