package rollupfwd

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/influxdata/telegraf"
	"github.com/influxdata/telegraf/selfstat"
)

// destination is one central InfluxDB with its own cursor in the spool.
type destination struct {
	url    string
	write  string // the write endpoint with its query
	auth   func(*http.Request)
	client *http.Client
	gzip   bool

	spool      *spool
	cursorPath string
	// missingDB, if set, is called when the server says the database does
	// not exist (it came back empty, or was dropped): it creates it.
	missingDB  func(ctx context.Context)
	log        telegraf.Logger
	reject     *rejects
	backoffMin time.Duration
	backoffMax time.Duration

	mu     sync.Mutex
	cursor position
	oldest int64 // event time (ns) of the oldest unsent record, 0 if none

	sent, retries, oldestAge selfstat.Stat
}

// errBadData is a refusal of the points themselves (400/422): resending
// them as they are would fail forever.
type errBadData struct{ reason string }

func (e *errBadData) Error() string { return e.reason }

// errTooLarge asks for a smaller batch (413).
var errTooLarge = errors.New("request entity too large")

func (d *destination) position() position {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.cursor
}

// loadCursor reads where this destination stopped last time.
func (d *destination) loadCursor() error {
	b, err := os.ReadFile(d.cursorPath)
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		return err
	}
	var p position
	if err := json.Unmarshal(b, &p); err != nil {
		d.log.Warnf("Cursor %q is unreadable (%v): starting from the oldest record; points may be sent twice (the same points, overwritten)", d.cursorPath, err)
		return nil
	}
	d.cursor = p
	return nil
}

// saveCursor writes the cursor atomically: a crash leaves the old one or
// the new one, never half of either.
func (d *destination) saveCursor(p position) error {
	b, _ := json.Marshal(p)
	tmp := d.cursorPath + ".tmp"
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o640)
	if err != nil {
		return err
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(tmp, d.cursorPath)
}

// run drains the spool to the destination, in order, until ctx ends.
func (d *destination) run(ctx context.Context, release func()) {
	var seg *os.File
	var segSeq uint64
	defer func() {
		if seg != nil {
			seg.Close()
		}
	}()
	for ctx.Err() == nil {
		wake := d.spool.wait()
		pos, ok := d.spool.next(d.position())
		if !ok {
			d.setOldest(0)
			select {
			case <-ctx.Done():
				return
			case <-wake:
			}
			continue
		}
		if seg == nil || segSeq != pos.Seg {
			if seg != nil {
				seg.Close()
			}
			f, err := os.Open(segPath(d.spool.dir, pos.Seg))
			if err != nil { // deleted under us by drop_oldest: go on from the next
				seg = nil
				d.setCursor(position{Seg: pos.Seg + 1})
				continue
			}
			seg, segSeq = f, pos.Seg
		}
		r := recordReader{f: seg}
		minT, _, payload, err := r.read(pos.Off)
		if err != nil {
			d.log.Errorf("Spool segment %d is broken at offset %d (%v): skipping the rest of it", pos.Seg, pos.Off, err)
			d.setCursor(position{Seg: pos.Seg + 1})
			continue
		}
		d.setOldest(minT)
		next := position{Seg: pos.Seg, Off: pos.Off + headerSize + int64(len(payload))}
		// Backfilling: more records of this segment go in the same request.
		for len(payload) < maxRequestBytes {
			p, ok := d.spool.next(next)
			if !ok || p.Seg != next.Seg {
				break
			}
			_, _, more, err := r.read(p.Off)
			if err != nil {
				break // the next round reports it
			}
			payload = append(payload, more...)
			next.Off += headerSize + int64(len(more))
		}
		if !d.deliver(ctx, payload) {
			return // stopping
		}
		if err := d.saveCursor(next); err != nil {
			d.log.Errorf("Saving cursor %q: %v", d.cursorPath, err)
		}
		d.setCursor(next)
		release()
	}
}

// maxRequestBytes bounds what one write request carries when records queue.
const maxRequestBytes = 2 << 20

func (d *destination) setCursor(p position) {
	d.mu.Lock()
	d.cursor = p
	d.mu.Unlock()
}

func (d *destination) setOldest(t int64) {
	d.mu.Lock()
	d.oldest = t
	d.mu.Unlock()
}

// age is how old the oldest unsent point is.
func (d *destination) age(now time.Time) time.Duration {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.oldest == 0 {
		return 0
	}
	return now.Sub(time.Unix(0, d.oldest))
}

// deliver sends one record, retrying forever on server and network
// errors, splitting on refusals to isolate the bad points. It returns
// false only when ctx ended.
func (d *destination) deliver(ctx context.Context, payload []byte) bool {
	for attempt := 0; ; attempt++ {
		err := d.post(ctx, payload)
		var bad *errBadData
		switch {
		case err == nil:
			d.sent.Incr(int64(bytes.Count(payload, []byte{'\n'})))
			return true
		case errors.As(err, &bad) || errors.Is(err, errTooLarge):
			return d.split(ctx, payload, err)
		case ctx.Err() != nil:
			return false
		}
		d.retries.Incr(1)
		if d.missingDB != nil && strings.Contains(err.Error(), "database not found") {
			d.missingDB(ctx)
		}
		wait := d.backoff(attempt)
		if attempt == 0 || attempt%10 == 0 {
			d.log.Warnf("Writing to %q failed (attempt %d), retrying in %s: %v", d.url, attempt+1, wait.Round(time.Millisecond), err)
		}
		select {
		case <-ctx.Done():
			return false
		case <-time.After(wait):
		}
	}
}

