package rollupfwd

import (
	"bytes"
	"context"
	"crypto/sha256"
	_ "embed"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/influxdata/telegraf"
	"github.com/influxdata/telegraf/config"
	"github.com/influxdata/telegraf/plugins/common/tls"
	"github.com/influxdata/telegraf/plugins/outputs"
	"github.com/influxdata/telegraf/plugins/serializers/influx"
	"github.com/influxdata/telegraf/selfstat"

	"github.com/mailtick/mailtick/plugins/common/keyset"
	"github.com/mailtick/mailtick/plugins/outputs/rollupfwd/internal/spool"
)

//go:embed sample.conf
var sampleConfig string

// RollupFwd forwards metrics to central InfluxDB servers through a durable
// disk spool, letting nothing personal leave.
type RollupFwd struct {
	URLs            []string        `toml:"urls"`
	Database        string          `toml:"database"`
	RetentionPolicy string          `toml:"retention_policy"`
	Username        config.Secret   `toml:"username"`
	Password        config.Secret   `toml:"password"`
	Organization    string          `toml:"organization"`
	Bucket          string          `toml:"bucket"`
	Token           config.Secret   `toml:"token"`
	CreateDatabase  bool            `toml:"create_database"`
	ContentEncoding string          `toml:"content_encoding"`
	Timeout         config.Duration `toml:"timeout"`
	RetryMin        config.Duration `toml:"retry_min"`
	RetryMax        config.Duration `toml:"retry_max"`

	SpoolDir       string          `toml:"spool_dir"`
	MaxSpoolBytes  config.Size     `toml:"max_spool_bytes"`
	SegmentBytes   config.Size     `toml:"segment_bytes"`
	SpoolFull      string          `toml:"spool_full"`
	Fsync          string          `toml:"fsync"`
	FsyncInterval  config.Duration `toml:"fsync_interval"`
	MaxRejectBytes config.Size     `toml:"max_reject_bytes"`

	AllowTags   []string `toml:"allow_tags"`
	AllowFields []string `toml:"allow_fields"`

	SkipUnchanged       config.Duration `toml:"skip_unchanged"`
	SkipUnchangedPoints int             `toml:"skip_unchanged_points"`

	tls.ClientConfig
	Log telegraf.Logger `toml:"-"`

	allowTags, allowFields map[string]bool
	serializer             influx.Serializer
	spool                  *spool.Spool
	dests                  []*destination
	rejects                *rejects
	openSegment            func(string) (*os.File, error) // tests inject read faults
	unchanged              *unchanged                     // nil: skip_unchanged = "0s"
	spoolLost              atomic.Bool                    // the spool lost records since the last Write
	cancel                 context.CancelFunc
	wg                     sync.WaitGroup

	spoolBytes, spoolSegments, droppedPoints selfstat.Stat
	pointsSpooled, pointsUnchanged           selfstat.Stat
	unchangedRemembered                      selfstat.Stat
}

const (
	fullBlock      = "block"
	fullDropOldest = "drop_oldest"
	fsyncBatch     = "batch"
	fsyncInterval  = "interval"
)

func (*RollupFwd) SampleConfig() string { return sampleConfig }

