// Package spool is the durable disk spool of outputs.rollupfwd: segment
// files of records (the format below), the writer, one cursor per
// destination, and the reader that hands records to the senders.
package spool

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/influxdata/telegraf"

	"github.com/mailtick/mailtick/plugins/common/durable"
)

// The spool owns its folder: segment files seg-<seq>.log, one cursor file
// per destination, and the reject file. A segment is a sequence of
// records; a record is one batch Telegraf handed to Write, as line
// protocol, behind a header:
//
//	magic uint32 | length uint32 | crc32c uint32 | min time int64 | max time int64 | payload
//
// The CRC covers length, times and payload. The magic lets a reader find
// the next record after a damaged one. Records are handed to senders only
// once they are on disk (fsynced), so no cursor ever points past what a
// power cut keeps. On open, a torn tail of the last segment is cut; damage
// inside a segment is skipped by the reader, which reports what it lost.
const (
	recordMagic = 0x4d544b31 // "MTK1"
	HeaderSize  = 28         // bytes before a record's payload
	maxRecord   = 256 << 20
)

var crcTable = crc32.MakeTable(crc32.Castagnoli)

// ErrFull says the spool (or its filesystem) has no room for a record.
var ErrFull = errors.New("spool is full")

// Position is where a destination stands in the spool.
type Position struct {
	Seg uint64 `json:"segment"`
	Off int64  `json:"offset"`
}

type segment struct {
	seq        uint64
	size       int64 // bytes written
	durable    int64 // bytes known to be on disk
	MinT, MaxT int64 // event time range, ns
	Records    int64
	pending    []pendingRecord // written since the last fsync
	unreadable bool            // could not be read at start
}

// pendingRecord is a record not yet fsynced: what is lost if fsync fails.
// SegmentFile is what segments are written through: an *os.File, or in
// tests one whose writes or fsyncs fail.
type SegmentFile interface {
	io.Writer
	Sync() error
	Truncate(size int64) error
	Close() error
}

func appendFile(path string) (SegmentFile, error) {
	return os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o640)
}

type pendingRecord struct {
	minT, maxT int64
}

type Spool struct {
	dir        string
	unlock     func() // the folder's lock: one process per spool
	maxBytes   int64
	segBytes   int64
	syncEach   bool                 // fsync after every record, else SyncLoop does it
	onLost     func(Dropped, error) // acknowledged records a failed fsync lost
	log        telegraf.Logger
	open       func(string) (*os.File, error)    // os.Open; tests inject faults
	openAppend func(string) (SegmentFile, error) // opens a segment to append; tests inject faults
	syncDir    func(string) error                // fsyncs the folder; tests count it

	mu      sync.Mutex
	segs    []*segment // oldest first; the last one is written to
	active  SegmentFile
	size    int64
	cursors map[string]Position // by destination
	gens    map[string]uint64   // the generation of each cursor's last commit
	notify  chan struct{}       // closed and replaced when records become durable
}

// SegmentPath is the file of segment seq in the spool folder dir.
func SegmentPath(dir string, seq uint64) string {
	return filepath.Join(dir, fmt.Sprintf("seg-%020d.log", seq))
}

