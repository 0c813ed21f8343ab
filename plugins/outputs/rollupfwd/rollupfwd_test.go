package rollupfwd

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/influxdata/telegraf"
	"github.com/influxdata/telegraf/config"
	"github.com/influxdata/telegraf/metric"
	"github.com/influxdata/telegraf/testutil"
	"github.com/stretchr/testify/require"

	"github.com/mailtick/mailtick/internal/pii/piitest"
	"github.com/mailtick/mailtick/internal/testutil/plugintest"
	"github.com/mailtick/mailtick/plugins/common/keyset"
	"github.com/mailtick/mailtick/plugins/outputs/rollupfwd/internal/spool"
)

// newPlugin returns an initialised, connected plugin writing to urls with
// its spool in dir.
func newPlugin(t *testing.T, dir string, urls []string, edit func(*RollupFwd)) *RollupFwd {
	t.Helper()
	r := newRollupFwd()
	r.URLs = urls
	r.Database = "central"
	r.SpoolDir = dir
	r.RetryMin = config.Duration(20 * time.Millisecond)
	r.RetryMax = config.Duration(200 * time.Millisecond)
	r.Timeout = config.Duration(2 * time.Second)
	r.AllowTags = []string{"dc", "direction"}
	r.AllowFields = []string{"count", "p99", "label"}
	r.Log = testutil.Logger{}
	if edit != nil {
		edit(r)
	}
	require.NoError(t, r.Init())
	require.NoError(t, r.Connect())
	t.Cleanup(func() { require.NoError(t, r.Close()) })
	return r
}

var t0 = time.Date(2026, 11, 22, 0, 0, 0, 0, time.UTC)

// rollups returns n metrics from seq on, one second apart.
func rollups(seq, n int) []telegraf.Metric {
	ms := make([]telegraf.Metric, n)
	for i := range ms {
		ms[i] = metric.New("mail_counts", map[string]string{"dc": "dc1", "direction": "outbound"},
			map[string]any{"count": int64(seq + i)}, t0.Add(time.Duration(seq+i)*time.Second))
	}
	return ms
}

// spooled reads every line of a spool folder, in order.
func spooled(t *testing.T, dir string) []string {
	t.Helper()
	// A copy is read: opening a spool recovers it (cuts a torn tail off
	// its last segment), which must not happen to the spool of a live
	// agent caught in the middle of a write, whose next bytes would then
	// land after the cut and be lost. A copy's torn tail is only read
	// short; the caller asks again.
	snapshot := t.TempDir()
	require.NoError(t, os.CopyFS(snapshot, os.DirFS(dir)))
	s, _, err := spool.Open(snapshot, 1<<40, 1<<30, false, testutil.Logger{})
	require.NoError(t, err)
	defer s.Close()
	var lines []string
	for _, payload := range readAll(t, s) {
		lines = append(lines, strings.Split(strings.TrimSuffix(payload, "\n"), "\n")...)
	}
	return lines
}

func TestInit(t *testing.T) {
	tests := []struct {
		name string
		edit func(*RollupFwd)
		want string
	}{
		{"no url", func(r *RollupFwd) { r.URLs = nil }, `"urls" must name`},
		{"bad url", func(r *RollupFwd) { r.URLs = []string{"central:8086"} }, `invalid "urls" value "central:8086"`},
		{"no database", func(r *RollupFwd) { r.Database = "" }, `"database" (InfluxDB 1.x) or`},
		{"v2 half", func(r *RollupFwd) { r.Database = ""; r.Bucket = "b" }, `needs both "organization" and "bucket"`},
		{"both", func(r *RollupFwd) { r.Bucket, r.Organization = "b", "o" }, `not both`},
		{"spool_dir", func(r *RollupFwd) { r.SpoolDir = "" }, `invalid "spool_dir" value ""`},
		{"spool_full", func(r *RollupFwd) { r.SpoolFull = "wait" }, `invalid "spool_full" value "wait"`},
		{"fsync", func(r *RollupFwd) { r.Fsync = "never" }, `invalid "fsync" value "never"`},
		{"segment larger than spool", func(r *RollupFwd) { r.MaxSpoolBytes = 10; r.SegmentBytes = 20 }, `invalid "max_spool_bytes" value 10`},
		{"segment as large as the spool", func(r *RollupFwd) { r.MaxSpoolBytes = 1 << 20; r.SegmentBytes = 1 << 20 }, `segments at most half the spool`},
		{"reject file", func(r *RollupFwd) { r.MaxRejectBytes = 10 }, `invalid "max_reject_bytes" value 10`},
		{"encoding", func(r *RollupFwd) { r.ContentEncoding = "br" }, `invalid "content_encoding" value "br"`},
		{"skip_unchanged", func(r *RollupFwd) { r.SkipUnchanged = config.Duration(-time.Second) }, `invalid "skip_unchanged" value -1s`},
		{"skip_unchanged_points", func(r *RollupFwd) { r.SkipUnchangedPoints = 1 }, `invalid "skip_unchanged_points" value 1`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := newRollupFwd()
			r.URLs, r.Database, r.SpoolDir, r.Log = []string{"http://127.0.0.1:8086"}, "central", t.TempDir(), testutil.Logger{}
			tt.edit(r)
			require.ErrorContains(t, r.Init(), tt.want)
		})
	}
}