func (r *RollupFwd) Init() error {
	if len(r.URLs) == 0 {
		return errors.New(`"urls" must name at least one InfluxDB`)
	}
	v2 := r.Bucket != "" || r.Organization != ""
	for _, u := range r.URLs {
		pu, err := url.Parse(u)
		if err != nil || (pu.Scheme != "http" && pu.Scheme != "https") || pu.Host == "" {
			return fmt.Errorf("invalid %q value %q: want http(s)://host:port", "urls", u)
		}
	}
	switch {
	case v2 && (r.Bucket == "" || r.Organization == ""):
		return errors.New(`InfluxDB 2.x/3.x needs both "organization" and "bucket"`)
	case v2 && r.Database != "":
		return errors.New(`set "database" (InfluxDB 1.x) or "organization"/"bucket" (2.x/3.x), not both`)
	case !v2 && r.Database == "":
		return errors.New(`"database" (InfluxDB 1.x) or "organization" and "bucket" (2.x/3.x) must be set`)
	}
	if r.SpoolDir == "" {
		return fmt.Errorf("invalid %q value %q: must not be empty", "spool_dir", r.SpoolDir)
	}
	// The segment being written is deleted only once it is full and sent:
	// the spool must hold at least two of them, or it would never free.
	if r.MaxSpoolBytes <= 0 || r.SegmentBytes <= 0 || r.SegmentBytes > r.MaxSpoolBytes/2 {
		return fmt.Errorf("invalid %q value %d or %q value %d: both > 0, segments at most half the spool",
			"max_spool_bytes", r.MaxSpoolBytes, "segment_bytes", r.SegmentBytes)
	}
	if r.MaxRejectBytes < 4096 {
		return fmt.Errorf("invalid %q value %d: at least 4KiB", "max_reject_bytes", r.MaxRejectBytes)
	}
	if r.SpoolFull != fullBlock && r.SpoolFull != fullDropOldest {
		return fmt.Errorf("invalid %q value %q: want %q or %q", "spool_full", r.SpoolFull, fullBlock, fullDropOldest)
	}
	if r.Fsync != fsyncBatch && r.Fsync != fsyncInterval {
		return fmt.Errorf("invalid %q value %q: want %q or %q", "fsync", r.Fsync, fsyncBatch, fsyncInterval)
	}
	if r.Fsync == fsyncInterval && r.FsyncInterval <= 0 {
		return fmt.Errorf("invalid %q value %s: must be > 0", "fsync_interval", time.Duration(r.FsyncInterval))
	}
	if r.ContentEncoding != "gzip" && r.ContentEncoding != "identity" {
		return fmt.Errorf("invalid %q value %q: want \"gzip\" or \"identity\"", "content_encoding", r.ContentEncoding)
	}
	if r.SkipUnchanged < 0 {
		return fmt.Errorf("invalid %q value %s: must be >= 0 (\"0s\" spools every point)", "skip_unchanged", time.Duration(r.SkipUnchanged))
	}
	if r.SkipUnchanged > 0 && r.SkipUnchangedPoints < 2 {
		return fmt.Errorf("invalid %q value %d: at least 2", "skip_unchanged_points", r.SkipUnchangedPoints)
	}
	if r.SkipUnchanged > 0 {
		r.unchanged = newUnchanged(time.Duration(r.SkipUnchanged), r.SkipUnchangedPoints)
	}
	if r.Timeout <= 0 || r.RetryMin <= 0 || r.RetryMax < r.RetryMin {
		return fmt.Errorf("invalid %q, %q or %q: all > 0 and retry_max >= retry_min", "timeout", "retry_min", "retry_max")
	}
	// Deny by default: empty lists let nothing through, which is safe and
	// makes a forgotten list show at once (every metric rejected, counted).
	r.allowTags, r.allowFields = keyset.Of(r.AllowTags), keyset.Of(r.AllowFields)
	if len(r.AllowFields) == 0 {
		r.Log.Warnf(`"allow_fields" is empty: every metric will be rejected (deny by default)`)
	}
	r.serializer = influx.Serializer{UintSupport: true}
	return r.serializer.Init()
}

