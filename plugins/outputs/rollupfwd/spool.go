package rollupfwd

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
)

// The spool is a folder of segment files, seg-<seq>.log, each a sequence
// of records. A record is one batch Telegraf handed to Write, as line
// protocol, behind a header:
//
//	length uint32 | crc32c uint32 | min time int64 | max time int64 | payload
//
// The CRC covers the times and the payload. On open, the last segment is
// checked record by record and cut after the last intact one: a power cut
// mid-write loses only the record being written, never the spool.
const (
	headerSize = 24
	maxRecord  = 256 << 20
)

var crcTable = crc32.MakeTable(crc32.Castagnoli)

var errSpoolFull = errors.New("spool is full")

// position is where a destination stands in the spool.
type position struct {
	Seg uint64 `json:"segment"`
	Off int64  `json:"offset"`
}

type segment struct {
	seq        uint64
	size       int64
	minT, maxT int64 // event time range, ns; 0 when empty
	records    int64
}

type spool struct {
	dir      string
	maxBytes int64
	segBytes int64
	syncEach bool // fsync after every record, else syncLoop does it

	mu     sync.Mutex
	segs   []*segment // oldest first; the last one is written to
	active *os.File
	size   int64
	dirty  bool
	notify chan struct{} // closed and replaced on every append
}

func segPath(dir string, seq uint64) string {
	return filepath.Join(dir, fmt.Sprintf("seg-%020d.log", seq))
}

// openSpool opens (or creates) the spool in dir and recovers it. It
// returns the number of bytes cut from a broken tail.
func openSpool(dir string, maxBytes, segBytes int64, syncEach bool) (*spool, int64, error) {
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, 0, err
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, 0, err
	}
	s := &spool{dir: dir, maxBytes: maxBytes, segBytes: segBytes, syncEach: syncEach, notify: make(chan struct{})}
	for _, e := range entries {
		name := e.Name()
		if !strings.HasPrefix(name, "seg-") || !strings.HasSuffix(name, ".log") {
			continue
		}
		seq, err := strconv.ParseUint(strings.TrimSuffix(strings.TrimPrefix(name, "seg-"), ".log"), 10, 64)
		if err != nil {
			continue
		}
		s.segs = append(s.segs, &segment{seq: seq})
	}
	sort.Slice(s.segs, func(i, j int) bool { return s.segs[i].seq < s.segs[j].seq })

	var cut int64
	for i, seg := range s.segs {
		valid, err := scanSegment(segPath(dir, seg.seq), seg)
		if err != nil {
			return nil, 0, err
		}
		fi, err := os.Stat(segPath(dir, seg.seq))
		if err != nil {
			return nil, 0, err
		}
		if valid < fi.Size() {
			cut += fi.Size() - valid
			if i == len(s.segs)-1 { // the tail a crash left: cut it off
				if err := os.Truncate(segPath(dir, seg.seq), valid); err != nil {
					return nil, 0, err
				}
			}
		}
		seg.size = valid
		s.size += valid
	}
	if len(s.segs) == 0 {
		s.segs = append(s.segs, &segment{seq: 1})
	}
	if err := s.openActive(); err != nil {
		return nil, 0, err
	}
	return s, cut, nil
}

// scanSegment reads the records of a segment, fills in its counters and
// returns the size of its intact prefix.
func scanSegment(path string, seg *segment) (int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	var off int64
	r := &recordReader{f: f}
	for {
		minT, maxT, payload, err := r.read(off)
		if err != nil {
			return off, nil // io.EOF, or a broken record: the prefix stands
		}
		seg.note(minT, maxT)
		off += headerSize + int64(len(payload))
	}
}

func (seg *segment) note(minT, maxT int64) {
	if seg.records == 0 || minT < seg.minT {
		seg.minT = minT
	}
	if seg.records == 0 || maxT > seg.maxT {
		seg.maxT = maxT
	}
	seg.records++
}

func (s *spool) openActive() error {
	last := s.segs[len(s.segs)-1]
	f, err := os.OpenFile(segPath(s.dir, last.seq), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o640)
	if err != nil {
		return err
	}
	s.active = f
	return nil
}

// dropped describes segments given up by drop_oldest.
type dropped struct {
	records    int64
	bytes      int64
	minT, maxT int64
}

