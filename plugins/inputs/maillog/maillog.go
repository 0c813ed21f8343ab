// Package maillog is inputs.maillog: it follows MTA log files (Postfix,
// Exim) and
// emits one mail_event per delivery attempt of each recipient and one per
// reject, correlating lines by queue id (Exim: message id). It is an input of its own, not a
// parser beside a stateful processor on inputs.tail, because at-least-once
// needs the file offset and the correlation state saved together, and
// only once the outputs took every event before that offset: a tail input
// and a processor each keep half of that and cannot agree on it.
package maillog

import (
	"bytes"
	"context"
	"crypto/sha256"
	_ "embed"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/influxdata/telegraf"
	"github.com/influxdata/telegraf/config"
	"github.com/influxdata/telegraf/filter"
	"github.com/influxdata/telegraf/plugins/inputs"
	"github.com/influxdata/telegraf/selfstat"

	"github.com/mailtick/mailtick/plugins/common/durable"
	ml "github.com/mailtick/mailtick/plugins/common/maillog"
	"github.com/mailtick/mailtick/plugins/common/tracking"
)

//go:embed sample.conf
var sampleConfig string

// MailLog follows log files.
type MailLog struct {
	Files              []string        `toml:"files"`
	Listen             []string        `toml:"listen"`
	StateDir           string          `toml:"state_dir"`
	FromBeginning      bool            `toml:"from_beginning"`
	PollInterval       config.Duration `toml:"poll_interval"`
	RotateWait         config.Duration `toml:"rotate_wait"`
	CheckpointInterval config.Duration `toml:"checkpoint_interval"`
	Timezone           string          `toml:"timezone"`
	MaxQueueIDs        int             `toml:"max_queue_ids"`
	QueueIDTTL         config.Duration `toml:"queue_id_ttl"`
	InboundDaemons     []string        `toml:"inbound_daemons"`
	Host               string          `toml:"host"`
	InternalNetworks   []string        `toml:"internal_networks"`
	MaxUndelivered     int             `toml:"max_undelivered_batches"`
	MaxConnections     int             `toml:"max_connections"`
	ReadTimeout        config.Duration `toml:"read_timeout"`
	MaxHosts           int             `toml:"max_hosts"`
	Journal            bool            `toml:"journal"`
	JournalDirectory   string          `toml:"journal_directory"`
	JournalUnits       []string        `toml:"journal_units"`
	JournalIdentifiers []string        `toml:"journal_identifiers"`
	Journalctl         string          `toml:"journalctl"`
	Log                telegraf.Logger `toml:"-"`

	loc    *time.Location
	nets   []netip.Prefix
	win    *tracking.Window
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	mu     sync.Mutex
	open   int64                          // batches (one per read) not yet delivered
	owners map[telegraf.TrackingID]*stats // whose batch: who counts its rejection
	done   *sync.Cond
	lns    []*listener
	unlock func() // state_dir's lock
}

func (m *MailLog) newCorrelator() *ml.Correlator {
	return ml.NewCorrelator(ml.Options{MaxMessages: m.MaxQueueIDs, TTL: time.Duration(m.QueueIDTTL),
		InboundDaemons: m.InboundDaemons, Host: m.Host, InternalNetworks: m.nets})
}

// emit hands a batch to the outputs, counted as undelivered until they took
// it, once fewer than max_undelivered_batches are (Telegraf holds no more
// groups than its delivery channel has room for). rejected counts the
// batch if the outputs drop it (their buffer full). It returns false when
// the plugin stops before the batch could be handed: nothing was.
func (m *MailLog) emit(ms []telegraf.Metric, from *stats) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	id, ok := m.win.TryAdd(ms)
	for !ok && m.ctx.Err() == nil {
		m.done.Wait()
		id, ok = m.win.TryAdd(ms)
	}
	if !ok {
		return false
	}
	m.open++
	m.owners[id] = from
	return true
}

// delivered counts a batch the outputs took or dropped.
func (m *MailLog) delivered(info telegraf.DeliveryInfo) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.open--
	if owner := m.owners[info.ID()]; owner != nil && !info.Delivered() {
		owner.rejectedN.Add(1)
		owner.rejected.Incr(1)
	}
	delete(m.owners, info.ID())
	m.done.Broadcast()
}