// Connect opens and recovers the spool and starts one sender per URL. No
// network I/O is needed to start: a central side that is down is the case
// the spool is for.
func (r *RollupFwd) Connect() error {
	s, cut, err := spool.Open(r.SpoolDir, int64(r.MaxSpoolBytes), int64(r.SegmentBytes), r.Fsync == fsyncBatch, r.Log)
	if err != nil {
		return fmt.Errorf("opening %q %q: %w", "spool_dir", r.SpoolDir, err)
	}
	if cut > 0 {
		r.Log.Warnf("Spool %q: skipped a broken tail of %d bytes (a write cut short by a crash); every intact record was kept", r.SpoolDir, cut)
	}
	if r.openSegment != nil {
		s.SetOpen(r.openSegment)
	}
	r.spool = s
	onLost := func(lost spool.Dropped, err error) {
		r.spoolLost.Store(true)
		r.droppedPoints.Incr(lost.Records)
		r.Log.Errorf("Syncing spool %q: %v; %s", r.SpoolDir, err, lost)
	}
	s.SetOnLost(onLost)
	r.rejects = newRejects(r.SpoolDir, int64(r.MaxRejectBytes), r.Log)
	tags := map[string]string{"spool_dir": r.SpoolDir}
	r.spoolBytes = selfstat.Register("rollupfwd", "spool_bytes", tags)
	r.spoolSegments = selfstat.Register("rollupfwd", "spool_segments", tags)
	r.droppedPoints = selfstat.Register("rollupfwd", "spool_dropped_records", tags)
	r.pointsSpooled = selfstat.Register("rollupfwd", "points_spooled", tags)
	r.pointsUnchanged = selfstat.Register("rollupfwd", "points_unchanged", tags)
	r.unchangedRemembered = selfstat.Register("rollupfwd", "unchanged_remembered", tags)

	tlsCfg, err := r.ClientConfig.TLSConfig()
	if err != nil {
		return fmt.Errorf("invalid TLS options: %w", err)
	}
	auth, err := r.authorizer()
	if err != nil {
		return err
	}
	client := &http.Client{Timeout: time.Duration(r.Timeout), Transport: &http.Transport{TLSClientConfig: tlsCfg, Proxy: http.ProxyFromEnvironment}}

	ctx, cancel := context.WithCancel(context.Background())
	r.cancel = cancel
	for _, u := range r.URLs {
		base := strings.TrimSuffix(u, "/")
		dtags := map[string]string{"url": base}
		d := &destination{
			url: base, write: r.writeURL(base), auth: auth, client: client,
			gzip: r.ContentEncoding == "gzip", spool: s, log: r.Log, reject: r.rejects,
			name:       cursorName(base),
			backoffMin: time.Duration(r.RetryMin), backoffMax: time.Duration(r.RetryMax),
			sent:       selfstat.Register("rollupfwd", "points_sent", dtags),
			retries:    selfstat.Register("rollupfwd", "retries", dtags),
			oldestAge:  selfstat.Register("rollupfwd", "oldest_unsent_age_ns", dtags),
			lostBytes:  selfstat.Register("rollupfwd", "spool_lost_bytes", dtags),
			readErrors: selfstat.Register("rollupfwd", "spool_read_errors", dtags),
		}
		if r.CreateDatabase && r.Database != "" {
			d.missingDB = func(ctx context.Context) { createDatabase(ctx, d.client, d.url, r.Database, d.auth, r.Log) }
		}
		pos, err := s.Cursor(d.name)
		if err != nil {
			cancel()
			return fmt.Errorf("reading cursor of %q: %w", base, err)
		}
		d.cursor = pos
		r.dests = append(r.dests, d)
	}
	for _, d := range r.dests {
		r.wg.Add(1)
		go func() {
			defer r.wg.Done()
			if d.missingDB != nil {
				d.missingDB(ctx)
			}
			d.run(ctx)
		}()
	}
	if r.Fsync == fsyncInterval {
		r.wg.Add(1)
		go func() {
			defer r.wg.Done()
			s.SyncLoop(ctx, time.Duration(r.FsyncInterval), onLost)
		}()
	}
	r.updateStats()
	return nil
}

// cursorName names a destination's cursor in the spool after its URL.
func cursorName(url string) string {
	sum := sha256.Sum256([]byte(strings.TrimSuffix(url, "/")))
	return hex.EncodeToString(sum[:8])
}

func (r *RollupFwd) writeURL(base string) string {
	q := url.Values{"precision": {"ns"}}
	if r.Database != "" {
		q.Set("db", r.Database)
		if r.RetentionPolicy != "" {
			q.Set("rp", r.RetentionPolicy)
		}
		return base + "/write?" + q.Encode()
	}
	q.Set("org", r.Organization)
	q.Set("bucket", r.Bucket)
	return base + "/api/v2/write?" + q.Encode()
}

// authorizer reads the credentials once and returns what sets them on a
// request.
func (r *RollupFwd) authorizer() (func(*http.Request), error) {
	if !r.Token.Empty() {
		tok, err := r.Token.Get()
		if err != nil {
			return nil, fmt.Errorf("reading %q: %w", "token", err)
		}
		header := "Token " + tok.String()
		tok.Destroy()
		return func(req *http.Request) { req.Header.Set("Authorization", header) }, nil
	}
	if !r.Username.Empty() {
		u, err := r.Username.Get()
		if err != nil {
			return nil, fmt.Errorf("reading %q: %w", "username", err)
		}
		p, err := r.Password.Get()
		if err != nil {
			return nil, fmt.Errorf("reading %q: %w", "password", err)
		}
		user, pass := u.String(), p.String()
		u.Destroy()
		p.Destroy()
		return func(req *http.Request) { req.SetBasicAuth(user, pass) }, nil
	}
	return func(*http.Request) {}, nil
}

func (r *RollupFwd) updateStats() {
	size, segs := r.spool.Stats()
	r.spoolBytes.Set(size)
	r.spoolSegments.Set(int64(segs))
	now := time.Now()
	for _, d := range r.dests {
		d.oldestAge.Set(int64(d.age(now)))
	}
}

