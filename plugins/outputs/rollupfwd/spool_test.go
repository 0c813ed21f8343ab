package rollupfwd

import (
	"bytes"
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

	"github.com/mailtick/mailtick/plugins/common/durable"
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
	s, _, err := openSpool(dir, 1<<30, 1<<20, true, testutil.Logger{})
	require.NoError(t, err)
	for i := 0; i < n; i++ {
		_, err := s.append(testRecord(i), int64(i), int64(i), false)
		require.NoError(t, err)
	}
	require.NoError(t, s.close())
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

// With fsync = "interval", records reach the senders only once they are
// fsynced, so a power cut (the spool restarted from a copy holding only
// what was fsynced) never leaves a cursor past the end of the data: new
// records written after the restart are all sent.
func TestSpoolPowerCut(t *testing.T) {
	dir := t.TempDir()
	s, _, err := openSpool(dir, 1<<30, 1<<20, false, testutil.Logger{})
	require.NoError(t, err)
	for i := 0; i < 5; i++ {
		_, err := s.append(testRecord(i), int64(i), int64(i), false)
		require.NoError(t, err)
	}
	_, err = s.sync()
	require.NoError(t, err)
	durable, err := os.ReadFile(segPath(dir, 1))
	require.NoError(t, err)
	for i := 5; i < 8; i++ { // written, not yet fsynced
		_, err := s.append(testRecord(i), int64(i), int64(i), false)
		require.NoError(t, err)
	}
	r := s.reader()
	pos := position{}
	for i := 0; i < 5; i++ {
		rec, err := r.read(pos)
		require.NoError(t, err)
		pos = rec.next
	}
	_, err = r.read(pos)
	require.ErrorIs(t, err, errCaughtUp, "a record not on disk is not handed to a sender")
	require.NoError(t, s.commit("c", pos))
	r.close()

	// The power cut: the disk holds what was fsynced, and the cursor.
	cut := t.TempDir()
	require.NoError(t, os.WriteFile(segPath(cut, 1), durable, 0o640))
	cursor, err := os.ReadFile(s.cursorPath("c"))
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(cut, "cursor-c.json"), cursor, 0o640))
	require.NoError(t, s.close())

	log := &testutil.CaptureLogger{}
	s2, _, err := openSpool(cut, 1<<30, 1<<20, true, log)
	require.NoError(t, err)
	defer s2.close()
	pos, err = s2.cursor("c")
	require.NoError(t, err)
	for i := 100; i < 103; i++ {
		_, err := s2.append(testRecord(i), int64(i), int64(i), false)
		require.NoError(t, err)
	}
	r2 := s2.reader()
	defer r2.close()
	var got []string
	for {
		rec, err := r2.read(pos)
		if err != nil {
			require.ErrorIs(t, err, errCaughtUp)
			break
		}
		require.Nil(t, rec.gap, "nothing is skipped")
		got = append(got, string(rec.payload))
		pos = rec.next
	}
	require.Equal(t, []string{"m count=100i 100\n", "m count=101i 101\n", "m count=102i 102\n"}, got)
	require.Empty(t, log.Errors())
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
	s, _, err := openSpool(dir, 1<<30, 1<<20, true, testutil.Logger{})
	require.NoError(t, err)
	var offsets []int64
	for i := 0; i < 10; i++ {
		offsets = append(offsets, s.segs[0].size)
		line := rollups(i, 1)[0]
		_, err := s.append([]byte(fmt.Sprintf("mail_counts count=%di %d\n", i, line.Time().UnixNano())), line.Time().UnixNano(), line.Time().UnixNano(), false)
		require.NoError(t, err)
	}
	require.NoError(t, s.close())
	f, err := os.OpenFile(segPath(dir, 1), os.O_RDWR, 0)
	require.NoError(t, err)
	_, err = f.WriteAt([]byte("XXXX"), offsets[4]+headerSize+3) // inside record 4's payload
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
	mnt := t.TempDir()
	out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", mnt).CombinedOutput()
	require.NoError(t, err, "this test makes a small file system and needs root (CI runs as root): %s", out)
	t.Cleanup(func() { _ = exec.Command("umount", mnt).Run() })
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
	out, err = exec.Command("mount", "-o", "remount,size=4m", mnt).CombinedOutput()
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
				r.spool.mu.Lock()
				r.spool.maxBytes = 1 << 20
				r.spool.mu.Unlock()
			},
		},
		{
			name: "fsync fails",
			fail: func(_ *testing.T, r *RollupFwd) {
				r.spool.mu.Lock()
				r.spool.active = failingFile{r.spool.active, &fsyncBroken}
				r.spool.mu.Unlock()
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
	segmentFile
	failSync *atomic.Bool
}

func (f failingFile) Sync() error {
	if f.failSync.Load() {
		return syscall.EIO
	}
	return f.segmentFile.Sync()
}

// readAll returns the payloads of every durable record from the start.
func readAll(t *testing.T, s *spool) []string {
	t.Helper()
	r := s.reader()
	defer r.close()
	var got []string
	for pos := (position{}); ; {
		rec, err := r.read(pos)
		if errors.Is(err, errCaughtUp) {
			return got
		}
		require.NoError(t, err)
		require.Nil(t, rec.gap)
		got = append(got, string(rec.payload))
		pos = rec.next
	}
}

// An fsync that fails leaves memory and disk agreeing: what it covered is
// cut off, reported (with fsync = "batch": Write fails and Telegraf keeps
// the batch; with "interval": logged as lost with its time range), and the
// spool goes on.
func TestSpoolFsyncFails(t *testing.T) {
	for _, each := range []bool{true, false} {
		t.Run(map[bool]string{true: "batch", false: "interval"}[each], func(t *testing.T) {
			dir := t.TempDir()
			var fail atomic.Bool
			s, _, err := openSpool(dir, 1<<30, 1<<20, each, testutil.Logger{})
			require.NoError(t, err)
			defer s.close()
			s.active = failingFile{s.active, &fail}
			_, err = s.append(testRecord(0), 0, 0, false)
			require.NoError(t, err)
			_, err = s.sync()
			require.NoError(t, err)

			fail.Store(true)
			_, err = s.append(testRecord(1), 1, 1, false)
			if each {
				require.ErrorContains(t, err, "fsync", "Write fails: Telegraf keeps the batch")
			} else {
				require.NoError(t, err)
				_, err = s.append(testRecord(2), 2, 2, false)
				require.NoError(t, err)
				lost, err := s.sync()
				require.ErrorContains(t, err, "fsync")
				require.Equal(t, int64(2), lost.records)
				require.Equal(t, int64(1), lost.minT)
				require.Equal(t, int64(2), lost.maxT)
			}
			fail.Store(false)
			_, err = s.append(testRecord(3), 3, 3, false)
			require.NoError(t, err)
			_, err = s.sync()
			require.NoError(t, err)
			require.Equal(t, []string{string(testRecord(0)), string(testRecord(3))}, readAll(t, s))
			fi, err := os.Stat(segPath(dir, 1))
			require.NoError(t, err)
			size, _ := s.stats()
			require.Equal(t, size, fi.Size(), "memory and disk agree")
		})
	}
}

// A roll whose new segment cannot be created fails that Write only: the
// spool stays writable, and nothing written before is lost.
func TestSpoolRollFails(t *testing.T) {
	dir := t.TempDir()
	s, _, err := openSpool(dir, 1<<30, 64, true, testutil.Logger{})
	require.NoError(t, err)
	defer s.close()
	var fail atomic.Bool
	s.openAppend = func(path string) (segmentFile, error) {
		if fail.Load() {
			return nil, &os.PathError{Op: "open", Path: path, Err: syscall.EMFILE}
		}
		return appendFile(path)
	}
	_, err = s.append(testRecord(0), 0, 0, false)
	require.NoError(t, err)
	fail.Store(true)
	_, err = s.append(testRecord(1), 1, 1, false) // the segment is full: rolls, and fails
	require.ErrorContains(t, err, "too many open files")
	fail.Store(false)
	_, err = s.append(testRecord(1), 1, 1, false)
	require.NoError(t, err, "the spool is still writable")
	require.Equal(t, []string{string(testRecord(0)), string(testRecord(1))}, readAll(t, s))
}

// Creating a segment, creating a cursor (a rename) and deleting a segment
// each end with an fsync of the folder, so the change survives a power cut.
func TestSpoolSyncsFolder(t *testing.T) {
	dir := t.TempDir()
	s, _, err := openSpool(dir, 1<<30, 64, true, testutil.Logger{})
	require.NoError(t, err)
	defer s.close()
	var synced []string
	s.syncDir = func(d string) error {
		entries, _ := os.ReadDir(d)
		var names []string
		for _, e := range entries {
			names = append(names, e.Name())
		}
		synced = append(synced, strings.Join(names, " "))
		return durable.SyncDir(d)
	}
	_, err = s.append([]byte("m count=0i 0\n"), 0, 0, false)
	require.NoError(t, err)
	_, err = s.append([]byte("m count=1i 1\n"), 1, 1, false) // rolls: creates segment 2
	require.NoError(t, err)
	require.Equal(t, []string{".lock seg-00000000000000000001.log seg-00000000000000000002.log"}, synced, "after the create")
	_, err = s.cursor("c") // creates the cursor file
	require.NoError(t, err)
	require.NoError(t, s.commit("c", position{Seg: 2})) // writes it in place, deletes segment 1
	require.Equal(t, []string{
		".lock seg-00000000000000000001.log seg-00000000000000000002.log",
		".lock cursor-c.json seg-00000000000000000001.log seg-00000000000000000002.log",
		".lock cursor-c.json seg-00000000000000000002.log",
	}, synced, "after the cursor's creation, and after the delete")
}

// tmpfs mounts a small filesystem of size bytes for the test (root).
func tmpfs(t *testing.T, size int) string {
	t.Helper()
	dir := t.TempDir()
	out, err := exec.Command("mount", "-t", "tmpfs", "-o", fmt.Sprintf("size=%d", size), "tmpfs", dir).CombinedOutput()
	require.NoError(t, err, "mounting a %d-byte tmpfs for the full-disk test needs root: %s", size, out)
	t.Cleanup(func() { _ = exec.Command("umount", dir).Run() })
	return dir
}

// TestSpoolOnAFullFilesystem: the spool's filesystem fills up before
// max_spool_bytes while central is down. With spool_full = "block" the
// append fails as a full spool does (Telegraf keeps the metrics); once
// central took everything the cursor is saved (in place: a full
// filesystem cannot stop it), the sent segments go, and appends succeed
// again. With "drop_oldest" the oldest segment goes to make room.
func TestSpoolOnAFullFilesystem(t *testing.T) {
	for _, dropOldest := range []bool{false, true} {
		t.Run(fmt.Sprintf("drop_oldest=%v", dropOldest), func(t *testing.T) {
			dir := tmpfs(t, 256<<10)
			s, _, err := openSpool(dir, 1<<30, 16<<10, true, testutil.Logger{})
			require.NoError(t, err)
			defer s.close()
			_, err = s.cursor("central")
			require.NoError(t, err)
			record := bytes.Repeat([]byte("m count=1i 1\n"), 300) // 3.9 KB
			var lost dropped
			n := 0
			for ; n < 1000; n++ {
				l, err := s.append(record, int64(n), int64(n), dropOldest)
				lost.add(l.records, l.bytes, l.minT, l.maxT)
				if err != nil {
					require.False(t, dropOldest, "drop_oldest makes room: %v", err)
					require.ErrorIs(t, err, errSpoolFull)
					require.ErrorContains(t, err, "no room left")
					break
				}
				if lost.records > 5 {
					break
				}
			}
			require.Less(t, n, 1000, "the filesystem must fill")
			if dropOldest {
				require.Positive(t, lost.records, "the oldest records were dropped, and reported")
				return
			}
			// Central is back and takes everything: the cursor moves to the end.
			last := s.segs[len(s.segs)-1]
			require.NoError(t, s.commit("central", position{Seg: last.seq, Off: last.size}), "saving the cursor needs no room")
			size, segs := s.stats()
			require.Equal(t, 1, segs, "the sent segments are deleted")
			require.LessOrEqual(t, size, int64(16<<10))
			for range 10 { // more than the active segment's room: it is sent, so it goes
				_, err = s.append(record, 0, 0, false)
				require.NoError(t, err, "room again")
				last := s.segs[len(s.segs)-1]
				require.NoError(t, s.commit("central", position{Seg: last.seq, Off: last.size}))
			}
		})
	}
}

// A cursor torn by a crash mid-write (one slot garbage) leaves the other
// slot: the position before the last commit.
func TestCursorTornSlot(t *testing.T) {
	dir := t.TempDir()
	s, _, err := openSpool(dir, 1<<30, 64, true, testutil.Logger{})
	require.NoError(t, err)
	_, err = s.cursor("c")
	require.NoError(t, err)
	require.NoError(t, s.commit("c", position{Seg: 1, Off: 10}))
	require.NoError(t, s.commit("c", position{Seg: 1, Off: 20})) // gen 2, slot 0
	path := s.cursorPath("c")
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	copy(b[10:40], bytes.Repeat([]byte{0}, 30)) // slot 0 torn
	require.NoError(t, os.WriteFile(path, b, 0o640))
	p, gen, ok := decodeCursor(b)
	require.True(t, ok)
	require.Equal(t, position{Seg: 1, Off: 10}, p)
	require.EqualValues(t, 1, gen)
	s.close()
}

// A second process on the same spool (telegraf --once beside the running
// agent) is refused with a clear error instead of cutting the live
// segment's tail and deleting by its own cursors. A segment that cannot be
// read at start does not stop the spool from opening.
func TestSpoolLockedAndUnreadable(t *testing.T) {
	dir := t.TempDir()
	s, _, err := openSpool(dir, 1<<30, 1<<20, true, testutil.Logger{})
	require.NoError(t, err)
	_, _, err = openSpool(dir, 1<<30, 1<<20, true, testutil.Logger{})
	require.ErrorIs(t, err, durable.ErrLocked)
	require.ErrorContains(t, err, "in use by another process")
	_, err = s.append(testRecord(0), 0, 0, false)
	require.NoError(t, err)
	require.NoError(t, s.close())

	require.NoError(t, os.Chmod(segPath(dir, 1), 0))
	if f, err := os.Open(segPath(dir, 1)); err == nil {
		f.Close()
		require.NoError(t, os.Chmod(segPath(dir, 1), 0o640))
		// root reads anything: make it a folder, which cannot be read as a file
		require.NoError(t, os.Rename(segPath(dir, 1), segPath(dir, 1)+".moved"))
		require.NoError(t, os.Mkdir(segPath(dir, 1), 0o750))
	}
	s, _, err = openSpool(dir, 1<<30, 1<<20, true, testutil.Logger{})
	require.NoError(t, err, "an unreadable segment does not stop the spool")
	defer s.close()
	_, err = s.append(testRecord(1), 1, 1, false)
	require.NoError(t, err, "new records go to a new segment")
	require.Equal(t, uint64(2), s.segs[len(s.segs)-1].seq)
}

// With fsync = "interval", a roll (or a close) whose fsync fails loses
// records Telegraf was told were written: they are reported, not dropped
// in silence.
func TestSpoolRollReportsLost(t *testing.T) {
	dir := t.TempDir()
	var fail atomic.Bool
	s, _, err := openSpool(dir, 1<<30, 64, false, testutil.Logger{})
	require.NoError(t, err)
	defer s.close()
	var reported dropped
	s.onLost = func(l dropped, err error) {
		require.ErrorContains(t, err, "fsync")
		reported.add(l.records, l.bytes, l.minT, l.maxT)
	}
	s.active = failingFile{s.active, &fail}
	_, err = s.append(testRecord(7), 7, 7, false) // acknowledged, not yet synced
	require.NoError(t, err)
	fail.Store(true)
	_, err = s.append(testRecord(8), 8, 8, false) // rolls: the fsync fails
	require.ErrorContains(t, err, "fsync")
	require.Equal(t, int64(1), reported.records)
	require.Equal(t, int64(7), reported.minT)
}

// The spool's filesystem fills within one segment while central is down.
// Once central took all of it, the next append finds no room: the full,
// sent segment is closed and deleted (its cursor at its end has passed
// it), and the append goes to a new one. It waited forever for the cursor
// to move into the next segment, which no record could reach.
func TestSpoolFullWithinOneSegment(t *testing.T) {
	dir := tmpfs(t, 128<<10)
	s, _, err := openSpool(dir, 1<<30, 1<<30, true, testutil.Logger{})
	require.NoError(t, err)
	defer s.close()
	_, err = s.cursor("central")
	require.NoError(t, err)
	record := bytes.Repeat([]byte("m count=1i 1\n"), 300)
	for {
		if _, err = s.append(record, 1, 1, false); err != nil {
			break
		}
	}
	require.ErrorIs(t, err, errSpoolFull)
	require.Len(t, s.segs, 1, "one segment fills the filesystem")
	last := s.segs[0]
	require.NoError(t, s.commit("central", position{Seg: last.seq, Off: last.size}), "central took everything")
	_, err = s.append(record, 2, 2, false)
	require.NoError(t, err, "the sent segment made room")
	require.Equal(t, last.seq+1, s.segs[len(s.segs)-1].seq)
	require.Len(t, s.segs, 1)
	r := s.reader()
	defer r.close()
	rec, err := r.read(position{Seg: last.seq, Off: last.size})
	require.NoError(t, err, "a reader at the deleted segment's end goes on with the next")
	require.Nil(t, rec.gap)
	require.Equal(t, string(record), string(rec.payload))
}