func (*MailLog) SampleConfig() string { return sampleConfig }

// Init checks the options; errors name the option and the bad value.
func (m *MailLog) Init() error {
	if len(m.Files) == 0 && len(m.Listen) == 0 && !m.Journal {
		return errNoSource
	}
	if (len(m.Files) > 0 || m.Journal) && m.StateDir == "" {
		return fmt.Errorf("%q must be set: the offset or cursor and the correlation state are kept there", "state_dir")
	}
	if m.Journal {
		if _, err := exec.LookPath(m.Journalctl); err != nil {
			return fmt.Errorf("invalid %q value %q (needed by %q): %w", "journalctl", m.Journalctl, "journal", err)
		}
		if _, err := filter.Compile(m.JournalIdentifiers); err != nil || len(m.JournalIdentifiers) == 0 {
			return fmt.Errorf("invalid %q value %q: want globs of SYSLOG_IDENTIFIER (%v)", "journal_identifiers", m.JournalIdentifiers, err)
		}
	}
	loc, err := time.LoadLocation(m.Timezone)
	if err != nil {
		return fmt.Errorf("invalid %q value %q: %w", "timezone", m.Timezone, err)
	}
	m.loc = loc
	for _, n := range m.InternalNetworks {
		p, err := netip.ParsePrefix(n)
		if err != nil {
			return fmt.Errorf("invalid %q value %q: %w", "internal_networks", n, err)
		}
		m.nets = append(m.nets, p.Masked())
	}
	if m.Host == "" {
		if m.Host, err = os.Hostname(); err != nil {
			return fmt.Errorf("%q is not set and the hostname is unknown: %w", "host", err)
		}
	}
	if m.RotateWait < 0 {
		return fmt.Errorf("invalid %q value %s: must not be negative", "rotate_wait", time.Duration(m.RotateWait))
	}
	if m.PollInterval <= 0 || m.CheckpointInterval <= 0 || m.MaxUndelivered <= 0 {
		return fmt.Errorf("%q, %q and %q must be positive", "poll_interval", "checkpoint_interval", "max_undelivered_batches")
	}
	for _, o := range []struct {
		name, value string
		bad         bool
	}{
		{"max_connections", strconv.Itoa(m.MaxConnections), m.MaxConnections <= 0},
		{"read_timeout", time.Duration(m.ReadTimeout).String(), m.ReadTimeout <= 0},
		{"max_hosts", strconv.Itoa(m.MaxHosts), m.MaxHosts <= 0},
	} {
		if o.bad {
			return fmt.Errorf("invalid %q value %q: must be positive", o.name, o.value)
		}
	}
	return nil
}

// state is what is saved per file: where reading resumes, and the
// correlation state at that point.
type state struct {
	Path        string      `json:"path"`
	Inode       uint64      `json:"inode"`
	Fingerprint fingerprint `json:"fingerprint"`
	Offset      int64       `json:"offset"`
	// Lines without a timestamp are stamped Base (unix ns) plus their
	// distance in bytes from Offset: distinct, and the same when read
	// again from this checkpoint.
	Base  int64           `json:"base"`
	Queue json.RawMessage `json:"queue"`
}

// Start follows each file.
func (m *MailLog) Start(acc telegraf.Accumulator) error {
	if len(m.Files) > 0 || m.Journal {
		if err := os.MkdirAll(m.StateDir, 0o750); err != nil {
			return fmt.Errorf("creating %q %q: %w", "state_dir", m.StateDir, err)
		}
		// One process per state: a second would save offsets over ours.
		unlock, err := durable.Lock(m.StateDir)
		if err != nil {
			return fmt.Errorf("%q: %w", "state_dir", err)
		}
		m.unlock = unlock
	}
	for _, addr := range m.Listen {
		l, err := m.listen(addr)
		if err != nil {
			for _, prev := range m.lns {
				prev.close()
			}
			m.release()
			return err
		}
		m.lns = append(m.lns, l)
	}
	m.win = tracking.New(acc, m.MaxUndelivered)
	m.owners = map[telegraf.TrackingID]*stats{}
	m.done = sync.NewCond(&m.mu)
	ctx, cancel := context.WithCancel(context.Background())
	m.ctx, m.cancel = ctx, cancel
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		m.win.Run(ctx, m.delivered)
	}()
	for _, l := range m.lns {
		m.wg.Add(1)
		go func() {
			defer m.wg.Done()
			l.run()
		}()
	}
	var runs []func(context.Context)
	if m.Journal {
		j, err := m.newJournal()
		if err != nil {
			m.Stop()
			return err
		}
		runs = append(runs, j.run)
	}
	for _, path := range m.Files {
		f, err := m.newFollower(path)
		if err != nil {
			m.Stop()
			return err
		}
		runs = append(runs, f.run)
	}
	for _, run := range runs {
		m.wg.Add(1)
		go func() {
			defer m.wg.Done()
			run(ctx)
		}()
	}
	return nil
}

