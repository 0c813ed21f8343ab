// Package latencyhist is the Kapacitor UDF behind tickscripts/mail_latency_hist.tick:
// it turns a batch of points into latency bucket counts per window of one
// level (internal/latency), with the window start as each count's time.
//
// Kapacitor 1.5 cannot do this itself: InfluxQL cannot GROUP BY a computed
// bucket, a batch aggregate takes the batch's time rather than its
// window's, and neither InfluxQL nor TICKscript knows calendar months or
// time zones. The UDF runs as `mailtick udf mail_latency_hist` (kapacitor.conf
// [udf.functions.mail_latency_hist]), one process per task, on stdin/stdout.
//
// A batch is either raw events (option field, e.g. latency_ms: each point
// counts one in its bucket; or option stages, one histogram per stage,
// tagged stage) or, without either, counts of the level below (bucket and
// count: each point adds its count). Windows that start before the batch's query
// period are left out: the query saw only part of them, and their whole
// count is already written. The window that is still open is written as
// far as it goes, and again, larger, on the next run.
package latencyhist

import (
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
	"time"

	"github.com/influxdata/kapacitor/udf/agent"

	"github.com/mailtick/mailtick/internal/latency"
)

// Handler is the UDF's agent.Handler. Kapacitor calls it from one goroutine.
type Handler struct {
	out chan<- *agent.Response

	level  latency.Level
	loc    *time.Location
	period time.Duration
	field  string  // "": the points are counts of the level below
	stages []stage // instead of field: a histogram per stage

	begin   *agent.BeginBatch
	counts  map[key]int64
	skipped int // points of this batch without a usable value
	log     io.Writer
}

type key struct {
	start  int64
	stage  string
	bucket string
}

// stage is one part of a latency (Postfix's delays=a/b/c/d: before the
// queue manager, in the queue, connection setup, transmission) and the
// field that holds it.
type stage struct{ name, field string }

// Options: what a TICKscript may give @mail_latency_hist().
var options = map[string]*agent.OptionInfo{
	"window": {ValueTypes: []agent.ValueType{agent.ValueType_STRING}},
	"tz":     {ValueTypes: []agent.ValueType{agent.ValueType_STRING}},
	"period": {ValueTypes: []agent.ValueType{agent.ValueType_DURATION}},
	"field":  {ValueTypes: []agent.ValueType{agent.ValueType_STRING}},
	"stages": {ValueTypes: []agent.ValueType{agent.ValueType_STRING}},
}

// New is a Handler answering on out and logging to log (Kapacitor logs
// what a UDF writes to its stderr).
func New(out chan<- *agent.Response, log io.Writer) *Handler {
	return &Handler{out: out, loc: time.UTC, log: log}
}

// Info says: batches in, points out, and the options.
func (h *Handler) Info() (*agent.InfoResponse, error) {
	return &agent.InfoResponse{Wants: agent.EdgeType_BATCH, Provides: agent.EdgeType_STREAM, Options: options}, nil
}

// Init reads the options. window and period are required: period must be
// the query's, so that windows the query saw only part of are left out.
func (h *Handler) Init(r *agent.InitRequest) (*agent.InitResponse, error) {
	err := h.init(r.Options)
	if err != nil {
		return &agent.InitResponse{Success: false, Error: err.Error()}, nil
	}
	return &agent.InitResponse{Success: true}, nil
}

func (h *Handler) init(opts []*agent.Option) error {
	window, tz := "", "UTC"
	for _, o := range opts {
		v := o.Values[0].Value
		switch o.Name {
		case "window":
			window = v.(*agent.OptionValue_StringValue).StringValue
		case "tz":
			tz = v.(*agent.OptionValue_StringValue).StringValue
		case "period":
			h.period = time.Duration(v.(*agent.OptionValue_DurationValue).DurationValue)
		case "field":
			h.field = v.(*agent.OptionValue_StringValue).StringValue
		case "stages":
			spec := v.(*agent.OptionValue_StringValue).StringValue
			for _, kv := range strings.Fields(spec) {
				name, field, ok := strings.Cut(kv, "=")
				if !ok || name == "" || field == "" {
					return fmt.Errorf("mail_latency_hist: invalid stages %q: want space-separated stage=field pairs, e.g. 'in_qmgr=delay_in_qmgr_ms'", spec)
				}
				h.stages = append(h.stages, stage{name, field})
			}
		}
	}
	if h.field != "" && len(h.stages) > 0 {
		return fmt.Errorf("mail_latency_hist: field %q and stages: give one (with stages, field = '')", h.field)
	}
	var err error
	if h.level, err = latency.ParseLevel(window); err != nil {
		return fmt.Errorf("mail_latency_hist: %w", err)
	}
	if h.loc, err = time.LoadLocation(tz); err != nil {
		return fmt.Errorf("mail_latency_hist: invalid tz %q: %w", tz, err)
	}
	if h.period <= 0 {
		return fmt.Errorf("mail_latency_hist: invalid period %v: give the query's period, > 0", h.period)
	}
	return nil
}

