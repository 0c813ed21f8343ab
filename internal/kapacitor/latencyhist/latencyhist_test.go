package latencyhist

import (
	"bytes"
	"testing"
	"time"

	"github.com/influxdata/kapacitor/udf/agent"
	"github.com/stretchr/testify/require"

	"github.com/mailtick/mailtick/internal/latency"
)

func option(name string, v any) *agent.Option {
	var ov agent.OptionValue
	switch x := v.(type) {
	case string:
		ov.Value = &agent.OptionValue_StringValue{StringValue: x}
	case time.Duration:
		ov.Value = &agent.OptionValue_DurationValue{DurationValue: int64(x)}
	}
	return &agent.Option{Name: name, Values: []*agent.OptionValue{&ov}}
}

// run feeds one batch, ending at stop, to a handler with opts and returns
// the points it wrote and its log.
func run(t *testing.T, opts []*agent.Option, tags map[string]string, stop time.Time, points []*agent.Point) ([]*agent.Point, string) {
	t.Helper()
	out := make(chan *agent.Response, 1000)
	var log bytes.Buffer
	h := New(out, &log)
	init, err := h.Init(&agent.InitRequest{Options: opts})
	require.NoError(t, err)
	require.True(t, init.Success, init.Error)
	require.NoError(t, h.BeginBatch(&agent.BeginBatch{Name: "q", Group: "g", Tags: tags}))
	for _, p := range points {
		require.NoError(t, h.Point(p))
	}
	require.NoError(t, h.EndBatch(&agent.EndBatch{Tmax: stop.UnixNano(), Tags: tags}))
	h.Stop()
	var got []*agent.Point
	for r := range out {
		got = append(got, r.GetPoint())
	}
	return got, log.String()
}

func at(s string) time.Time {
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		panic(err)
	}
	return t
}

// TestRawToMinutes: raw latencies become bucket counts per minute with the
// minute as time; the minute the period cuts is left out; a point without
// a number is skipped and logged.
func TestRawToMinutes(t *testing.T) {
	opts := []*agent.Option{option("window", "1m"), option("period", 3*time.Minute), option("field", "latency_ms")}
	raw := func(ts string, ms float64) *agent.Point {
		return &agent.Point{Time: at(ts).UnixNano(), FieldsDouble: map[string]float64{"latency_ms": ms}}
	}
	got, log := run(t, opts, map[string]string{"dc": "dc1", "direction": "outbound"}, at("2026-11-23T10:03:00Z"), []*agent.Point{
		raw("2026-11-23T09:59:30Z", 100), // before the period: its minute is cut
		raw("2026-11-23T10:00:10Z", 100),
		raw("2026-11-23T10:00:50Z", 100.5), // same bucket as 100
		raw("2026-11-23T10:00:59Z", 250),
		raw("2026-11-23T10:02:00Z", 0),
		{Time: at("2026-11-23T10:02:01Z").UnixNano(), FieldsString: map[string]string{"latency_ms": "n/a"}},
	})
	require.Len(t, got, 3)
	b100, b250 := latency.Tag(100), latency.Tag(250)
	require.Equal(t, latency.Tag(100), latency.Tag(100.5))
	want := []struct {
		ts     string
		bucket string
		n      int64
	}{{"2026-11-23T10:00:00Z", b100, 2}, {"2026-11-23T10:00:00Z", b250, 1}, {"2026-11-23T10:02:00Z", latency.ZeroTag, 1}}
	if b250 < b100 { // points come sorted by time, then bucket as text
		want[0], want[1] = want[1], want[0]
	}
	for i, w := range want {
		require.Equal(t, at(w.ts).UnixNano(), got[i].Time)
		require.Equal(t, map[string]string{"dc": "dc1", "direction": "outbound", "bucket": w.bucket, "window": "1m", "tz": "UTC"}, got[i].Tags)
		require.Equal(t, map[string]int64{"count": w.n}, got[i].FieldsInt)
	}
	require.Contains(t, log, `skipped 1 points`)
}