// Gather does nothing: the files bring the events.
func (*MailLog) Gather(telegraf.Accumulator) error { return nil }

// Stop stops reading; what was delivered is checkpointed.
func (m *MailLog) Stop() {
	m.cancel()
	m.mu.Lock()
	m.done.Broadcast() // wakes readers waiting for the outputs
	m.mu.Unlock()
	for _, l := range m.lns {
		l.close()
	}
	m.wg.Wait()
	m.release()
}

// release gives back state_dir's lock.
func (m *MailLog) release() {
	if m.unlock != nil {
		m.unlock()
		m.unlock = nil
	}
}

// maxLineBytes bounds a line; longer ones are cut and counted (lines_cut).
const maxLineBytes = ml.MaxLineBytes

// reader is what a file's follower and the journal's have in common: the
// correlator, the stats, and where they stand with the outputs.
type reader struct {
	m       *MailLog
	c       *ml.Correlator
	st      *stats
	seen    int64 // st.rejectedN at the last rewind
	unsent  bool  // events were read that could not be handed
	careful bool  // since a rewind: one batch at a time until a checkpoint
}

// emit hands the events read to the outputs as one tracked group.
func (r *reader) emit(evs []ml.Event) {
	r.st.open.Set(int64(r.c.Open()))
	r.st.evicted.Set(r.c.Evicted)
	if len(evs) == 0 {
		return
	}
	r.st.events.Incr(int64(len(evs)))
	if r.careful {
		r.m.waitBelow(1)
	}
	if !r.m.emit(metricsOf(evs), r.st) {
		r.unsent = true
	}
}

// settled waits until the outputs took or dropped every batch read, and
// tells whether the reader's state may be saved now: no batch is on its
// way (the plugin stopped with events unsent: the last checkpoint
// stands), and the outputs dropped none read since its last checkpoint
// (Telegraf's buffer was full). When they did, only delivered events may
// pass a checkpoint: the reader reads again from its last one, a batch at
// a time.
func (r *reader) settled() (ok, dropped bool) {
	r.m.waitBelow(1)
	r.m.mu.Lock()
	open := r.m.open
	r.m.mu.Unlock()
	if open > 0 || r.unsent {
		return false, false
	}
	if r.st.rejectedN.Load() != r.seen {
		return false, true
	}
	return true, false
}

// rewound is told by a reader that went back to its last checkpoint: the
// batches dropped so far are being read again.
func (r *reader) rewound() {
	r.seen = r.st.rejectedN.Load()
	r.st.rewinds.Incr(1)
}

// follower reads one file.
type follower struct {
	reader
	path     string
	statePth string
	f        *os.File
	inode    uint64
	fp       fingerprint // of the file being read
	offset   int64       // of the first byte not yet read into a full line
	partial  []byte
	skipping bool // inside a line longer than maxLineBytes
	// base and baseOff: the time of a line without a timestamp is base
	// plus its offset's distance from baseOff, in ns (state.Base).
	base    time.Time
	baseOff int64
	// old: the file being read was rotated away (renamed, or it is the
	// copy of a truncated one); the path is read from its start once it
	// has not grown (quietAt) for rotate_wait (since quietSince).
	old        bool
	next       []string // rotated files to read after the old one (successors)
	quietAt    int64
	quietSince time.Time
	lastCkpt   time.Time

	// The last checkpoint: where reading goes back to when the outputs
	// dropped a batch read since (inode, offset, correlation state).
	ckpt *state
}

