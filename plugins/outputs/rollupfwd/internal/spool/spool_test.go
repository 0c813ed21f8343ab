package spool

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"

	"github.com/influxdata/telegraf/testutil"
	"github.com/stretchr/testify/require"

	"github.com/mailtick/mailtick/internal/testutil/stacktest"

	"github.com/mailtick/mailtick/plugins/common/durable"
)

// testRecord is the payload of the i-th test record.
func testRecord(i int) []byte { return []byte(fmt.Sprintf("m count=%di %d\n", i, i)) }

// With fsync = "interval", records reach the senders only once they are
// fsynced, so a power cut (the spool restarted from a copy holding only
// what was fsynced) never leaves a cursor past the end of the data: new
// records written after the restart are all sent.
func TestSpoolPowerCut(t *testing.T) {
	dir := t.TempDir()
	s, _, err := Open(dir, 1<<30, 1<<20, false, testutil.Logger{})
	require.NoError(t, err)
	for i := 0; i < 5; i++ {
		_, err := s.Append(testRecord(i), int64(i), int64(i), false)
		require.NoError(t, err)
	}
	_, err = s.Sync()
	require.NoError(t, err)
	durable, err := os.ReadFile(SegmentPath(dir, 1))
	require.NoError(t, err)
	for i := 5; i < 8; i++ { // written, not yet fsynced
		_, err := s.Append(testRecord(i), int64(i), int64(i), false)
		require.NoError(t, err)
	}
	r := s.Reader()
	pos := Position{}
	for i := 0; i < 5; i++ {
		rec, err := r.Read(pos)
		require.NoError(t, err)
		pos = rec.Next
	}
	_, err = r.Read(pos)
	require.ErrorIs(t, err, ErrCaughtUp, "a record not on disk is not handed to a sender")
	require.NoError(t, s.Commit("c", pos))
	r.Close()

	// The power cut: the disk holds what was fsynced, and the cursor.
	cut := t.TempDir()
	require.NoError(t, os.WriteFile(SegmentPath(cut, 1), durable, 0o640))
	cursor, err := os.ReadFile(s.cursorPath("c"))
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(cut, "cursor-c.json"), cursor, 0o640))
	require.NoError(t, s.Close())

	log := &testutil.CaptureLogger{}
	s2, _, err := Open(cut, 1<<30, 1<<20, true, log)
	require.NoError(t, err)
	defer s2.Close()
	pos, err = s2.Cursor("c")
	require.NoError(t, err)
	for i := 100; i < 103; i++ {
		_, err := s2.Append(testRecord(i), int64(i), int64(i), false)
		require.NoError(t, err)
	}
	r2 := s2.Reader()
	defer r2.Close()
	var got []string
	for {
		rec, err := r2.Read(pos)
		if err != nil {
			require.ErrorIs(t, err, ErrCaughtUp)
			break
		}
		require.Nil(t, rec.Gap, "nothing is skipped")
		got = append(got, string(rec.Payload))
		pos = rec.Next
	}
	require.Equal(t, []string{"m count=100i 100\n", "m count=101i 101\n", "m count=102i 102\n"}, got)
	require.Empty(t, log.Errors())
}

// failingFile is a segment file whose fsyncs fail while failSync is set.
type failingFile struct {
	SegmentFile
	failSync *atomic.Bool
}

func (f failingFile) Sync() error {
	if f.failSync.Load() {
		return syscall.EIO
	}
	return f.SegmentFile.Sync()
}

// readAll returns the payloads of every durable record from the start.
func readAll(t *testing.T, s *Spool) []string {
	t.Helper()
	r := s.Reader()
	defer r.Close()
	var got []string
	for pos := (Position{}); ; {
		rec, err := r.Read(pos)
		if errors.Is(err, ErrCaughtUp) {
			return got
		}
		require.NoError(t, err)
		require.Nil(t, rec.Gap)
		got = append(got, string(rec.Payload))
		pos = rec.Next
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
			s, _, err := Open(dir, 1<<30, 1<<20, each, testutil.Logger{})
			require.NoError(t, err)
			defer s.Close()
			s.active = failingFile{s.active, &fail}
			_, err = s.Append(testRecord(0), 0, 0, false)
			require.NoError(t, err)
			_, err = s.Sync()
			require.NoError(t, err)

			fail.Store(true)
			_, err = s.Append(testRecord(1), 1, 1, false)
			if each {
				require.ErrorContains(t, err, "fsync", "Write fails: Telegraf keeps the batch")
			} else {
				require.NoError(t, err)
				_, err = s.Append(testRecord(2), 2, 2, false)
				require.NoError(t, err)
				lost, err := s.Sync()
				require.ErrorContains(t, err, "fsync")
				require.Equal(t, int64(2), lost.Records)
				require.Equal(t, int64(1), lost.MinT)
				require.Equal(t, int64(2), lost.MaxT)
			}
			fail.Store(false)
			_, err = s.Append(testRecord(3), 3, 3, false)
			require.NoError(t, err)
			_, err = s.Sync()
			require.NoError(t, err)
			require.Equal(t, []string{string(testRecord(0)), string(testRecord(3))}, readAll(t, s))
			fi, err := os.Stat(SegmentPath(dir, 1))
			require.NoError(t, err)
			size, _ := s.Stats()
			require.Equal(t, size, fi.Size(), "memory and disk agree")
		})
	}
}