// Open opens (or creates) the spool in dir and recovers it. It
// returns the number of bytes cut from a broken tail.
func Open(dir string, maxBytes, segBytes int64, syncEach bool, log telegraf.Logger) (*Spool, int64, error) {
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, 0, err
	}
	unlock, err := durable.Lock(dir)
	if err != nil {
		return nil, 0, err
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		unlock()
		return nil, 0, err
	}
	s := &Spool{dir: dir, unlock: unlock, maxBytes: maxBytes, segBytes: segBytes, syncEach: syncEach, log: log, open: os.Open, openAppend: appendFile, syncDir: durable.SyncDir,
		notify: make(chan struct{}), cursors: make(map[string]Position), gens: make(map[string]uint64)}
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
		path := SegmentPath(dir, seg.seq)
		data, err := os.ReadFile(path)
		if err != nil {
			// Not readable now (permissions, an I/O error): start anyway;
			// the senders try it again and skip nothing (spool_read_errors).
			log.Errorf("Spool segment %q is unreadable (%v): starting without it for now; the senders retry it", path, err)
			if fi, serr := os.Stat(path); serr == nil {
				seg.size, seg.durable = fi.Size(), fi.Size()
				s.size += fi.Size()
			}
			seg.unreadable = true
			continue
		}
		end := scanSegment(data, seg)
		size := int64(len(data))
		if end < size && i == len(s.segs)-1 { // the tail a crash left: cut it off
			if err := os.Truncate(path, end); err != nil {
				unlock()
				return nil, 0, err
			}
			cut += size - end
			size = end
		}
		seg.size, seg.durable = size, size
		s.size += size
	}
	if len(s.segs) == 0 {
		s.segs = append(s.segs, &segment{seq: 1})
	}
	if last := s.segs[len(s.segs)-1]; last.unreadable { // new records go to a new one
		s.segs = append(s.segs, &segment{seq: last.seq + 1})
	}
	f, err := s.create(s.segs[len(s.segs)-1].seq)
	if err != nil {
		unlock()
		return nil, 0, err
	}
	s.active = f
	return s, cut, nil
}

// scanSegment notes the records of a segment's bytes and returns the end
// of its last intact record. Damage in the middle is skipped over.
func scanSegment(data []byte, seg *segment) int64 {
	var off, end int64
	for off < int64(len(data)) {
		n, minT, maxT, ok := parseRecord(data[off:])
		if !ok {
			next := resync(data, off+1)
			if next < 0 {
				break
			}
			off = next
			continue
		}
		seg.note(minT, maxT)
		off += int64(n)
		end = off
	}
	return end
}

// parseRecord checks the record at the start of b and returns its length
// and times.
func parseRecord(b []byte) (n int, minT, maxT int64, ok bool) {
	if len(b) < HeaderSize || binary.BigEndian.Uint32(b[0:]) != recordMagic {
		return 0, 0, 0, false
	}
	length := binary.BigEndian.Uint32(b[4:])
	if length > maxRecord || int64(HeaderSize)+int64(length) > int64(len(b)) {
		return 0, 0, 0, false
	}
	crc := crc32.Update(crc32.Checksum(b[4:8], crcTable), crcTable, b[12:HeaderSize+int(length)])
	if crc != binary.BigEndian.Uint32(b[8:]) {
		return 0, 0, 0, false
	}
	return HeaderSize + int(length), int64(binary.BigEndian.Uint64(b[12:])), int64(binary.BigEndian.Uint64(b[20:])), true
}

// resync returns the offset of the next intact record at or after from,
// or -1.
func resync(data []byte, from int64) int64 {
	var magic [4]byte
	binary.BigEndian.PutUint32(magic[:], recordMagic)
	for from < int64(len(data)) {
		i := bytes.Index(data[from:], magic[:])
		if i < 0 {
			return -1
		}
		if _, _, _, ok := parseRecord(data[from+int64(i):]); ok {
			return from + int64(i)
		}
		from += int64(i) + 1
	}
	return -1
}

func (seg *segment) note(minT, maxT int64) {
	if seg.Records == 0 || minT < seg.MinT {
		seg.MinT = minT
	}
	if seg.Records == 0 || maxT > seg.MaxT {
		seg.MaxT = maxT
	}
	seg.Records++
}

// create opens segment seq for appending, creating it durably.
func (s *Spool) create(seq uint64) (SegmentFile, error) {
	path := SegmentPath(s.dir, seq)
	_, statErr := os.Stat(path)
	f, err := s.openAppend(path)
	if err != nil {
		return nil, err
	}
	if os.IsNotExist(statErr) {
		if err := s.syncDir(s.dir); err != nil {
			f.Close()
			return nil, err
		}
	}
	return f, nil
}

// Dropped describes records given up: by drop_oldest, or by an fsync
// that failed.
type Dropped struct {
	Records    int64
	Bytes      int64
	MinT, MaxT int64 // event times, ns
}

