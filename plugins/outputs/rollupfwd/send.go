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
	"strings"
	"sync"
	"time"

	"github.com/influxdata/telegraf"
	"github.com/influxdata/telegraf/selfstat"

	"github.com/mailtick/mailtick/plugins/outputs/rollupfwd/internal/spool"
)

// destination is one central InfluxDB with its own cursor in the spool.
type destination struct {
	url    string
	write  string // the write endpoint with its query
	auth   func(*http.Request)
	client *http.Client
	gzip   bool

	spool *spool.Spool
	name  string // of its cursor in the spool
	// missingDB, if set, is called when the server says the database does
	// not exist (it came back empty, or was dropped): it creates it.
	missingDB  func(ctx context.Context)
	log        telegraf.Logger
	reject     *rejects
	backoffMin time.Duration
	backoffMax time.Duration

	mu     sync.Mutex
	cursor spool.Position
	oldest int64 // event time (ns) of the oldest unsent record, 0 if none

	sent, retries, oldestAge, lostBytes, readErrors selfstat.Stat
}

// errBadData is a refusal of the points themselves (400/422): resending
// them as they are would fail forever.
type errBadData struct{ reason string }

func (e *errBadData) Error() string { return e.reason }

// errTooLarge asks for a smaller batch (413).
var errTooLarge = errors.New("request entity too large")

func (d *destination) position() spool.Position {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.cursor
}

// run drains the spool to the destination, in order, until ctx ends.
func (d *destination) run(ctx context.Context) {
	r := d.spool.Reader()
	defer r.Close()
	pos := d.position()
	for attempt := 0; ctx.Err() == nil; {
		wake := d.spool.Wait()
		rec, err := r.Read(pos)
		switch {
		case errors.Is(err, spool.ErrCaughtUp):
			d.setOldest(0)
			select {
			case <-ctx.Done():
				return
			case <-wake:
			}
			continue
		case err != nil:
			// Not "deleted": the data is there but cannot be read now
			// (EMFILE, EACCES, EIO). Retry; never skip it.
			d.readErrors.Incr(1)
			wait := d.backoff(attempt)
			if attempt == 0 || attempt%10 == 0 {
				d.log.Errorf("Reading the spool at segment %d offset %d failed (attempt %d), retrying in %s: %v", pos.Seg, pos.Off, attempt+1, wait.Round(time.Millisecond), err)
			}
			attempt++
			select {
			case <-ctx.Done():
				return
			case <-time.After(wait):
			}
			continue
		}
		attempt = 0
		if rec.Gap != nil {
			d.lostBytes.Incr(rec.Gap.To - rec.Gap.From)
			d.log.Errorf("Skipping unreadable spool data for %q: %v", d.url, rec.Gap)
		}
		next, payload := rec.Next, rec.Payload
		if payload != nil {
			d.setOldest(rec.MinT)
			// Backfilling: more records of this segment go in the same request.
			for len(payload) < maxRequestBytes {
				more, err := r.Read(next)
				if err != nil || more.Gap != nil || more.Next.Seg != next.Seg {
					break // the next round takes it, and reports a gap
				}
				payload = append(payload, more.Payload...)
				next = more.Next
			}
			if !d.deliver(ctx, payload) {
				return // stopping
			}
		}
		if err := d.spool.Commit(d.name, next); err != nil {
			d.log.Errorf("Saving the cursor of %q: %v", d.url, err)
		}
		d.setCursor(next)
		pos = next
	}
}

// maxRequestBytes bounds what one write request carries when records queue.
const maxRequestBytes = 2 << 20

func (d *destination) setCursor(p spool.Position) {
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
			d.reject.add("too_large", d.url+": "+cause.Error(), nil, payload)
		} else {
			d.reject.add("refused", d.url+": "+cause.Error(), nil, payload)
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