// Snapshot: the handler keeps nothing between batches.
func (h *Handler) Snapshot() (*agent.SnapshotResponse, error) {
	return &agent.SnapshotResponse{}, nil
}

// Restore: nothing to restore.
func (h *Handler) Restore(*agent.RestoreRequest) (*agent.RestoreResponse, error) {
	return &agent.RestoreResponse{Success: true}, nil
}

// BeginBatch starts counting a batch.
func (h *Handler) BeginBatch(b *agent.BeginBatch) error {
	h.begin, h.counts = b, map[key]int64{}
	return nil
}

// Point counts one point of the batch.
func (h *Handler) Point(p *agent.Point) error {
	if h.begin == nil {
		return errors.New("mail_latency_hist: a point outside a batch: use it after a batch query")
	}
	start := h.level.Start(time.Unix(0, p.Time), h.loc).UnixNano()
	if len(h.stages) > 0 {
		counted := false
		for _, st := range h.stages {
			if x, ok := number(p, st.field); ok {
				h.counts[key{start, st.name, latency.Tag(x)}]++
				counted = true
			}
		}
		if !counted {
			h.skipped++
		}
		return nil
	}
	if h.field != "" {
		x, ok := number(p, h.field)
		if !ok {
			h.skipped++
			return nil
		}
		h.counts[key{start, "", latency.Tag(x)}]++
		return nil
	}
	// The bucket is a tag of the point's series: a column of the query
	// ("SELECT count, bucket") or a tag of its group.
	n, ok := number(p, "count")
	bucket, isCol := p.FieldsString["bucket"]
	if !isCol {
		bucket = p.Tags["bucket"]
	}
	if _, err := latency.ParseTag(bucket); !ok || err != nil || n < 0 {
		h.skipped++
		return nil
	}
	h.counts[key{start, "", bucket}] += int64(n)
	return nil
}

func (h *Handler) valueName() string {
	if h.field != "" {
		return h.field
	}
	if len(h.stages) > 0 {
		var fields []string
		for _, st := range h.stages {
			fields = append(fields, st.field)
		}
		return strings.Join(fields, ", ")
	}
	return "count"
}

func number(p *agent.Point, field string) (float64, bool) {
	if v, ok := p.FieldsDouble[field]; ok {
		return v, true
	}
	if v, ok := p.FieldsInt[field]; ok {
		return float64(v), true
	}
	return 0, false
}

// EndBatch writes the batch's counts, one point per window and bucket,
// windows the query saw whole or still open.
func (h *Handler) EndBatch(end *agent.EndBatch) error {
	if h.begin == nil {
		return errors.New("mail_latency_hist: a batch ended that did not begin")
	}
	from := time.Unix(0, end.Tmax).Add(-h.period).UnixNano()
	keys := make([]key, 0, len(h.counts))
	for k := range h.counts {
		if k.start >= from {
			keys = append(keys, k)
		}
	}
	sort.Slice(keys, func(i, j int) bool {
		if keys[i].start != keys[j].start {
			return keys[i].start < keys[j].start
		}
		if keys[i].stage != keys[j].stage {
			return keys[i].stage < keys[j].stage
		}
		return keys[i].bucket < keys[j].bucket
	})
	for _, k := range keys {
		tags := map[string]string{}
		dims := make([]string, 0, len(h.begin.Tags)+2)
		for t, v := range h.begin.Tags {
			tags[t] = v
			if t != "bucket" && t != "window" && t != "tz" {
				dims = append(dims, t)
			}
		}
		// tz: what `mailtick sla` checks the calendar it splits a
		// range by against.
		tags["bucket"], tags["window"], tags["tz"] = k.bucket, string(h.level), h.loc.String()
		dims = append(dims, "bucket", "tz", "window")
		if k.stage != "" {
			tags["stage"] = k.stage
			dims = append(dims, "stage")
		}
		sort.Strings(dims)
		h.out <- &agent.Response{Message: &agent.Response_Point{Point: &agent.Point{
			Time:       k.start,
			Name:       "mail_latency_hist",
			Tags:       tags,
			Dimensions: dims,
			FieldsInt:  map[string]int64{"count": h.counts[k]},
		}}}
	}
	if h.skipped > 0 {
		fmt.Fprintf(h.log, "mail_latency_hist: skipped %d points of batch %q without a number in %q\n", h.skipped, h.begin.Group, h.valueName())
	}
	h.begin, h.counts, h.skipped = nil, nil, 0
	return nil
}

// Stop is called when Kapacitor stops the task.
func (h *Handler) Stop() { close(h.out) }