func (d Dropped) String() string {
	return fmt.Sprintf("dropped %d batches (%d bytes) holding points from %s to %s", d.Records, d.Bytes,
		time.Unix(0, d.MinT).UTC().Format(time.RFC3339), time.Unix(0, d.MaxT).UTC().Format(time.RFC3339))
}

func (d *Dropped) Add(records, bytes, minT, maxT int64) {
	if records == 0 {
		return
	}
	if d.Records == 0 || minT < d.MinT {
		d.MinT = minT
	}
	d.MaxT = max(d.MaxT, maxT)
	d.Records += records
	d.Bytes += bytes
}

// Append writes one record. When the spool would outgrow maxBytes it
// returns ErrFull, or with dropOldest deletes the oldest segments and
// reports what they held.
func (s *Spool) Append(payload []byte, minT, maxT int64, dropOldest bool) (Dropped, error) {
	var lost Dropped
	need := int64(HeaderSize + len(payload))
	if need > maxRecord {
		return lost, fmt.Errorf("batch of %d bytes exceeds the record limit of %d", need, maxRecord)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.active == nil { // a reopen failed: try again
		f, err := s.create(s.segs[len(s.segs)-1].seq)
		if err != nil {
			return lost, err
		}
		s.active = f
	}
	if s.size+need > s.maxBytes && s.allSent() {
		// Everything is sent but the active segment holds the space:
		// start a new one so that the sent one can go.
		if err := s.roll(); err != nil {
			return lost, err
		}
		if err := s.releaseLocked(); err != nil {
			return lost, err
		}
	}
	for s.size+need > s.maxBytes {
		if !dropOldest {
			return lost, ErrFull
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
		if err := s.remove(old); err != nil {
			return lost, err
		}
		lost.Add(old.Records, old.size, old.MinT, old.MaxT)
	}
	last := s.segs[len(s.segs)-1]
	if last.size > 0 && last.size+need > s.segBytes {
		if err := s.roll(); err != nil {
			return lost, err
		}
		last = s.segs[len(s.segs)-1]
	}
	buf := make([]byte, HeaderSize, need)
	binary.BigEndian.PutUint32(buf[0:], recordMagic)
	binary.BigEndian.PutUint32(buf[4:], uint32(len(payload)))
	binary.BigEndian.PutUint64(buf[12:], uint64(minT))
	binary.BigEndian.PutUint64(buf[20:], uint64(maxT))
	buf = append(buf, payload...)
	binary.BigEndian.PutUint32(buf[8:], crc32.Update(crc32.Checksum(buf[4:8], crcTable), crcTable, buf[12:]))
	for {
		_, err := s.active.Write(buf)
		if err == nil {
			break
		}
		// Leave no half record behind (disk full): cut back, report.
		if terr := s.active.Truncate(last.size); terr != nil {
			return lost, s.reopen(err, terr)
		}
		if !errors.Is(err, syscall.ENOSPC) {
			return lost, err
		}
		// The filesystem is full before max_spool_bytes. If everything is
		// sent, the active segment holds the room: start a new one so that
		// it can go. Else spool_full decides, as at the spool's limit.
		if last.size > 0 && s.allSent() {
			if err := s.roll(); err != nil {
				return lost, err
			}
			if err := s.releaseLocked(); err != nil {
				return lost, err
			}
			last = s.segs[len(s.segs)-1]
			continue
		}
		if !dropOldest || len(s.segs) == 1 {
			return lost, fmt.Errorf("%w: its filesystem has no room left (%v)", ErrFull, err)
		}
		old := s.segs[0]
		if err := s.remove(old); err != nil {
			return lost, err
		}
		lost.Add(old.Records, old.size, old.MinT, old.MaxT)
	}
	last.size += need
	last.note(minT, maxT)
	last.pending = append(last.pending, pendingRecord{minT, maxT})
	s.size += need
	if s.syncEach {
		if _, err := s.syncLocked(); err != nil {
			return lost, err // the record was taken back: Telegraf writes it again
		}
	}
	return lost, nil
}

// allSent tells whether every destination has read all there is.
func (s *Spool) allSent() bool {
	if len(s.cursors) == 0 {
		return false
	}
	last := s.segs[len(s.segs)-1]
	for _, c := range s.cursors {
		if c.Seg != last.seq || c.Off < last.size {
			return false
		}
	}
	return last.size > 0
}

// roll starts the next segment. The active one is synced first; on any
// error the spool stays as it was, still writable.
func (s *Spool) roll() error {
	if err := s.syncReporting(); err != nil {
		return err
	}
	next := s.segs[len(s.segs)-1].seq + 1
	f, err := s.create(next)
	if err != nil {
		return err
	}
	if s.active != nil {
		if err := s.active.Close(); err != nil {
			s.log.Warnf("Closing spool segment: %v", err)
		}
	}
	s.active = f
	s.segs = append(s.segs, &segment{seq: next})
	return nil
}

// reopen is the way out when the active segment cannot be cut back: the
// file is reopened, and the records it holds are checked on the next open.
func (s *Spool) reopen(cause, truncErr error) error {
	s.active.Close()
	s.active = nil
	f, err := s.create(s.segs[len(s.segs)-1].seq)
	if err != nil {
		return fmt.Errorf("%w; cutting back the segment: %v; reopening it: %v", cause, truncErr, err)
	}
	s.active = f
	return fmt.Errorf("%w; cutting back the segment: %v", cause, truncErr)
}

// Sync flushes appended records to disk (the fsync = "interval" policy).
// When fsync fails, what it covered cannot be trusted: those records are
// cut off, and reported as lost.
func (s *Spool) Sync() (Dropped, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.syncLocked()
}

func (s *Spool) syncLocked() (Dropped, error) {
	var lost Dropped
	last := s.segs[len(s.segs)-1]
	if last.durable == last.size || s.active == nil {
		return lost, nil
	}
	if err := s.active.Sync(); err != nil {
		// The kernel may have dropped the pages it could not write and
		// will not report it twice (a later fsync would succeed): cut the
		// segment back to what is known to be on disk.
		for _, p := range last.pending {
			lost.Add(1, 0, p.minT, p.maxT)
		}
		lost.Bytes = last.size - last.durable
		s.size -= lost.Bytes
		last.size = last.durable
		last.Records -= lost.Records
		last.pending = last.pending[:0]
		if terr := s.active.Truncate(last.durable); terr != nil {
			return lost, s.reopen(fmt.Errorf("fsync: %w", err), terr)
		}
		return lost, fmt.Errorf("fsync: %w", err)
	}
	last.durable = last.size
	last.pending = last.pending[:0]
	close(s.notify)
	s.notify = make(chan struct{})
	return lost, nil
}

// syncReporting fsyncs outside an append (rolling, closing). With fsync
// "interval" the records it loses on a failure were acknowledged to
// Telegraf, which will not send them again: they are reported as lost
// (onLost). With "batch" every record was fsynced by its own append.
func (s *Spool) syncReporting() error {
	lost, err := s.syncLocked()
	if err != nil && lost.Records > 0 && s.onLost != nil {
		s.onLost(lost, err)
	}
	return err
}

// Wait returns a channel closed when more records become durable.
func (s *Spool) Wait() <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.notify
}

// cursorPath is where destination name keeps its position.
func (s *Spool) cursorPath(name string) string {
	return filepath.Join(s.dir, "cursor-"+name+".json")
}

// Cursor loads where destination name stopped last time, and registers
// it: segments are deleted only once every registered destination has
// passed them. A cursor past the end of its segment (a tail cut after a
// crash) takes the segment's end, where new records go; one past the last
// segment (a spool restored from an older copy) starts again from the
// oldest record: points may be sent twice, and are overwritten, never lost.
func (s *Spool) Cursor(name string) (Position, error) {
	path := s.cursorPath(name)
	var p Position
	var gen uint64
	b, err := os.ReadFile(path)
	switch {
	case os.IsNotExist(err):
		// Made now, while there is room: every commit after it writes in
		// place, even on a full filesystem.
		if err := s.newCursorFile(path, encodeSlot(p, 0)); err != nil {
			return p, fmt.Errorf("creating cursor %q: %w", path, err)
		}
	case err != nil:
		return p, err
	default:
		var ok bool
		if p, gen, ok = decodeCursor(b); !ok {
			s.log.Warnf("Cursor %q is unreadable: starting from the oldest record; points may be sent twice (the same points, overwritten)", path)
			p = Position{}
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if last := s.segs[len(s.segs)-1]; p.Seg > last.seq {
		s.log.Warnf("Cursor %q points past the last spool segment (%d > %d): starting from the oldest record; points may be sent twice (the same points, overwritten)", path, p.Seg, last.seq)
		p = Position{Seg: s.segs[0].seq}
	}
	for _, seg := range s.segs {
		if seg.seq == p.Seg && p.Off > seg.size {
			s.log.Warnf("Cursor %q points past the end of segment %d (offset %d > %d): taking its end", path, p.Seg, p.Off, seg.size)
			p.Off = seg.size
		}
	}
	s.cursors[name] = p
	s.gens[name] = gen
	return p, nil
}

// A cursor file is two slots of cursorSlot bytes. A commit overwrites the
// older slot in place and fsyncs it: no new file and no new block, so a
// full filesystem cannot stop the commit that would free it. Each slot is
// the position, a generation and a CRC, padded: the valid slot of the
// higher generation is the cursor, and a slot torn by a crash mid-write
// fails its CRC and leaves the other.
const cursorSlot = 128

func encodeSlot(p Position, gen uint64) []byte {
	body := fmt.Sprintf(`{"segment":%d,"offset":%d,"gen":%d`, p.Seg, p.Off, gen)
	slot := fmt.Appendf(nil, `%s,"crc":%d}`, body, crc32.Checksum([]byte(body), crcTable))
	for len(slot) < cursorSlot-1 {
		slot = append(slot, ' ')
	}
	return append(slot, '\n')
}

// decodeCursor reads a cursor file: two slots, or the single JSON position
// versions before 0.4 wrote.
func decodeCursor(b []byte) (Position, uint64, bool) {
	if len(b) != 2*cursorSlot {
		var p Position
		return p, 0, json.Unmarshal(b, &p) == nil
	}
	var best Position
	var bestGen uint64
	found := false
	for i := 0; i < 2; i++ {
		var v struct {
			Seg uint64 `json:"segment"`
			Off int64  `json:"offset"`
			Gen uint64 `json:"gen"`
			CRC uint32 `json:"crc"`
		}
		slot := b[i*cursorSlot : (i+1)*cursorSlot]
		if json.Unmarshal(slot, &v) != nil {
			continue
		}
		body := fmt.Sprintf(`{"segment":%d,"offset":%d,"gen":%d`, v.Seg, v.Off, v.Gen)
		if crc32.Checksum([]byte(body), crcTable) != v.CRC || (found && v.Gen <= bestGen) {
			continue
		}
		best, bestGen, found = Position{Seg: v.Seg, Off: v.Off}, v.Gen, true
	}
	return best, bestGen, found
}

// newCursorFile replaces path, atomically, by a cursor file whose slots
// both hold slot.
func (s *Spool) newCursorFile(path string, slot []byte) error {
	tmp := path + ".tmp"
	if err := durable.WriteFileSync(tmp, append(slices.Clone(slot), slot...)); err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		return err
	}
	return s.syncDir(s.dir)
}

// Commit saves where destination name stands, durably, and deletes the
// segments every destination has passed.
func (s *Spool) Commit(name string, p Position) error {
	s.mu.Lock()
	gen := s.gens[name] + 1
	s.mu.Unlock()
	slot := encodeSlot(p, gen)
	path := s.cursorPath(name)
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err == nil {
		var fi os.FileInfo
		if fi, err = f.Stat(); err == nil && fi.Size() != 2*cursorSlot {
			err = errors.New("not a two-slot cursor")
		}
		if err == nil {
			_, err = f.WriteAt(slot, int64(gen%2)*cursorSlot)
		}
		if err == nil {
			err = f.Sync()
		}
		if cerr := f.Close(); err == nil {
			err = cerr
		}
	}
	if err != nil {
		// An older version's cursor: a new file.
		if err := s.newCursorFile(path, slot); err != nil {
			return err
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.gens[name] = gen
	s.cursors[name] = p
	return s.releaseLocked()
}

// releaseLocked deletes the segments every cursor has passed, but the
// active one.
func (s *Spool) releaseLocked() error {
	for len(s.segs) > 1 {
		old := s.segs[0] // closed: its size is final
		for _, c := range s.cursors {
			// A cursor at its end has passed it too: after a roll on a
			// full filesystem, no record can be written to the next
			// segment to move the cursor there until this one goes.
			if c.Seg < old.seq || (c.Seg == old.seq && c.Off < old.size) {
				return nil
			}
		}
		if err := s.remove(old); err != nil {
			return err
		}
	}
	return nil
}

// remove deletes the oldest segment, durably.
func (s *Spool) remove(old *segment) error {
	if err := os.Remove(SegmentPath(s.dir, old.seq)); err != nil && !os.IsNotExist(err) {
		return err
	}
	s.segs = s.segs[1:]
	s.size -= old.size
	return s.syncDir(s.dir)
}

// Stats returns the spool's size and segment count.
func (s *Spool) Stats() (int64, int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.size, len(s.segs)
}

func (s *Spool) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.unlock != nil {
		defer func() { s.unlock(); s.unlock = nil }()
	}
	if s.active == nil {
		return nil
	}
	err := s.syncReporting()
	if cerr := s.active.Close(); err == nil {
		err = cerr
	}
	s.active = nil
	return err
}

// SyncLoop fsyncs every interval until ctx ends.
func (s *Spool) SyncLoop(ctx context.Context, every time.Duration, onErr func(Dropped, error)) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if lost, err := s.Sync(); err != nil {
				onErr(lost, err)
			}
		}
	}
}

