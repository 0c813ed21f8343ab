package maillog

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/influxdata/telegraf/filter"
	"github.com/influxdata/telegraf/selfstat"

	"github.com/mailtick/mailtick/plugins/common/durable"
	ml "github.com/mailtick/mailtick/plugins/common/maillog"
)

// The systemd journal is read through journalctl, in its export format,
// and not natively: bin/telegraf has no cgo (sd-journal is a C library),
// and the journal's file format (compressed objects, hash tables, entry
// arrays, several files interleaved, rotation and vacuum) is systemd's to
// read right. journalctl follows the journal across rotation, seeks to a
// cursor, and interleaves every file of a directory. Export and not json:
// it is binary-safe (a field that is not text comes length-prefixed) and
// never shortens a field (json prints null for a field over 4096 bytes
// unless --all).

// journalState is what is saved of the journal: the cursor of the last
// entry whose events the outputs took, and the correlation state there.
type journalState struct {
	Cursor string          `json:"cursor"`
	Queue  json.RawMessage `json:"queue"`
}

// journal follows the journal with journalctl.
type journal struct {
	reader
	statePth string
	ids      filter.Filter
	lost     selfstat.Stat // entries the journal lost before they were read

	cursor string // of the last entry read
	skip   string // the cursor journalctl starts at: read already
	seq    seqnum // of the last entry read
	ckpt   *journalState
}

// seqnum is where an entry is in the journal that wrote it: its sequence
// number space (s=) and number (i=), from its cursor.
type seqnum struct {
	id string
	n  uint64
}

func seqnumOf(cursor string) seqnum {
	var s seqnum
	for _, kv := range strings.Split(cursor, ";") {
		k, v, _ := strings.Cut(kv, "=")
		switch k {
		case "s":
			s.id = v
		case "i":
			s.n, _ = strconv.ParseUint(v, 16, 64)
		}
	}
	return s
}

// journalName names the journal read, in the state file and the stats.
func (m *MailLog) journalName() string {
	name := "journal"
	if m.JournalDirectory != "" {
		name += ":" + m.JournalDirectory
	}
	return name
}

func (m *MailLog) journalStatePath() string {
	sum := sha256.Sum256([]byte(m.journalName() + "\x00" + strings.Join(m.JournalUnits, "\x00")))
	return filepath.Join(m.StateDir, "maillog-journal-"+hex.EncodeToString(sum[:8])+".json")
}

func (m *MailLog) newJournal() (*journal, error) {
	ids, err := filter.Compile(m.JournalIdentifiers)
	if err != nil {
		return nil, fmt.Errorf("invalid %q value %q: %w", "journal_identifiers", m.JournalIdentifiers, err)
	}
	name := m.journalName()
	j := &journal{
		reader:   reader{m: m, c: m.newCorrelator(), st: m.newStats(name)},
		statePth: m.journalStatePath(),
		ids:      ids,
		lost:     selfstat.Register("maillog", "journal_entries_lost", map[string]string{"file": name}),
	}
	s, err := loadState(j.c, j.statePth, func(s *journalState) json.RawMessage { return s.Queue })
	if err != nil {
		return nil, err
	}
	if s != nil {
		j.cursor, j.seq, j.ckpt = s.Cursor, seqnumOf(s.Cursor), s
	}
	return j, nil
}

// journalArgs are journalctl's arguments but for where to start.
func (m *MailLog) journalArgs() []string {
	args := []string{"--output=export", "--no-pager", "--quiet",
		"--output-fields=MESSAGE,SYSLOG_IDENTIFIER,_HOSTNAME"}
	if m.JournalDirectory != "" {
		args = append(args, "--directory="+m.JournalDirectory)
	}
	for _, u := range m.JournalUnits {
		args = append(args, "--unit="+u)
	}
	return args
}