// split halves a refused batch until each refused point stands alone; those
// go to the reject file with the server's reason, the rest are written.
func (d *destination) split(ctx context.Context, payload []byte, cause error) bool {
	lines := bytes.SplitAfter(bytes.TrimSuffix(payload, []byte{'\n'}), []byte{'\n'})
	if len(lines) == 1 {
		if errors.Is(cause, errTooLarge) {
			d.reject.add("too_large", d.url+": "+cause.Error(), payload)
		} else {
			d.reject.add("refused", d.url+": "+cause.Error(), payload)
		}
		return true
	}
	half := len(lines) / 2
	for _, part := range [][][]byte{lines[:half], lines[half:]} {
		if !d.deliver(ctx, bytes.Join(part, nil)) {
			return false
		}
	}
	return true
}

func (d *destination) backoff(attempt int) time.Duration {
	wait := d.backoffMin << min(attempt, 20)
	if wait > d.backoffMax || wait <= 0 {
		wait = d.backoffMax
	}
	// Full jitter: agents of every DC do not retry in step after an outage.
	return wait/2 + rand.N(wait/2+1)
}

func (d *destination) post(ctx context.Context, payload []byte) error {
	body := payload
	if d.gzip {
		var buf bytes.Buffer
		zw, _ := gzip.NewWriterLevel(&buf, gzip.BestSpeed)
		zw.Write(payload)
		zw.Close()
		body = buf.Bytes()
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, d.write, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "text/plain; charset=utf-8")
	if d.gzip {
		req.Header.Set("Content-Encoding", "gzip")
	}
	d.auth(req)
	resp, err := d.client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	switch {
	case resp.StatusCode/100 == 2:
		return nil
	case resp.StatusCode == http.StatusBadRequest || resp.StatusCode == http.StatusUnprocessableEntity:
		return &errBadData{reason: fmt.Sprintf("%s: %s", resp.Status, serverError(msg))}
	case resp.StatusCode == http.StatusRequestEntityTooLarge:
		return errTooLarge
	default:
		return fmt.Errorf("%s: %s", resp.Status, serverError(msg))
	}
}

// serverError pulls the message out of InfluxDB's JSON error body.
func serverError(body []byte) string {
	var e struct {
		Error   string `json:"error"`
		Message string `json:"message"`
	}
	if json.Unmarshal(body, &e) == nil {
		if e.Error != "" {
			return e.Error
		}
		if e.Message != "" {
			return e.Message
		}
	}
	return strings.TrimSpace(string(body))
}

// createDatabase asks an InfluxDB 1.x to create the database; errors are
// only logged (the database may exist, or the user may not be allowed).
func createDatabase(ctx context.Context, client *http.Client, base, db string, auth func(*http.Request), log telegraf.Logger) {
	form := url.Values{"q": {fmt.Sprintf("CREATE DATABASE %q", db)}}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, base+"/query", strings.NewReader(form.Encode()))
	if err != nil {
		return
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	auth(req)
	resp, err := client.Do(req)
	if err != nil {
		log.Debugf("Creating database %q on %q: %v (the sender retries writes)", db, base, err)
		return
	}
	resp.Body.Close()
}

// rejects is the local reject file: one JSON object per refused point or
// batch, with the reason.
type rejects struct {
	mu    sync.Mutex
	path  string
	log   telegraf.Logger
	stats map[string]selfstat.Stat
}

func newRejects(dir string, log telegraf.Logger) *rejects {
	return &rejects{path: filepath.Join(dir, "rejected.jsonl"), log: log, stats: make(map[string]selfstat.Stat)}
}

func (r *rejects) add(reason, detail string, line []byte) {
	r.mu.Lock()
	defer r.mu.Unlock()
	st, ok := r.stats[reason]
	if !ok {
		st = selfstat.Register("rollupfwd_rejected", "points", map[string]string{"reason": reason})
		r.stats[reason] = st
	}
	st.Incr(int64(max(1, bytes.Count(line, []byte{'\n'}))))
	rec, _ := json.Marshal(struct {
		Time   time.Time `json:"time"`
		Reason string    `json:"reason"`
		Detail string    `json:"detail"`
		Lines  string    `json:"lines"`
	}{time.Now().UTC(), reason, detail, string(line)})
	f, err := os.OpenFile(r.path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o640)
	if err != nil {
		r.log.Errorf("Cannot write the reject file %q (%v); rejected (%s): %s", r.path, err, reason, detail)
		return
	}
	defer f.Close()
	if _, err := f.Write(append(rec, '\n')); err != nil {
		r.log.Errorf("Cannot write the reject file %q: %v", r.path, err)
	}
}