// A roll whose new segment cannot be created fails that Write only: the
// spool stays writable, and nothing written before is lost.
func TestSpoolRollFails(t *testing.T) {
	dir := t.TempDir()
	s, _, err := Open(dir, 1<<30, 64, true, testutil.Logger{})
	require.NoError(t, err)
	defer s.Close()
	var fail atomic.Bool
	s.openAppend = func(path string) (SegmentFile, error) {
		if fail.Load() {
			return nil, &os.PathError{Op: "open", Path: path, Err: syscall.EMFILE}
		}
		return appendFile(path)
	}
	_, err = s.Append(testRecord(0), 0, 0, false)
	require.NoError(t, err)
	fail.Store(true)
	_, err = s.Append(testRecord(1), 1, 1, false) // the segment is full: rolls, and fails
	require.ErrorContains(t, err, "too many open files")
	fail.Store(false)
	_, err = s.Append(testRecord(1), 1, 1, false)
	require.NoError(t, err, "the spool is still writable")
	require.Equal(t, []string{string(testRecord(0)), string(testRecord(1))}, readAll(t, s))
}

// Creating a segment, creating a cursor (a rename) and deleting a segment
// each end with an fsync of the folder, so the change survives a power cut.
func TestSpoolSyncsFolder(t *testing.T) {
	dir := t.TempDir()
	s, _, err := Open(dir, 1<<30, 64, true, testutil.Logger{})
	require.NoError(t, err)
	defer s.Close()
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
	_, err = s.Append([]byte("m count=0i 0\n"), 0, 0, false)
	require.NoError(t, err)
	_, err = s.Append([]byte("m count=1i 1\n"), 1, 1, false) // rolls: creates segment 2
	require.NoError(t, err)
	require.Equal(t, []string{".lock seg-00000000000000000001.log seg-00000000000000000002.log"}, synced, "after the create")
	_, err = s.Cursor("c") // creates the cursor file
	require.NoError(t, err)
	require.NoError(t, s.Commit("c", Position{Seg: 2})) // writes it in place, deletes segment 1
	require.Equal(t, []string{
		".lock seg-00000000000000000001.log seg-00000000000000000002.log",
		".lock cursor-c.json seg-00000000000000000001.log seg-00000000000000000002.log",
		".lock cursor-c.json seg-00000000000000000002.log",
	}, synced, "after the cursor's creation, and after the delete")
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
			dir := stacktest.Tmpfs(t, t.TempDir(), 256<<10)
			s, _, err := Open(dir, 1<<30, 16<<10, true, testutil.Logger{})
			require.NoError(t, err)
			defer s.Close()
			_, err = s.Cursor("central")
			require.NoError(t, err)
			record := bytes.Repeat([]byte("m count=1i 1\n"), 300) // 3.9 KB
			var lost Dropped
			n := 0
			for ; n < 1000; n++ {
				l, err := s.Append(record, int64(n), int64(n), dropOldest)
				lost.Add(l.Records, l.Bytes, l.MinT, l.MaxT)
				if err != nil {
					require.False(t, dropOldest, "drop_oldest makes room: %v", err)
					require.ErrorIs(t, err, ErrFull)
					require.ErrorContains(t, err, "no room left")
					break
				}
				if lost.Records > 5 {
					break
				}
			}
			require.Less(t, n, 1000, "the filesystem must fill")
			if dropOldest {
				require.Positive(t, lost.Records, "the oldest records were dropped, and reported")
				return
			}
			// Central is back and takes everything: the cursor moves to the end.
			last := s.segs[len(s.segs)-1]
			require.NoError(t, s.Commit("central", Position{Seg: last.seq, Off: last.size}), "saving the cursor needs no room")
			size, segs := s.Stats()
			require.Equal(t, 1, segs, "the sent segments are deleted")
			require.LessOrEqual(t, size, int64(16<<10))
			for range 10 { // more than the active segment's room: it is sent, so it goes
				_, err = s.Append(record, 0, 0, false)
				require.NoError(t, err, "room again")
				last := s.segs[len(s.segs)-1]
				require.NoError(t, s.Commit("central", Position{Seg: last.seq, Off: last.size}))
			}
		})
	}
}