// TestStages: with stages, each stage's field gets a histogram of its
// own, tagged stage; a point counts in every stage it has a number for,
// and is skipped only when it has none.
func TestStages(t *testing.T) {
	opts := []*agent.Option{option("window", "1m"), option("period", 5*time.Minute), option("field", ""),
		option("stages", "in_qmgr=delay_in_qmgr_ms  transmission=delay_transmission_ms")}
	got, log := run(t, opts, map[string]string{"dc": "dc1", "direction": "outbound"}, at("2026-11-23T10:03:00Z"), []*agent.Point{
		{Time: at("2026-11-23T10:00:10Z").UnixNano(), FieldsDouble: map[string]float64{"delay_in_qmgr_ms": 100, "delay_transmission_ms": 250, "latency_ms": 999}},
		{Time: at("2026-11-23T10:00:20Z").UnixNano(), FieldsDouble: map[string]float64{"delay_in_qmgr_ms": 100}},
		{Time: at("2026-11-23T10:00:30Z").UnixNano(), FieldsDouble: map[string]float64{"latency_ms": 5}},
	})
	type row struct {
		stage, bucket string
		n             int64
	}
	var rows []row
	for _, p := range got {
		require.Equal(t, at("2026-11-23T10:00:00Z").UnixNano(), p.Time)
		require.Contains(t, p.Dimensions, "stage")
		rows = append(rows, row{p.Tags["stage"], p.Tags["bucket"], p.FieldsInt["count"]})
	}
	require.Equal(t, []row{{"in_qmgr", latency.Tag(100), 2}, {"transmission", latency.Tag(250), 1}}, rows)
	require.Contains(t, log, `skipped 1 points of batch "g" without a number in "delay_in_qmgr_ms, delay_transmission_ms"`)
}

// TestCountsToMonths: counts of days add up per calendar month of the
// zone, the bucket read from the query's column.
func TestCountsToMonths(t *testing.T) {
	berlin, err := time.LoadLocation("Europe/Berlin")
	require.NoError(t, err)
	opts := []*agent.Option{option("window", "1mo"), option("tz", "Europe/Berlin"), option("period", 63*24*time.Hour)}
	day := func(d string, bucket string, n float64) *agent.Point {
		tm, err := time.ParseInLocation("2006-01-02", d, berlin)
		require.NoError(t, err)
		return &agent.Point{Time: tm.UnixNano(), FieldsDouble: map[string]float64{"count": n}, FieldsString: map[string]string{"bucket": bucket}}
	}
	got, _ := run(t, opts, map[string]string{"dc": "dc1"}, at("2026-11-23T10:00:00Z"), []*agent.Point{
		day("2026-10-01", "300", 2), day("2026-10-31", "300", 3), // 2026-10-31 00:00 Berlin is 10-30 22:00 UTC
		day("2026-11-01", "300", 4), day("2026-11-01", "bad", 1),
	})
	require.Len(t, got, 2)
	require.Equal(t, time.Date(2026, 10, 1, 0, 0, 0, 0, berlin).UnixNano(), got[0].Time)
	require.Equal(t, int64(5), got[0].FieldsInt["count"])
	require.Equal(t, time.Date(2026, 11, 1, 0, 0, 0, 0, berlin).UnixNano(), got[1].Time)
	require.Equal(t, int64(4), got[1].FieldsInt["count"])
	require.Equal(t, "Europe/Berlin", got[1].Tags["tz"])
}

// TestInit: bad options fail the task with the option and its value.
func TestInit(t *testing.T) {
	tests := []struct {
		name string
		opts []*agent.Option
		err  string
	}{
		{"unknown window", []*agent.Option{option("window", "2d"), option("period", time.Hour)}, `invalid window "2d"`},
		{"unknown zone", []*agent.Option{option("window", "1d"), option("tz", "Mars/Olympus"), option("period", time.Hour)}, `invalid tz "Mars/Olympus"`},
		{"no period", []*agent.Option{option("window", "1h")}, `invalid period 0s`},
		{"bad stages", []*agent.Option{option("window", "1m"), option("period", time.Hour), option("stages", "in_qmgr")}, `invalid stages "in_qmgr": want space-separated stage=field pairs`},
		{"field and stages", []*agent.Option{option("window", "1m"), option("period", time.Hour), option("field", "latency_ms"), option("stages", "a=b")}, `field "latency_ms" and stages: give one`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := New(make(chan *agent.Response), &bytes.Buffer{}).Init(&agent.InitRequest{Options: tt.opts})
			require.NoError(t, err)
			require.False(t, r.Success)
			require.Contains(t, r.Error, tt.err)
		})
	}
}