func TestSpoolFullBlock(t *testing.T) {
	dir := t.TempDir()
	r := newPlugin(t, dir, []string{"http://127.0.0.1:1"}, func(r *RollupFwd) {
		r.MaxSpoolBytes, r.SegmentBytes = 4096, 1024
	})
	var err error
	for i := 0; i < 100 && err == nil; i++ {
		err = r.Write(rollups(i*10, 10))
	}
	require.ErrorContains(t, err, "is full")
	require.ErrorContains(t, err, "keeping the metrics in Telegraf's buffer")
	size, _ := r.spool.Stats()
	require.LessOrEqual(t, size, int64(4096))
}

func TestSpoolFullDropOldest(t *testing.T) {
	dir := t.TempDir()
	log := &testutil.CaptureLogger{}
	r := newPlugin(t, dir, []string{"http://127.0.0.1:1"}, func(r *RollupFwd) {
		r.MaxSpoolBytes, r.SegmentBytes, r.SpoolFull, r.Log = 4096, 1024, "drop_oldest", log
	})
	for i := 0; i < 100; i++ {
		require.NoError(t, r.Write(rollups(i*10, 10)), "drop_oldest never refuses")
	}
	size, _ := r.spool.Stats()
	require.LessOrEqual(t, size, int64(4096))
	require.NotEmpty(t, log.Errors())
	require.Contains(t, log.Errors()[0], "the oldest records go: dropped 1 batches")
	require.Contains(t, log.Errors()[0], "holding points from 2026-11-22T00:00:00Z")
	lines := spooled(t, dir)
	require.NotEmpty(t, lines)
	require.Contains(t, lines[len(lines)-1], "count=999i", "the newest points are kept")
}

func TestSpoolUnwritable(t *testing.T) {
	file := filepath.Join(t.TempDir(), "not-a-folder")
	require.NoError(t, os.WriteFile(file, nil, 0o600))
	r := newRollupFwd()
	r.URLs, r.Database, r.SpoolDir, r.Log = []string{"http://127.0.0.1:1"}, "central", filepath.Join(file, "spool"), testutil.Logger{}
	r.AllowFields = []string{"count"}
	require.NoError(t, r.Init())
	err := r.Connect()
	require.ErrorContains(t, err, `opening "spool_dir"`)
	require.ErrorContains(t, err, "not-a-folder")
}

// TestSpoolRecovery: a power cut leaves a half-written record at the end of
// the last segment; the intact records are kept, the tail is cut with a
// logged count, and the spool starts.
func TestSpoolRecovery(t *testing.T) {
	for _, tail := range []struct {
		name string
		cut  func(t *testing.T, path string)
		kept int // of the 5 records
	}{
		{"garbage appended", func(t *testing.T, path string) {
			f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
			require.NoError(t, err)
			_, err = f.Write([]byte("\x00\x00\x01\x00garbage"))
			require.NoError(t, err)
			require.NoError(t, f.Close())
		}, 5},
		{"last record cut short", func(t *testing.T, path string) {
			fi, err := os.Stat(path)
			require.NoError(t, err)
			require.NoError(t, os.Truncate(path, fi.Size()-7))
		}, 4},
	} {
		t.Run(tail.name, func(t *testing.T) {
			dir := t.TempDir()
			writeSpool(t, dir, 5)
			tail.cut(t, spool.SegmentPath(dir, 1))

			log := &testutil.CaptureLogger{}
			r := newPlugin(t, dir, []string{"http://127.0.0.1:1"}, func(r *RollupFwd) { r.Log = log })
			// The sender may already have warned that central (":1") is
			// down: count only the recovery's warnings.
			var recovery []string
			for _, w := range log.Warnings() {
				if strings.Contains(w, "skipped a broken tail of") {
					recovery = append(recovery, w)
				}
			}
			require.Len(t, recovery, 1)
			require.Len(t, spooled(t, dir), tail.kept)
			require.NoError(t, r.Write(rollups(100, 1)), "the recovered spool takes new records")
			require.Len(t, spooled(t, dir), tail.kept+1)
		})
	}
}