// A cursor torn by a crash mid-write (one slot garbage) leaves the other
// slot: the position before the last commit.
func TestCursorTornSlot(t *testing.T) {
	dir := t.TempDir()
	s, _, err := Open(dir, 1<<30, 64, true, testutil.Logger{})
	require.NoError(t, err)
	_, err = s.Cursor("c")
	require.NoError(t, err)
	require.NoError(t, s.Commit("c", Position{Seg: 1, Off: 10}))
	require.NoError(t, s.Commit("c", Position{Seg: 1, Off: 20})) // gen 2, slot 0
	path := s.cursorPath("c")
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	copy(b[10:40], bytes.Repeat([]byte{0}, 30)) // slot 0 torn
	require.NoError(t, os.WriteFile(path, b, 0o640))
	p, gen, ok := decodeCursor(b)
	require.True(t, ok)
	require.Equal(t, Position{Seg: 1, Off: 10}, p)
	require.EqualValues(t, 1, gen)
	s.Close()
}

// A second process on the same spool (telegraf --once beside the running
// agent) is refused with a clear error instead of cutting the live
// segment's tail and deleting by its own cursors. A segment that cannot be
// read at start does not stop the spool from opening.
func TestSpoolLockedAndUnreadable(t *testing.T) {
	dir := t.TempDir()
	s, _, err := Open(dir, 1<<30, 1<<20, true, testutil.Logger{})
	require.NoError(t, err)
	_, _, err = Open(dir, 1<<30, 1<<20, true, testutil.Logger{})
	require.ErrorIs(t, err, durable.ErrLocked)
	require.ErrorContains(t, err, "in use by another process")
	_, err = s.Append(testRecord(0), 0, 0, false)
	require.NoError(t, err)
	require.NoError(t, s.Close())

	require.NoError(t, os.Chmod(SegmentPath(dir, 1), 0))
	if f, err := os.Open(SegmentPath(dir, 1)); err == nil {
		f.Close()
		require.NoError(t, os.Chmod(SegmentPath(dir, 1), 0o640))
		// root reads anything: make it a folder, which cannot be read as a file
		require.NoError(t, os.Rename(SegmentPath(dir, 1), SegmentPath(dir, 1)+".moved"))
		require.NoError(t, os.Mkdir(SegmentPath(dir, 1), 0o750))
	}
	s, _, err = Open(dir, 1<<30, 1<<20, true, testutil.Logger{})
	require.NoError(t, err, "an unreadable segment does not stop the spool")
	defer s.Close()
	_, err = s.Append(testRecord(1), 1, 1, false)
	require.NoError(t, err, "new records go to a new segment")
	require.Equal(t, uint64(2), s.segs[len(s.segs)-1].seq)
}

// With fsync = "interval", a roll (or a close) whose fsync fails loses
// records Telegraf was told were written: they are reported, not dropped
// in silence.
func TestSpoolRollReportsLost(t *testing.T) {
	dir := t.TempDir()
	var fail atomic.Bool
	s, _, err := Open(dir, 1<<30, 64, false, testutil.Logger{})
	require.NoError(t, err)
	defer s.Close()
	var reported Dropped
	s.onLost = func(l Dropped, err error) {
		require.ErrorContains(t, err, "fsync")
		reported.Add(l.Records, l.Bytes, l.MinT, l.MaxT)
	}
	s.active = failingFile{s.active, &fail}
	_, err = s.Append(testRecord(7), 7, 7, false) // acknowledged, not yet synced
	require.NoError(t, err)
	fail.Store(true)
	_, err = s.Append(testRecord(8), 8, 8, false) // rolls: the fsync fails
	require.ErrorContains(t, err, "fsync")
	require.Equal(t, int64(1), reported.Records)
	require.Equal(t, int64(7), reported.MinT)
}

// The spool's filesystem fills within one segment while central is down.
// Once central took all of it, the next append finds no room: the full,
// sent segment is closed and deleted (its cursor at its end has passed
// it), and the append goes to a new one. It waited forever for the cursor
// to move into the next segment, which no record could reach.
func TestSpoolFullWithinOneSegment(t *testing.T) {
	dir := stacktest.Tmpfs(t, t.TempDir(), 128<<10)
	s, _, err := Open(dir, 1<<30, 1<<30, true, testutil.Logger{})
	require.NoError(t, err)
	defer s.Close()
	_, err = s.Cursor("central")
	require.NoError(t, err)
	record := bytes.Repeat([]byte("m count=1i 1\n"), 300)
	for {
		if _, err = s.Append(record, 1, 1, false); err != nil {
			break
		}
	}
	require.ErrorIs(t, err, ErrFull)
	require.Len(t, s.segs, 1, "one segment fills the filesystem")
	last := s.segs[0]
	require.NoError(t, s.Commit("central", Position{Seg: last.seq, Off: last.size}), "central took everything")
	_, err = s.Append(record, 2, 2, false)
	require.NoError(t, err, "the sent segment made room")
	require.Equal(t, last.seq+1, s.segs[len(s.segs)-1].seq)
	require.Len(t, s.segs, 1)
	r := s.Reader()
	defer r.Close()
	rec, err := r.Read(Position{Seg: last.seq, Off: last.size})
	require.NoError(t, err, "a reader at the deleted segment's end goes on with the next")
	require.Nil(t, rec.Gap)
	require.Equal(t, string(record), string(rec.Payload))
}
