package rollupfwd

import (
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/influxdata/telegraf"
	"github.com/influxdata/telegraf/config"
	"github.com/influxdata/telegraf/selfstat"
	"github.com/influxdata/telegraf/testutil"
	"github.com/stretchr/testify/require"

	"github.com/mailtick/mailtick/internal/testutil/stacktest"

	"github.com/mailtick/mailtick/plugins/outputs/rollupfwd/internal/spool"
)

// central is a fake central InfluxDB that keeps every line it is sent.
// The spool's fault tests need to see exactly what arrived; the real
// influxd is in integration_test.go.
type central struct {
	*httptest.Server
	mu    sync.Mutex
	lines []string
}

func newCentral(t *testing.T) *central {
	c := &central{}
	c.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		var body io.Reader = req.Body
		if req.Header.Get("Content-Encoding") == "gzip" {
			zr, err := gzip.NewReader(req.Body)
			if err != nil {
				http.Error(w, err.Error(), http.StatusBadRequest)
				return
			}
			body = zr
		}
		b, _ := io.ReadAll(body)
		c.mu.Lock()
		c.lines = append(c.lines, strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")...)
		c.mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(c.Close)
	return c
}

// counts returns how often each count=N value arrived.
func (c *central) counts() map[int]int {
	c.mu.Lock()
	defer c.mu.Unlock()
	got := make(map[int]int)
	for _, l := range c.lines {
		var n int
		if i := strings.Index(l, "count="); i >= 0 {
			fmt.Sscanf(l[i:], "count=%di", &n)
			got[n]++
		}
	}
	return got
}

// waitFor waits until every value in want arrived.
func (c *central) waitFor(t *testing.T, want []int) {
	t.Helper()
	require.Eventually(t, func() bool {
		got := c.counts()
		for _, n := range want {
			if got[n] == 0 {
				return false
			}
		}
		return true
	}, 30*time.Second, 10*time.Millisecond, "points that never arrived")
}

// testRecord is the payload of the i-th test record.
func testRecord(i int) []byte { return []byte(fmt.Sprintf("m count=%di %d\n", i, i)) }

// writeSpool writes records 0..n-1 into a new spool in dir.
func writeSpool(t *testing.T, dir string, n int) {
	t.Helper()
	s, _, err := spool.Open(dir, 1<<30, 1<<20, true, testutil.Logger{})
	require.NoError(t, err)
	for i := 0; i < n; i++ {
		_, err := s.Append(testRecord(i), int64(i), int64(i), false)
		require.NoError(t, err)
	}
	require.NoError(t, s.Close())
}

func seq(from, to int) []int {
	var s []int
	for i := from; i < to; i++ {
		s = append(s, i)
	}
	return s
}

// requireOnce checks that each value of want arrived exactly once and
// nothing else did.
func requireOnce(t *testing.T, c *central, want []int) {
	t.Helper()
	got := c.counts()
	for _, n := range want {
		require.Equal(t, 1, got[n], "count=%d arrived %d times", n, got[n])
	}
	require.Len(t, got, len(want), "only the points written arrive")
}

// A cursor past the end of its segment (saved by an older version that
// sent unsynced records) is clamped to the segment's real size.
func TestSpoolCursorPastEnd(t *testing.T) {
	c := newCentral(t)
	dir := t.TempDir()
	writeSpool(t, dir, 3)
	name := cursorName(c.URL)
	require.NoError(t, os.WriteFile(filepath.Join(dir, "cursor-"+name+".json"), []byte(`{"segment":1,"offset":999999}`), 0o640))

	log := &testutil.CaptureLogger{}
	p := newPlugin(t, dir, []string{c.URL}, func(r *RollupFwd) { r.Log = log })
	require.NoError(t, p.Write(rollups(10, 3)))
	c.waitFor(t, seq(10, 13))
	requireOnce(t, c, seq(10, 13))
	require.Contains(t, strings.Join(log.Warnings(), "\n"), "points past the end of segment 1")
}

// Bytes flipped in the middle of a segment cost only the damaged record:
// the sender resynchronises on the next intact one, and the loss is
// counted and logged with its time range.
func TestSpoolDamageMidSegment(t *testing.T) {
	c := newCentral(t)
	dir := t.TempDir()
	s, _, err := spool.Open(dir, 1<<30, 1<<20, true, testutil.Logger{})
	require.NoError(t, err)
	var offsets []int64
	for i := 0; i < 10; i++ {
		size, _ := s.Stats() // one segment: its size
		offsets = append(offsets, size)
		line := rollups(i, 1)[0]
		_, err := s.Append([]byte(fmt.Sprintf("mail_counts count=%di %d\n", i, line.Time().UnixNano())), line.Time().UnixNano(), line.Time().UnixNano(), false)
		require.NoError(t, err)
	}
	require.NoError(t, s.Close())
	f, err := os.OpenFile(spool.SegmentPath(dir, 1), os.O_RDWR, 0)
	require.NoError(t, err)
	_, err = f.WriteAt([]byte("XXXX"), offsets[4]+spool.HeaderSize+3) // inside record 4's payload
	require.NoError(t, err)
	require.NoError(t, f.Close())

	log := &testutil.CaptureLogger{}
	newPlugin(t, dir, []string{c.URL}, func(r *RollupFwd) { r.Log = log })
	want := append(seq(0, 4), seq(5, 10)...)
	c.waitFor(t, want)
	requireOnce(t, c, want)
	errs := strings.Join(log.Errors(), "\n")
	require.Contains(t, errs, "spool segment 1:")
	require.Contains(t, errs, fmt.Sprintf("damaged bytes at offset %d", offsets[4]))
	require.Contains(t, errs, "from 2026-11-22T00:00:03Z to 2026-11-22T00:00:05Z", "the time range lost lies between its neighbours")
}

// A segment that cannot be opened for a while (EMFILE, EACCES, EIO) is
// retried, never taken as deleted and skipped: once it opens, everything
// arrives.
func TestSpoolUnreadableSegment(t *testing.T) {
	c := newCentral(t)
	dir := t.TempDir()
	writeSpool(t, dir, 3)
	var broken atomic.Bool
	broken.Store(true)
	log := &testutil.CaptureLogger{}
	newPlugin(t, dir, []string{c.URL}, func(r *RollupFwd) {
		r.Log = log
		r.openSegment = func(name string) (*os.File, error) {
			if broken.Load() {
				return nil, &os.PathError{Op: "open", Path: name, Err: syscall.EMFILE}
			}
			return os.Open(name)
		}
	})
	require.Eventually(t, func() bool { return strings.Count(strings.Join(log.Errors(), "\n"), "too many open files") >= 1 },
		10*time.Second, 10*time.Millisecond)
	require.Empty(t, c.counts(), "nothing sent, nothing skipped")
	broken.Store(false)
	c.waitFor(t, seq(0, 3))
	requireOnce(t, c, seq(0, 3))
}

// With segment_bytes = max_spool_bytes / 2, a spool that filled up while
// central was down frees itself once everything is sent: "block" unblocks.
func TestSpoolFullUnblocks(t *testing.T) {
	c := newCentral(t)
	dir := t.TempDir()
	r := newPlugin(t, dir, []string{c.URL}, func(r *RollupFwd) {
		r.MaxSpoolBytes, r.SegmentBytes = 2048, 1024
	})
	for i := 0; i < 200; i++ {
		require.Eventually(t, func() bool { return r.Write(rollups(i, 1)) == nil }, 10*time.Second, time.Millisecond,
			"write %d stays blocked", i)
	}
	c.waitFor(t, seq(0, 200))
	requireOnce(t, c, seq(0, 200))
}

// A full file system: writes fail (Telegraf keeps the metrics and retries),
// no half record stays behind, and once there is room again every point
// Write accepted arrives exactly once.
func TestSpoolFullFilesystem(t *testing.T) {
	mnt := stacktest.Tmpfs(t, t.TempDir(), 64<<10)
	dir := filepath.Join(mnt, "spool")
	down := "http://127.0.0.1:1"
	r := newPlugin(t, dir, []string{down}, func(r *RollupFwd) {
		r.MaxSpoolBytes, r.SegmentBytes = 1<<20, 16<<10
	})
	var accepted []int
	var failed error
	for i := 0; i < 2000 && failed == nil; i++ {
		if failed = r.Write(rollups(i*10, 10)); failed == nil {
			accepted = append(accepted, seq(i*10, i*10+10)...)
		}
	}
	require.Error(t, failed, "the file system fills up")
	require.NotEmpty(t, accepted)
	require.NoError(t, r.Close())

	// Room again: the spool opens with every accepted record intact and
	// sends them to central.
	out, err := exec.Command("mount", "-o", "remount,size=4m", mnt).CombinedOutput()
	require.NoError(t, err, "remount: %s", out)
	c := newCentral(t)
	log := &testutil.CaptureLogger{}
	newPlugin(t, dir, []string{c.URL}, func(r *RollupFwd) { r.Log = log })
	c.waitFor(t, accepted)
	requireOnce(t, c, accepted)
	require.Empty(t, log.Errors())
}

func TestRejectFileBounded(t *testing.T) {
	dir := t.TempDir()
	r := newPlugin(t, dir, []string{"http://127.0.0.1:1"}, func(r *RollupFwd) {
		r.MaxRejectBytes = config.Size(8 << 10)
	})
	for i := 0; i < 200; i++ {
		m := rollups(i, 1)[0]
		m.AddTag("recipient", fmt.Sprintf("user%d@example.org", i))
		require.NoError(t, r.Write(append(rollups(i, 1), m)))
	}
	size := func(p string) int64 {
		fi, err := os.Stat(p)
		if err != nil {
			return 0
		}
		return fi.Size()
	}
	path := filepath.Join(dir, "rejected.jsonl")
	require.LessOrEqual(t, size(path)+size(path+".1"), int64(8<<10))
	require.Positive(t, r.rejects.dropped.Get(), "what rotation dropped is counted")
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	require.NotContains(t, string(b), "@example.org", "no address is stored")
	require.Contains(t, string(b), `"reason":"tag_not_allowed"`)
	require.Contains(t, string(b), `"tag_keys":["dc","direction","recipient"]`)
}

// A Write that fails (spool full with "block", a failed fsync with fsync =
// "batch") leaves the batch in Telegraf's buffer, and Telegraf writes it
// again, refused points included: each refused point is recorded (reject
// file, counter) once, by the Write that succeeds, however often the batch
// failed before. A batch the guard refuses entirely has nothing to spool:
// it is recorded and Write succeeds, so that Telegraf drops it.
func TestRejectRecordedOnceAcrossRetries(t *testing.T) {
	var fsyncBroken atomic.Bool
	for _, fault := range []struct {
		name string
		edit func(*RollupFwd)
		fail func(t *testing.T, r *RollupFwd) // the next Writes fail
		heal func(r *RollupFwd)
	}{
		{
			name: "spool full",
			edit: func(r *RollupFwd) { r.MaxSpoolBytes, r.SegmentBytes = 4096, 1024 },
			fail: func(t *testing.T, r *RollupFwd) {
				for i := 0; ; i++ {
					require.Less(t, i, 100, "the spool never fills")
					filler := rollups(1000+i*10, 10)
					for _, m := range filler {
						m.SetName("filler")
					}
					if r.Write(filler) != nil {
						return
					}
				}
			},
			heal: func(r *RollupFwd) { // central took it all: room again
				r.spool.SetMaxBytes(1 << 20)
			},
		},
		{
			name: "fsync fails",
			fail: func(_ *testing.T, r *RollupFwd) {
				r.spool.WrapActive(func(f spool.SegmentFile) spool.SegmentFile { return failingFile{f, &fsyncBroken} })
				fsyncBroken.Store(true)
			},
			heal: func(*RollupFwd) { fsyncBroken.Store(false) },
		},
	} {
		t.Run(fault.name, func(t *testing.T) {
			dir := t.TempDir()
			r := newPlugin(t, dir, []string{"http://127.0.0.1:1"}, fault.edit)
			// The counter is process-wide, shared with the other tests.
			counter := selfstat.Register("rollupfwd_rejected", "points", map[string]string{"reason": "tag_not_allowed"})
			before := counter.Get()
			refused := rollups(0, 1)[0]
			refused.AddTag("recipient", "user@example.org")
			batch := append(rollups(1, 3), refused)

			fault.fail(t, r)
			require.Error(t, r.Write(batch), "Telegraf keeps the batch")
			batch = append(batch, rollups(4, 1)...) // a retry may carry more
			require.Error(t, r.Write(batch), "Telegraf keeps the batch")
			fault.heal(r)
			require.NoError(t, r.Write(batch))

			rejected, err := os.ReadFile(filepath.Join(dir, "rejected.jsonl"))
			require.NoError(t, err)
			require.Equal(t, 1, strings.Count(string(rejected), "\n"), "recorded once: %s", rejected)
			require.Contains(t, string(rejected), `"tag_keys":["dc","direction","recipient"]`)
			require.Equal(t, before+1, counter.Get(), "counted once")
			var got []string
			for _, l := range spooled(t, dir) {
				if !strings.HasPrefix(l, "filler,") {
					got = append(got, l)
				}
			}
			require.Len(t, got, 4, "the good points are spooled once")

			// Refused entirely: recorded once, and Write succeeds.
			require.NoError(t, r.Write([]telegraf.Metric{refused}), "Telegraf drops the batch")
			rejected, err = os.ReadFile(filepath.Join(dir, "rejected.jsonl"))
			require.NoError(t, err)
			require.Equal(t, 2, strings.Count(string(rejected), "\n"))
			require.Equal(t, before+2, counter.Get())
		})
	}
}

// failingFile is a segment file whose fsyncs fail while failSync is set.
type failingFile struct {
	spool.SegmentFile
	failSync *atomic.Bool
}

func (f failingFile) Sync() error {
	if f.failSync.Load() {
		return syscall.EIO
	}
	return f.SegmentFile.Sync()
}

// readAll returns the payloads of every durable record from the start.
func readAll(t *testing.T, s *spool.Spool) []string {
	t.Helper()
	r := s.Reader()
	defer r.Close()
	var got []string
	for pos := (spool.Position{}); ; {
		rec, err := r.Read(pos)
		if errors.Is(err, spool.ErrCaughtUp) {
			return got
		}
		require.NoError(t, err)
		require.Nil(t, rec.Gap)
		got = append(got, string(rec.Payload))
		pos = rec.Next
	}
}