// append writes one record. When the spool would outgrow maxBytes it
// returns errSpoolFull, or with dropOldest deletes the oldest segments and
// reports what they held.
func (s *spool) append(payload []byte, minT, maxT int64, dropOldest bool) (dropped, error) {
	var lost dropped
	need := int64(headerSize + len(payload))
	if need > maxRecord {
		return lost, fmt.Errorf("batch of %d bytes exceeds the record limit of %d", need, maxRecord)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for s.size+need > s.maxBytes {
		if !dropOldest {
			return lost, errSpoolFull
		}
		if len(s.segs) == 1 {
			if s.segs[0].size == 0 {
				return lost, fmt.Errorf("a batch of %d bytes is larger than max_spool_bytes %d", need, s.maxBytes)
			}
			if err := s.roll(); err != nil {
				return lost, err
			}
		}
		old := s.segs[0]
		if err := os.Remove(segPath(s.dir, old.seq)); err != nil {
			return lost, err
		}
		s.segs = s.segs[1:]
		s.size -= old.size
		if lost.records == 0 || old.minT < lost.minT {
			lost.minT = old.minT
		}
		lost.maxT = max(lost.maxT, old.maxT)
		lost.records += old.records
		lost.bytes += old.size
	}
	last := s.segs[len(s.segs)-1]
	if last.size > 0 && last.size+need > s.segBytes {
		if err := s.roll(); err != nil {
			return lost, err
		}
		last = s.segs[len(s.segs)-1]
	}
	buf := make([]byte, headerSize, need)
	binary.BigEndian.PutUint64(buf[8:], uint64(minT))
	binary.BigEndian.PutUint64(buf[16:], uint64(maxT))
	buf = append(buf, payload...)
	binary.BigEndian.PutUint32(buf[0:], uint32(len(payload)))
	binary.BigEndian.PutUint32(buf[4:], crc32.Checksum(buf[8:], crcTable))
	if _, err := s.active.Write(buf); err != nil {
		// Leave no half record behind (disk full): cut back, report.
		_ = s.active.Truncate(last.size)
		return lost, err
	}
	if s.syncEach {
		if err := s.active.Sync(); err != nil {
			return lost, err
		}
	} else {
		s.dirty = true
	}
	last.size += need
	last.note(minT, maxT)
	s.size += need
	close(s.notify)
	s.notify = make(chan struct{})
	return lost, nil
}

// roll closes the active segment and starts the next one.
func (s *spool) roll() error {
	if err := s.active.Sync(); err != nil {
		return err
	}
	if err := s.active.Close(); err != nil {
		return err
	}
	s.segs = append(s.segs, &segment{seq: s.segs[len(s.segs)-1].seq + 1})
	return s.openActive()
}

// sync flushes appended records to disk (the fsync = "interval" policy).
func (s *spool) sync() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.dirty {
		return nil
	}
	s.dirty = false
	return s.active.Sync()
}

// wait returns a channel closed at the next append.
func (s *spool) wait() <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.notify
}

// next returns where the record after pos starts, skipping to the next
// segment at the end of one, and whether there is a record there.
func (s *spool) next(pos position) (position, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	first := s.segs[0].seq
	if pos.Seg < first { // dropped by drop_oldest, or a stale cursor
		pos = position{Seg: first}
	}
	for _, seg := range s.segs {
		if seg.seq < pos.Seg {
			continue
		}
		if seg.seq == pos.Seg && pos.Off < seg.size {
			return pos, true
		}
		if seg.seq > pos.Seg && seg.size > 0 {
			return position{Seg: seg.seq}, true
		}
	}
	return pos, false
}

// release deletes the segments every cursor has passed, but the active one.
func (s *spool) release(cursors []position) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for len(s.segs) > 1 {
		old := s.segs[0]
		for _, c := range cursors {
			if c.Seg <= old.seq {
				return nil
			}
		}
		if err := os.Remove(segPath(s.dir, old.seq)); err != nil && !os.IsNotExist(err) {
			return err
		}
		s.segs = s.segs[1:]
		s.size -= old.size
	}
	return nil
}

// stats returns the spool's size and segment count.
func (s *spool) stats() (int64, int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.size, len(s.segs)
}

func (s *spool) close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	err := s.active.Sync()
	if cerr := s.active.Close(); err == nil {
		err = cerr
	}
	return err
}

// syncLoop fsyncs every interval until ctx ends.
func (s *spool) syncLoop(ctx context.Context, every time.Duration, onErr func(error)) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if err := s.sync(); err != nil {
				onErr(err)
			}
		}
	}
}

// recordReader reads records of one segment file.
type recordReader struct {
	f   *os.File
	hdr [headerSize]byte
}

var errCorrupt = errors.New("corrupt record")

func (r *recordReader) read(off int64) (minT, maxT int64, payload []byte, err error) {
	if _, err := r.f.ReadAt(r.hdr[:], off); err != nil {
		if errors.Is(err, io.EOF) {
			return 0, 0, nil, io.EOF
		}
		return 0, 0, nil, err
	}
	n := binary.BigEndian.Uint32(r.hdr[0:])
	if n > maxRecord {
		return 0, 0, nil, errCorrupt
	}
	body := make([]byte, 16+int(n))
	copy(body, r.hdr[8:])
	if _, err := r.f.ReadAt(body[16:], off+headerSize); err != nil {
		return 0, 0, nil, errCorrupt // cut short
	}
	if crc32.Checksum(body, crcTable) != binary.BigEndian.Uint32(r.hdr[4:]) {
		return 0, 0, nil, errCorrupt
	}
	return int64(binary.BigEndian.Uint64(body[0:])), int64(binary.BigEndian.Uint64(body[8:])), body[16:], nil
}