// Write guards the batch, appends what may leave to the spool and returns
// once it is there (and synced, with fsync = "batch"). An error leaves the
// metrics in Telegraf's buffer, to be written again: the same metrics (and
// maybe more) come back, refused points included. So the points the guard
// refuses are recorded (reject file, counters) only when Write succeeds,
// once, and a failed Write records nothing; the same holds for the points
// skipped as unchanged and for remembering what was spooled. A batch with
// nothing to spool (refused or unchanged) succeeds at once, so that
// Telegraf drops it.
func (r *RollupFwd) Write(metrics []telegraf.Metric) error {
	if r.unchanged != nil && r.spoolLost.Swap(false) {
		r.unchanged.forget()
	}
	var buf bytes.Buffer
	var minT, maxT int64
	var refused []refusal
	var spooled []digest // remembered once Write succeeds
	var batch map[uint64]uint64
	skipped := 0
	n := 0
	for _, m := range metrics {
		if reason, detail := r.guard(m); reason != "" {
			refused = append(refused, refusal{reason: reason, detail: detail, m: m, lines: true})
			continue
		}
		var d digest
		if r.unchanged != nil {
			d.key, d.values = r.unchanged.digest(m)
			if v, ok := batch[d.key]; (ok && v == d.values) || (!ok && r.unchanged.seen(d.key, d.values)) {
				skipped++
				continue
			}
		}
		line, err := r.serializer.Serialize(m)
		if err != nil {
			refused = append(refused, refusal{reason: "unserializable", detail: err.Error(), m: m})
			continue
		}
		if r.unchanged != nil {
			if batch == nil {
				batch = make(map[uint64]uint64, len(metrics))
			}
			batch[d.key] = d.values
			spooled = append(spooled, d)
		}
		buf.Write(line)
		t := m.Time().UnixNano()
		if n == 0 || t < minT {
			minT = t
		}
		if n == 0 || t > maxT {
			maxT = t
		}
		n++
	}
	if n > 0 {
		lost, err := r.spool.Append(buf.Bytes(), minT, maxT, r.SpoolFull == fullDropOldest)
		if lost.Records > 0 {
			r.droppedPoints.Incr(lost.Records)
			r.Log.Errorf("Spool full (max_spool_bytes %d, or its filesystem), the oldest records go: %s", r.MaxSpoolBytes, lost)
			if r.unchanged != nil {
				r.unchanged.forget() // central may lack what was remembered
			}
		}
		r.updateStats()
		if errors.Is(err, spool.ErrFull) {
			return fmt.Errorf("spool %q is full (%v; max_spool_bytes %d, spool_full = %q): keeping the metrics in Telegraf's buffer until the central side catches up", r.SpoolDir, err, r.MaxSpoolBytes, r.SpoolFull)
		}
		if err != nil {
			return fmt.Errorf("writing to spool %q: %w", r.SpoolDir, err)
		}
	}
	r.pointsSpooled.Incr(int64(n))
	if r.unchanged != nil {
		for _, d := range spooled {
			r.unchanged.remember(d.key, d.values)
		}
		r.pointsUnchanged.Incr(int64(skipped))
		r.unchangedRemembered.Set(int64(r.unchanged.size()))
	}
	r.record(refused)
	return nil
}

// digest is a point's identity and values, as unchanged keeps them.
type digest struct{ key, values uint64 }

// refusal is a point Write refused, recorded once the Write succeeds.
type refusal struct {
	reason, detail string
	m              telegraf.Metric
	lines          bool // keep its line protocol (scrubbed) in the record
}

// record writes the refusals of a successful Write to the reject file and
// counts them.
func (r *RollupFwd) record(refused []refusal) {
	for _, f := range refused {
		var line []byte
		if f.lines {
			line, _ = r.serializer.Serialize(f.m)
		}
		r.rejects.add(f.reason, f.detail, f.m, line)
	}
}

// Close stops the senders; what is not sent stays in the spool for the
// next start.
func (r *RollupFwd) Close() error {
	if r.cancel != nil {
		r.cancel()
	}
	r.wg.Wait()
	if r.rejects != nil {
		r.rejects.close()
	}
	if r.spool != nil {
		return r.spool.Close()
	}
	return nil
}

func init() {
	outputs.Add("rollupfwd", func() telegraf.Output { return newRollupFwd() })
}

func newRollupFwd() *RollupFwd {
	return &RollupFwd{
		CreateDatabase:  true,
		ContentEncoding: "gzip",
		Timeout:         config.Duration(10 * time.Second),
		RetryMin:        config.Duration(time.Second),
		RetryMax:        config.Duration(time.Minute),
		MaxSpoolBytes:   config.Size(4 << 30),
		SegmentBytes:    config.Size(16 << 20),
		SpoolFull:       fullBlock,
		Fsync:           fsyncBatch,
		FsyncInterval:   config.Duration(time.Second),
		MaxRejectBytes:  config.Size(16 << 20),

		SkipUnchanged:       config.Duration(6 * time.Hour),
		SkipUnchangedPoints: 1000000,
	}
}