// followerState is where a file's state is saved.
func (m *MailLog) followerState(path string) string {
	sum := sha256.Sum256([]byte(path))
	return filepath.Join(m.StateDir, "maillog-"+hex.EncodeToString(sum[:8])+".json")
}

func (m *MailLog) newFollower(path string) (*follower, error) {
	fl := &follower{
		reader:   reader{m: m, c: m.newCorrelator(), st: m.newStats(path)},
		path:     path,
		statePth: m.followerState(path),
	}
	s, err := loadState(fl.c, fl.statePth, func(s *state) json.RawMessage { return s.Queue })
	switch {
	case err != nil:
		return nil, err
	case s == nil:
		fl.offset = -1 // decided when the file is opened: from_beginning
	default:
		fl.inode, fl.offset, fl.fp = s.Inode, s.Offset, s.Fingerprint
		fl.base, fl.baseOff = time.Unix(0, s.Base), s.Offset
		fl.ckpt = s
	}
	return fl, nil
}

// loadState reads a reader's saved state from path (nil when there is
// none yet) and restores its correlation state (queue) into c.
func loadState[S any](c *ml.Correlator, path string, queue func(*S) json.RawMessage) (*S, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	s := new(S)
	if err := json.Unmarshal(b, s); err != nil {
		return nil, fmt.Errorf("state file %q: %w", path, err)
	}
	if err := c.Restore(queue(s)); err != nil {
		return nil, fmt.Errorf("state file %q: %w", path, err)
	}
	return s, nil
}

func inodeOf(fi os.FileInfo) uint64 {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return st.Ino
	}
	return 0
}

// open opens the file to read: the saved one at the saved offset if it is
// still at the path (same inode and fingerprint, not shorter), else found
// among the rotated names (its tail first, then the path); else the path
// from its start, or from its end on a first start without
// from_beginning.
func (fl *follower) open() error {
	f, err := os.Open(fl.path)
	if err != nil {
		return err
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return err
	}
	ino := inodeOf(fi)
	switch {
	case fl.offset < 0 && !fl.m.FromBeginning:
		fl.offset = fi.Size()
	case fl.offset < 0:
		fl.offset = 0
	case ino == fl.inode && fi.Size() >= fl.offset && fl.fp.matches(f):
	default:
		if old := fl.findRotated(ino); old != nil {
			f.Close()
			fl.next = fl.successors(old, ino)
			f, ino = old, fl.inode
			fl.old, fl.quietAt, fl.quietSince = true, -1, time.Now()
			break
		}
		if fl.offset > 0 {
			fl.st.lost.Incr(1)
			fl.m.Log.Warnf("%s: rotated or truncated, and the earlier file is not among its rotated names (%s.*, uncompressed): what it held after offset %d is lost; reading the new one from the start", fl.path, fl.path, fl.offset)
		}
		fl.offset, fl.fp = 0, fingerprint{}
	}
	if _, err := f.Seek(fl.offset, io.SeekStart); err != nil {
		f.Close()
		return err
	}
	fl.f, fl.inode, fl.partial = f, ino, nil
	if fl.fp.Len < fingerprintBytes {
		if fp, err := fingerprintOf(f); err == nil && (fl.fp.Len == 0 || fp.Len > fl.fp.Len) {
			fl.fp = fp
		}
	}
	if fl.ckpt == nil { // a first start: what to go back to
		q, err := fl.c.Snapshot()
		if err != nil {
			f.Close()
			return err
		}
		fl.base, fl.baseOff = time.Now(), fl.offset
		fl.ckpt = &state{Path: fl.path, Inode: ino, Fingerprint: fl.fp, Offset: fl.offset, Queue: q, Base: fl.base.UnixNano()}
	} else if fl.offset < fl.baseOff { // another file: a base of its own
		fl.base, fl.baseOff = time.Now(), fl.offset
	}
	return nil
}