// start decides where a first start begins: from the oldest entry with
// from_beginning, else after the newest entry there is now (its cursor is
// saved at once, so that what is written while the agent is down before
// any entry was read is not skipped on the next start).
func (j *journal) start(ctx context.Context) error {
	if j.ckpt != nil || j.m.FromBeginning {
		return j.save(j.cursor)
	}
	out, err := exec.CommandContext(ctx, j.m.Journalctl, append(j.m.journalArgs(), "--lines=1")...).Output()
	if err != nil {
		return fmt.Errorf("%s: %w%s", j.m.Journalctl, err, stderrOf(err))
	}
	r := newExportReader(bytes.NewReader(out))
	if e, err := r.next(); err == nil {
		j.cursor, j.seq = e.cursor, seqnumOf(e.cursor)
	}
	return j.save(j.cursor)
}

func stderrOf(err error) string {
	var ee *exec.ExitError
	if errors.As(err, &ee) && len(ee.Stderr) > 0 {
		return ": " + strings.TrimSpace(string(ee.Stderr))
	}
	return ""
}

// save writes the state at cursor with the correlation state now.
func (j *journal) save(cursor string) error {
	q, err := j.c.Snapshot()
	if err != nil {
		return err
	}
	s := journalState{Cursor: cursor, Queue: q}
	b, err := json.Marshal(s)
	if err == nil {
		err = durable.WriteAtomic(j.statePth, b)
	}
	if err != nil {
		return fmt.Errorf("saving the state %q: %w", j.statePth, err)
	}
	j.ckpt, j.careful = &s, false
	return nil
}

// run follows the journal until ctx ends, starting journalctl again when
// it ends (an error is logged once until another one differs).
func (j *journal) run(ctx context.Context) {
	name := j.m.journalName()
	defer j.checkpoint(true)
	var lastErr string
	for ctx.Err() == nil {
		var err error
		if j.ckpt == nil {
			err = j.start(ctx)
		} else {
			err = j.follow(ctx)
		}
		if err == nil || ctx.Err() != nil {
			lastErr = ""
			continue
		}
		if msg := err.Error(); msg != lastErr {
			j.m.Log.Errorf("%s: %s", name, msg)
			lastErr = msg
		}
		if !sleep(ctx, time.Second) {
			return
		}
	}
}

// errRewind ends a journalctl run to read again from the last checkpoint.
var errRewind = errors.New("rewind")

// follow runs journalctl from the cursor until it ends, ctx ends, or the
// outputs dropped events read since the last checkpoint.
func (j *journal) follow(ctx context.Context) error {
	// --lines=all always: with --follow journalctl shows 10 entries
	// (from a cursor too), then only those written after it started.
	args := append(j.m.journalArgs(), "--follow", "--lines=all")
	if j.cursor != "" {
		// --cursor and not --after-cursor: journalctl steps over one
		// entry past where it seeks, and when the cursor's entry no longer
		// exists (vacuumed) that is the next one, never read. From the
		// cursor, its own entry is known by its cursor and skipped here.
		args = append(args, "--cursor="+j.cursor)
	}
	j.skip = j.cursor
	cctx, cancel := context.WithCancel(ctx)
	defer cancel()
	cmd := exec.CommandContext(cctx, j.m.Journalctl, args...)
	var stderr limitedBuffer
	cmd.Stderr = &stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		return err
	}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("%q: %w", "journalctl", err)
	}
	entries := make(chan []journalEntry, 4)
	var readErr error
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { // batches of what journalctl has written so far
		defer wg.Done()
		defer close(entries)
		r := newExportReader(out)
		// next reads an entry; another program's keeps only its cursor.
		next := func() (journalEntry, error) {
			e, err := r.next()
			if err == nil && e.cursor == "" {
				err = errors.New("export format: an entry without __CURSOR")
			}
			if !j.ids.Match(e.identifier) {
				e.message, e.cut, e.other = "", false, true
			}
			return e, err
		}
		for {
			e, err := next()
			var batch []journalEntry
			for err == nil {
				batch = append(batch, e)
				if len(batch) == 512 || !r.buffered() {
					break
				}
				e, err = next()
			}
			if len(batch) > 0 {
				select {
				case entries <- batch:
				case <-cctx.Done():
					return
				}
			}
			if err != nil {
				if !errors.Is(err, io.EOF) {
					readErr = err // journalctl starts again from the last entry read
				}
				return
			}
		}
	}()
	tick := time.NewTicker(time.Duration(j.m.CheckpointInterval))
	defer tick.Stop()
	result := func(err error) error {
		cancel()
		for range entries { // let the reader end
		}
		wg.Wait()
		werr := cmd.Wait()
		switch {
		case errors.Is(err, errRewind):
			return nil
		case readErr != nil:
			return fmt.Errorf("reading journalctl's output: %w", readErr)
		case ctx.Err() != nil:
			return nil
		case strings.Contains(stderr.String(), "Failed to seek to cursor"):
			// A cursor journalctl cannot read: not one it wrote.
			j.m.Log.Warnf("%s: journalctl refused the saved cursor %q (%s): reading the journal from its oldest entry (the events read again overwrite their points)",
				j.m.journalName(), j.cursor, strings.TrimSpace(stderr.String()))
			j.cursor, j.seq = "", seqnum{}
			return nil
		case werr != nil:
			return fmt.Errorf("journalctl %s: %w: %s", strings.Join(args, " "), werr, strings.TrimSpace(stderr.String()))
		}
		return fmt.Errorf("journalctl %s ended", strings.Join(args, " "))
	}
	for {
		select {
		case batch, ok := <-entries:
			if !ok {
				return result(nil)
			}
			j.read(batch)
		case <-tick.C:
			if j.checkpoint(false) {
				return result(errRewind)
			}
		case <-ctx.Done():
			return result(nil)
		}
	}
}