// Record is one record read from the spool.
type Record struct {
	Payload    []byte
	MinT, MaxT int64
	Next       Position // where the record after it starts
	Gap        *Gap     // what was skipped to reach it, if anything
}

// Gap is a part of the spool that could not be read: damaged bytes, or a
// segment file gone. The records in it are lost; their event times lie in
// (AfterT, BeforeT), 0 where unknown.
type Gap struct {
	Seg             uint64
	From, To        int64
	AfterT, BeforeT int64
	Missing         bool // the segment file itself is gone
}

func (g *Gap) String() string {
	times := func(ns int64) string {
		if ns == 0 {
			return "?"
		}
		return time.Unix(0, ns).UTC().Format(time.RFC3339)
	}
	what := fmt.Sprintf("%d damaged bytes at offset %d", g.To-g.From, g.From)
	if g.Missing {
		what = "the whole file is missing"
	}
	return fmt.Sprintf("spool segment %d: %s; the points in it, from %s to %s, are lost", g.Seg, what, times(g.AfterT), times(g.BeforeT))
}

// ErrCaughtUp says there is no durable record at the position yet.
var ErrCaughtUp = errors.New("caught up")

// Reader reads the spool in order for one destination.
type Reader struct {
	s     *Spool
	f     *os.File
	seq   uint64
	lastT int64 // max time of the last record read
}