func TestGuard(t *testing.T) {
	dir := t.TempDir()
	r := newPlugin(t, dir, []string{"http://127.0.0.1:1"}, nil)
	at := t0
	bad := []telegraf.Metric{
		metric.New("m", map[string]string{"dc": "dc1", "sender": "x"}, map[string]any{"count": 1}, at),
		metric.New("m", map[string]string{"dc": "dc1"}, map[string]any{"count": 1, "recipient": "h"}, at),
		metric.New("m", map[string]string{"dc": "bob@example.org"}, map[string]any{"count": 1}, at),
		metric.New("m", map[string]string{"dc": "dc1"}, map[string]any{"label": "from 203.0.113.7"}, at),
		metric.New("m", map[string]string{"dc": "dc1"}, map[string]any{"label": "2001:db8::1"}, at),
	}
	good := metric.New("m", map[string]string{"dc": "dc1"}, map[string]any{"count": 1}, at)
	good.AddField("label", "203.0.113.0/24") // after count: a map has no order
	require.NoError(t, r.Write(append(bad, good)))
	require.Equal(t, []string{`m,dc=dc1 count=1i,label="203.0.113.0/24" 1795305600000000000`}, spooled(t, dir))
	rejected, err := os.ReadFile(filepath.Join(dir, "rejected.jsonl"))
	require.NoError(t, err)
	for _, reason := range []string{"tag_not_allowed", "field_not_allowed", "pii"} {
		require.Contains(t, string(rejected), `"reason":"`+reason+`"`)
	}
	require.Equal(t, len(bad), strings.Count(string(rejected), "\n"))
}

// The guard refuses every text of the public mail-text corpus and every
// address in it, alone, in a tag or a field.
func TestGuardCorpus(t *testing.T) {
	r := newRollupFwd()
	r.allowTags, r.allowFields = keyset.Of([]string{"dc"}), keyset.Of([]string{"label"})
	for _, c := range piitest.Corpus() {
		for _, s := range append([]string{c.Text}, c.Secrets...) {
			if !strings.ContainsAny(s, "@.:") {
				continue // a local part alone is no address
			}
			if reason, _ := r.guard(metric.New("m", nil, map[string]any{"label": s}, t0)); reason == "" {
				t.Errorf("%s: field %q passed the guard", c.Source, s)
			}
			if reason, _ := r.guard(metric.New("m", map[string]string{"dc": s}, map[string]any{"label": "x"}, t0)); reason == "" {
				t.Errorf("%s: tag %q passed the guard", c.Source, s)
			}
		}
	}
}

// The guard's own check, apart from the detector, catches addresses and
// what merely looks like one, and lets through what central rollups carry.
func TestGuardSuspect(t *testing.T) {
	for _, s := range []string{
		"bob@intranet", "bob%40intranet", "bob&#64;intranet", "bob＠intranet", `bob\u0040intranet`, "x@[10.1]",
		"999.1.2.3", "1.2.3.4/24", "203.0.113.45/24", "198.51.100.0/25",
		"fe80:0:0:0:0:0:0:0:1", "2001:db8::zz", "2001:db8:1::/64", "12:30:45",
	} {
		require.True(t, suspect(s), s)
	}
	for _, s := range []string{
		"dc3", "outbound", "c10234", "example.org", "xn--e1afmkfd.xn--p1ai", "OXzfjrb1J-UhrfGm", "2026-11",
		"[email]", "[email:OXzfjrb1J-UhrfGm]", "203.0.113.0/24", "2001:db8:1::/48", "5.1.1", "header.i=@example.com",
	} {
		require.Empty(t, unsafeText(s), s)
	}
}

func TestSampleConfigLoads(t *testing.T) {
	plugintest.SampleConfigLoads(t, sampleConfig)
}