// run reads until ctx ends.
func (fl *follower) run(ctx context.Context) {
	defer func() {
		fl.checkpoint(true)
		if fl.f != nil {
			fl.f.Close()
		}
	}()
	buf := make([]byte, 256<<10)
	for ctx.Err() == nil {
		if fl.f == nil {
			if err := fl.open(); err != nil {
				if !errors.Is(err, os.ErrNotExist) {
					fl.m.Log.Errorf("%s: %v", fl.path, err)
				}
				if !sleep(ctx, time.Duration(fl.m.PollInterval)) {
					return
				}
				continue
			}
		}
		n, err := fl.f.Read(buf)
		if n > 0 {
			fl.lines(buf[:n])
			continue
		}
		if err != nil && !errors.Is(err, io.EOF) {
			fl.m.Log.Errorf("%s: %v", fl.path, err)
		}
		// At the end: checkpoint when due, then see whether the file was
		// rotated or truncated.
		fl.checkpoint(false)
		if fl.atEnd() {
			continue
		}
		if !sleep(ctx, time.Duration(fl.m.PollInterval)) {
			return
		}
	}
}

func sleep(ctx context.Context, d time.Duration) bool {
	select {
	case <-ctx.Done():
		return false
	case <-time.After(d):
		return true
	}
}

// lines reads the full lines of b (and what was left of the last read),
// and emits their events as one tracked group.
func (fl *follower) lines(b []byte) {
	if fl.skipping { // the rest of a line cut at maxLineBytes
		i := bytes.IndexByte(b, '\n')
		if i < 0 {
			fl.offset += int64(len(b))
			return
		}
		fl.offset += int64(i + 1)
		b, fl.skipping = b[i+1:], false
	}
	data := append(fl.partial, b...)
	var all []ml.Event
	now := time.Now()
	for {
		i := bytes.IndexByte(data, '\n')
		if i < 0 {
			break
		}
		if i > maxLineBytes {
			fl.st.cut.Incr(1) // no MTA line is that long: a crash's NULs
			data = data[i+1:]
			fl.offset += int64(i + 1)
			continue
		}
		line := string(bytes.TrimRight(data[:i], "\r"))
		data = data[i+1:]
		received := fl.base.Add(time.Duration(fl.offset - fl.baseOff))
		fl.offset += int64(i + 1)
		fl.st.lines.Incr(1)
		if line == "" {
			continue
		}
		evs, reason := fl.c.LineAt(line, now, received, fl.m.loc)
		if reason != "" {
			fl.st.refused(reason)
			continue
		}
		all = append(all, evs...)
	}
	if len(data) > maxLineBytes {
		// No newline in sight (a crash's block of NULs, a runaway
		// writer): cut the line, and skip the rest of it.
		fl.st.cut.Incr(1)
		fl.offset += int64(len(data))
		data, fl.skipping = nil, true
	}
	fl.partial = append([]byte(nil), data...)
	fl.emit(all)
}

// waitBelow waits until fewer than n batches are undelivered, or the
// plugin stops.
func (m *MailLog) waitBelow(n int64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for m.open >= n && m.ctx.Err() == nil {
		m.done.Wait()
	}
}

// checkpoint saves the offset and the correlation state once every event
// read so far was delivered: a crash after it replays nothing delivered
// before it, and the replayed lines land on their points again. A due
// checkpoint waits for the outputs (reading pauses meanwhile).
func (fl *follower) checkpoint(final bool) {
	if !final && time.Since(fl.lastCkpt) < time.Duration(fl.m.CheckpointInterval) {
		return
	}
	ok, dropped := fl.settled()
	if dropped && !final {
		fl.rewind()
	}
	if !ok {
		return
	}
	if fl.f != nil && fl.fp.Len < fingerprintBytes && fl.fp.matches(fl.f) {
		if fp, err := fingerprintOf(fl.f); err == nil {
			fl.fp = fp // the file grew: more of it identifies it
		}
	}
	q, err := fl.c.Snapshot()
	if err == nil {
		base := time.Now()
		s := state{Path: fl.path, Inode: fl.inode, Fingerprint: fl.fp, Offset: fl.offset, Queue: q, Base: base.UnixNano()}
		var b []byte
		b, err = json.Marshal(s)
		if err == nil {
			err = durable.WriteAtomic(fl.statePth, b)
		}
		if err == nil {
			fl.ckpt, fl.base, fl.baseOff = &s, base, fl.offset
		}
	}
	if err != nil {
		fl.m.Log.Errorf("%s: saving the state: %v", fl.path, err)
		return
	}
	fl.lastCkpt, fl.careful = time.Now(), false
}