func (s *Spool) Reader() *Reader { return &Reader{s: s} }

func (r *Reader) Close() {
	if r.f != nil {
		r.f.Close()
		r.f = nil
	}
}

// locate moves pos to the next durable record, or says there is none.
// It returns pos, the durable end of its segment, and the segment's times.
func (s *Spool) locate(pos Position) (Position, int64, *segment, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if pos.Seg < s.segs[0].seq { // dropped by drop_oldest (logged there)
		pos = Position{Seg: s.segs[0].seq}
	}
	for i, seg := range s.segs {
		if seg.seq < pos.Seg {
			continue
		}
		if seg.seq > pos.Seg {
			pos = Position{Seg: seg.seq}
		}
		if pos.Off < seg.durable {
			return pos, seg.durable, seg, nil
		}
		if i == len(s.segs)-1 {
			break
		}
	}
	return pos, 0, nil, ErrCaughtUp
}

// Read returns the record at pos or the first intact one after it. It
// returns ErrCaughtUp when there is none yet, and other errors (a segment
// that cannot be opened or read) for the caller to retry: only a file that
// does not exist is skipped, as a gap.
func (r *Reader) Read(pos Position) (Record, error) {
	pos, limit, seg, err := r.s.locate(pos)
	if err != nil {
		if errors.Is(err, ErrCaughtUp) {
			// Caught up: let go of the segment, which may be deleted
			// next; an open file would keep its room taken on a full
			// filesystem.
			r.Close()
		}
		return Record{}, err
	}
	if r.f == nil || r.seq != pos.Seg {
		r.Close()
		f, err := r.s.open(SegmentPath(r.s.dir, pos.Seg))
		if os.IsNotExist(err) {
			g := &Gap{Seg: pos.Seg, From: pos.Off, To: limit, AfterT: r.lastT, BeforeT: seg.MaxT, Missing: true}
			return Record{Next: Position{Seg: pos.Seg, Off: limit}, Gap: g}, nil
		}
		if err != nil {
			return Record{}, err
		}
		r.f, r.seq = f, pos.Seg
	}
	var hdr [HeaderSize]byte
	if _, err := r.f.ReadAt(hdr[:], pos.Off); err == nil {
		n := int64(binary.BigEndian.Uint32(hdr[4:]))
		if binary.BigEndian.Uint32(hdr[0:]) == recordMagic && n <= maxRecord && pos.Off+HeaderSize+n <= limit {
			buf := make([]byte, HeaderSize+n)
			if _, err := r.f.ReadAt(buf, pos.Off); err != nil && !errors.Is(err, io.EOF) {
				return Record{}, err
			}
			if _, minT, maxT, ok := parseRecord(buf); ok {
				r.lastT = maxT
				return Record{Payload: buf[HeaderSize:], MinT: minT, MaxT: maxT, Next: Position{Seg: pos.Seg, Off: pos.Off + int64(len(buf))}}, nil
			}
		}
	} else if !errors.Is(err, io.EOF) {
		return Record{}, err
	}
	return r.skipDamage(pos, limit, seg)
}