// read emits the events of a batch of entries as one tracked group.
func (j *journal) read(batch []journalEntry) {
	var evs []ml.Event
	for _, e := range batch {
		if j.skip != "" {
			skip := e.cursor == j.skip
			j.skip = ""
			if skip {
				continue
			}
		}
		j.gap(seqnumOf(e.cursor))
		j.cursor = e.cursor
		if e.other {
			continue
		}
		if e.cut {
			j.st.cut.Incr(1)
			continue
		}
		j.st.lines.Incr(1)
		got, reason := j.c.Entry(e.time, e.host, e.identifier, e.message)
		if reason != "" {
			j.st.refused(reason)
			continue
		}
		evs = append(evs, got...)
	}
	j.emit(evs)
}

// gap counts the entries the journal lost between the last entry read and
// the next: its sequence numbers leave a hole there (vacuumed, or a
// corrupt file dropped, before they were read). Only when every entry is
// read: journal_units lets journalctl skip the others.
func (j *journal) gap(next seqnum) {
	if len(j.m.JournalUnits) == 0 && next.id != "" && next.id == j.seq.id && next.n > j.seq.n+1 {
		n := next.n - j.seq.n - 1
		j.lost.Incr(int64(n))
		j.m.Log.Warnf("%s: %d entries between the last read and the next are gone from the journal (vacuumed or corrupt before they were read): their events are lost", j.m.journalName(), n)
	}
	if next.id != "" {
		j.seq = next
	}
}

// checkpoint saves the cursor once every event read was delivered. It
// returns true when the outputs dropped events read since the last one:
// the correlation state is back at the checkpoint, and reading must start
// again from its cursor.
func (j *journal) checkpoint(final bool) (rewind bool) {
	if j.ckpt == nil {
		return false // not started
	}
	ok, dropped := j.settled()
	if dropped && !final {
		c := j.m.newCorrelator()
		if err := c.Restore(j.ckpt.Queue); err != nil {
			j.m.Log.Errorf("%s: restoring the last checkpoint: %v", j.m.journalName(), err)
			return false
		}
		j.m.Log.Warnf("%s: the outputs dropped events read after cursor %q (their buffer was full): reading again from there, one batch at a time", j.m.journalName(), j.ckpt.Cursor)
		j.rewound()
		j.c, j.cursor, j.seq, j.careful = c, j.ckpt.Cursor, seqnumOf(j.ckpt.Cursor), true
		return true
	}
	if !ok {
		return false
	}
	if err := j.save(j.cursor); err != nil {
		j.m.Log.Errorf("%s: %v", j.m.journalName(), err)
	}
	return false
}