// metricsOf makes the events' metrics.
func metricsOf(evs []ml.Event) []telegraf.Metric {
	ms := make([]telegraf.Metric, 0, len(evs))
	for i := range evs {
		ms = append(ms, evs[i].Metric())
	}
	return ms
}

// rewind goes back to the last checkpoint: its offset, its correlation
// state.
func (fl *follower) rewind() {
	c := fl.m.newCorrelator()
	if err := c.Restore(fl.ckpt.Queue); err != nil {
		fl.m.Log.Errorf("%s: restoring the last checkpoint: %v", fl.path, err)
		return
	}
	fl.m.Log.Warnf("%s: the outputs dropped events read after offset %d (their buffer was full): reading again from there, one batch at a time", fl.path, fl.ckpt.Offset)
	fl.rewound()
	if fl.f != nil {
		fl.f.Close()
		fl.f = nil
	}
	fl.c, fl.inode, fl.offset, fl.fp, fl.partial, fl.careful = c, fl.ckpt.Inode, fl.ckpt.Offset, fl.ckpt.Fingerprint, nil, true
	fl.base, fl.baseOff = time.Unix(0, fl.ckpt.Base), fl.ckpt.Offset
	fl.old, fl.skipping, fl.next = false, false, nil // open finds the checkpoint's file, at the path or rotated
}

// stats are one file's self-metrics (internal_maillog, tag file).
type stats struct {
	lines, events, open, evicted selfstat.Stat
	rejected, rewinds            selfstat.Stat
	lost, cut                    selfstat.Stat
	rejectedN                    atomic.Int64 // batches the outputs dropped
	mu                           sync.Mutex
	file                         string
	log                          telegraf.Logger
	reasons                      map[string]selfstat.Stat
}

func (m *MailLog) newStats(file string) *stats {
	s := newStats(file)
	s.log = m.Log
	return s
}

func newStats(file string) *stats {
	tags := map[string]string{"file": file}
	return &stats{
		lines:   selfstat.Register("maillog", "lines_read", tags),
		events:  selfstat.Register("maillog", "events_emitted", tags),
		open:    selfstat.Register("maillog", "queue_ids_open", tags),
		evicted: selfstat.Register("maillog", "queue_ids_evicted", tags),
		// Batches the outputs dropped (their buffer full): a file reads
		// them again from its last checkpoint (rewinds); a listener has
		// lost them.
		rejected: selfstat.Register("maillog", "batches_rejected", tags),
		rewinds:  selfstat.Register("maillog", "rewinds", tags),
		// Rotations whose earlier file was not found (its unread tail
		// lost), and lines cut (longer than the limit, or the end of a
		// rotated file without a newline).
		lost:    selfstat.Register("maillog", "rotations_lost", tags),
		cut:     selfstat.Register("maillog", "lines_cut", tags),
		file:    file,
		reasons: map[string]selfstat.Stat{},
	}
}

func (s *stats) refused(reason string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	st, ok := s.reasons[reason]
	if !ok {
		st = selfstat.Register("maillog_refused", "lines", map[string]string{"file": s.file, "reason": reason})
		s.reasons[reason] = st
		if s.log != nil { // once per reason: the counter says how many
			s.log.Warnf("%s: refused a line (%s); such lines are counted in internal_maillog_refused", s.file, reason)
		}
	}
	st.Incr(1)
}

func init() {
	inputs.Add("maillog", func() telegraf.Input {
		return &MailLog{
			PollInterval:       config.Duration(250 * time.Millisecond),
			RotateWait:         config.Duration(10 * time.Second),
			CheckpointInterval: config.Duration(10 * time.Second),
			Timezone:           "Local",
			MaxQueueIDs:        100000,
			QueueIDTTL:         config.Duration(7 * 24 * time.Hour),
			MaxUndelivered:     1000,
			MaxConnections:     128,
			ReadTimeout:        config.Duration(30 * time.Second),
			MaxHosts:           100,
			JournalIdentifiers: []string{"postfix*", "exim*"},
			Journalctl:         "journalctl",
		}
	})
}