// skipDamage finds the first intact record after the damaged one at pos.
func (r *Reader) skipDamage(pos Position, limit int64, seg *segment) (Record, error) {
	data := make([]byte, limit-pos.Off)
	n, err := r.f.ReadAt(data, pos.Off)
	if err != nil && !errors.Is(err, io.EOF) {
		return Record{}, err
	}
	data = data[:n]
	g := &Gap{Seg: pos.Seg, From: pos.Off, To: limit, AfterT: r.lastT, BeforeT: seg.MaxT}
	next := resync(data, 1)
	if next < 0 {
		return Record{Next: Position{Seg: pos.Seg, Off: limit}, Gap: g}, nil
	}
	g.To = pos.Off + next
	n2, minT, maxT, _ := parseRecord(data[next:])
	g.BeforeT = minT
	return Record{
		Payload: data[next+HeaderSize : next+int64(n2)], MinT: minT, MaxT: maxT,
		Next: Position{Seg: pos.Seg, Off: g.To + int64(n2)}, Gap: g,
	}, nil
}

// SetOnLost sets what is told of the records a failed fsync outside an
// Append lost (rolling, closing): records Telegraf was told were written.
func (s *Spool) SetOnLost(onLost func(Dropped, error)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.onLost = onLost
}

// SetOpen replaces os.Open for reading segments: tests inject read faults.
// Call it before the first Reader.
func (s *Spool) SetOpen(open func(string) (*os.File, error)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.open = open
}

// SetMaxBytes changes the spool's limit: tests make room without a
// destination.
func (s *Spool) SetMaxBytes(maxBytes int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.maxBytes = maxBytes
}

// WrapActive wraps the segment being written: tests inject write and
// fsync faults.
func (s *Spool) WrapActive(wrap func(SegmentFile) SegmentFile) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.active = wrap(s.active)
}
