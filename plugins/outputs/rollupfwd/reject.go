package rollupfwd

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/influxdata/telegraf"
	"github.com/influxdata/telegraf/selfstat"

	"github.com/mailtick/mailtick/internal/pii"
)

// rejects is the spool folder's reject file, rejected.jsonl: one JSON
// object per refused point or batch, with the reason. It holds nothing
// personal (addresses are replaced, and a line the guard still finds
// suspect is left out, its keys kept), and it is bounded: past half of
// max_reject_bytes it is rotated to rejected.jsonl.1, whose records are
// then dropped and counted.
type rejects struct {
	mu       sync.Mutex
	path     string
	maxBytes int64
	log      telegraf.Logger
	f        *os.File
	size     int64
	records  int64 // in the current file
	older    int64 // in rejected.jsonl.1
	stats    map[string]selfstat.Stat
	dropped  selfstat.Stat
}

// rejectRecord is one line of the reject file.
type rejectRecord struct {
	Time         time.Time `json:"time"`
	Reason       string    `json:"reason"`
	Detail       string    `json:"detail"`
	Measurement  string    `json:"measurement,omitempty"`
	Tags         []string  `json:"tag_keys,omitempty"`
	Fields       []string  `json:"field_keys,omitempty"`
	Points       int       `json:"points"`
	Lines        string    `json:"lines,omitempty"` // addresses replaced
	LinesOmitted bool      `json:"lines_omitted,omitempty"`
}

func newRejects(dir string, maxBytes int64, log telegraf.Logger) *rejects {
	r := &rejects{path: filepath.Join(dir, "rejected.jsonl"), maxBytes: maxBytes, log: log, stats: make(map[string]selfstat.Stat),
		dropped: selfstat.Register("rollupfwd", "rejects_dropped", map[string]string{"spool_dir": dir})}
	if fi, err := os.Stat(r.path); err == nil {
		r.size = fi.Size()
	}
	return r
}

// add records a refusal of the metric m (nil for a refusal by the server,
// of the line-protocol lines).
func (r *rejects) add(reason, detail string, m telegraf.Metric, lines []byte) {
	points := max(1, bytes.Count(lines, []byte{'\n'}))
	rec := rejectRecord{Time: time.Now().UTC(), Reason: reason, Detail: scrub(detail), Points: points}
	if m != nil {
		rec.Measurement = m.Name()
		for _, t := range m.TagList() {
			rec.Tags = append(rec.Tags, t.Key)
		}
		for _, f := range m.FieldList() {
			rec.Fields = append(rec.Fields, f.Key)
		}
	}
	if len(lines) > maxRejectLines {
		lines = lines[:pii.SafeCut(string(lines), maxRejectLines)]
	}
	if safe := scrub(string(lines)); unsafeText(safe) == "" {
		rec.Lines = safe
	} else {
		rec.LinesOmitted = true
	}
	b, _ := json.Marshal(rec)
	b = append(b, '\n')

	r.mu.Lock()
	defer r.mu.Unlock()
	st, ok := r.stats[reason]
	if !ok {
		st = selfstat.Register("rollupfwd_rejected", "points", map[string]string{"reason": reason})
		r.stats[reason] = st
	}
	st.Incr(int64(points))
	if err := r.write(b); err != nil {
		r.dropped.Incr(1)
		r.log.Errorf("Cannot write the reject file %q (%v); rejected (%s): %s", r.path, err, reason, rec.Detail)
	}
}

// maxRejectLines bounds the text kept of one refused batch.
const maxRejectLines = 4096

func (r *rejects) write(b []byte) error {
	if r.size+int64(len(b)) > r.maxBytes/2 && r.size > 0 {
		if r.f != nil {
			r.f.Close()
			r.f = nil
		}
		if err := os.Rename(r.path, r.path+".1"); err != nil && !os.IsNotExist(err) {
			return err
		}
		r.dropped.Incr(r.older)
		r.older, r.records, r.size = r.records, 0, 0
	}
	if r.f == nil {
		f, err := os.OpenFile(r.path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o640)
		if err != nil {
			return err
		}
		r.f = f
	}
	if _, err := r.f.Write(b); err != nil {
		return err
	}
	r.size += int64(len(b))
	r.records++
	return nil
}

func (r *rejects) close() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.f != nil {
		r.f.Close()
		r.f = nil
	}
}

// scrub replaces every address in s by a placeholder.
func scrub(s string) string {
	if !pii.Contains(s) {
		return s
	}
	return string(pii.Replace(nil, s, func(dst []byte, m pii.Match, _ string) []byte {
		return append(append(append(dst, '['), m.Kind.String()...), ']')
	}, nil))
}