// journalEntry is what is read of one entry.
type journalEntry struct {
	cursor     string
	time       time.Time
	host       string
	identifier string
	message    string
	cut        bool // a MESSAGE over maxLineBytes: not read
	other      bool // another program's (journal_identifiers): only its cursor counts
}

// exportReader reads journalctl's export format: an entry is fields, one
// a line, "KEY=value\n" or, for a value that is not text,
// "KEY\n<64-bit little-endian length><bytes>\n", and ends with an empty
// line.
type exportReader struct {
	r *bufio.Reader
}

func newExportReader(r io.Reader) *exportReader {
	return &exportReader{r: bufio.NewReaderSize(r, 64<<10)}
}

func (x *exportReader) buffered() bool { return x.r.Buffered() > 0 }

// next reads one entry.
func (x *exportReader) next() (journalEntry, error) {
	var e journalEntry
	fields := 0
	for {
		line, cut, err := x.line()
		if err != nil {
			if errors.Is(err, io.EOF) && fields > 0 {
				return e, io.ErrUnexpectedEOF
			}
			return e, err
		}
		if len(line) == 0 && !cut {
			if fields == 0 {
				continue
			}
			return e, nil
		}
		fields++
		key, value, text := bytes.Cut(line, []byte("="))
		if !text { // binary: a length, the bytes, a newline
			var n uint64
			if err := binary.Read(x.r, binary.LittleEndian, &n); err != nil {
				return e, err
			}
			if n > maxLineBytes {
				if _, err := x.r.Discard(int(min(n, 1<<40))); err != nil {
					return e, err
				}
				cut = true
				value = nil
			} else {
				value = make([]byte, n)
				if _, err := io.ReadFull(x.r, value); err != nil {
					return e, err
				}
			}
			if b, err := x.r.ReadByte(); err != nil || b != '\n' {
				return e, fmt.Errorf("export format: no newline after the %d bytes of %s", n, key)
			}
		}
		switch string(key) {
		case "__CURSOR":
			e.cursor = string(value)
		case "__REALTIME_TIMESTAMP":
			us, err := strconv.ParseInt(string(value), 10, 64)
			if err != nil {
				return e, fmt.Errorf("export format: __REALTIME_TIMESTAMP %q", value)
			}
			e.time = time.UnixMicro(us).UTC()
		case "MESSAGE":
			e.message, e.cut = string(value), e.cut || cut
		case "SYSLOG_IDENTIFIER":
			e.identifier = string(value)
		case "_HOSTNAME":
			e.host = string(value)
		}
	}
}

// line reads one line without its newline; one over maxLineBytes is cut
// there and the rest skipped.
func (x *exportReader) line() ([]byte, bool, error) {
	var buf []byte
	cut := false
	for {
		b, err := x.r.ReadSlice('\n')
		switch {
		case errors.Is(err, bufio.ErrBufferFull):
			if len(buf)+len(b) <= maxLineBytes {
				buf = append(buf, b...)
			} else {
				cut = true
			}
			continue
		case err != nil:
			return nil, cut, err
		}
		if len(buf)+len(b) > maxLineBytes+1 {
			cut = true
		} else {
			buf = append(buf, b...)
		}
		if cut {
			// Keep the key: the field is known, its value is not read.
			if k, _, ok := bytes.Cut(buf, []byte("=")); ok {
				return append(k, '='), true, nil
			}
			return nil, true, nil
		}
		return buf[:len(buf)-1], false, nil
	}
}

// limitedBuffer keeps the first 4 KiB written to it (journalctl's stderr).
type limitedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *limitedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if room := 4096 - l.b.Len(); room > 0 {
		l.b.Write(p[:min(room, len(p))])
	}
	return len(p), nil
}

func (l *limitedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
