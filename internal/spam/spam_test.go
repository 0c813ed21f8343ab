package spam

import (
	"bytes"
	"fmt"
	"testing"
	"time"

	"github.com/influxdata/kapacitor/udf/agent"
	"github.com/stretchr/testify/require"
)

var t0 = time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)

// event is a mail_event point as mail_spam.tick hands it to the UDF.
func event(at time.Duration, sender, recipient, helo, ip string, bad bool) *agent.Point {
	domain := sender[bytes.IndexByte([]byte(sender), '@')+1:]
	b := 0.0
	if bad {
		b = 1
	}
	return &agent.Point{
		Time: t0.Add(at).UnixNano(), Name: "mail_event", Group: "dc=dc1", Dimensions: []string{"dc"},
		Tags:         map[string]string{"dc": "dc1", "sender": sender, "sender_domain": domain},
		FieldsString: map[string]string{"recipient": recipient, "helo": helo, "sender_ip": ip},
		FieldsDouble: map[string]float64{"bad": b},
	}
}

// run feeds the points to a handler with a one-minute window and returns
// what it wrote, by "time tag=value", and its log.
func run(t *testing.T, points ...*agent.Point) (map[string]*agent.Point, string) {
	t.Helper()
	out := make(chan *agent.Response, 1000)
	var log bytes.Buffer
	h := New(out, &log)
	ov := &agent.OptionValue{Value: &agent.OptionValue_DurationValue{DurationValue: int64(time.Minute)}}
	init, err := h.Init(&agent.InitRequest{Options: []*agent.Option{{Name: "window", Values: []*agent.OptionValue{ov}}}})
	require.NoError(t, err)
	require.True(t, init.Success, init.Error)
	for _, p := range points {
		require.NoError(t, h.Point(p))
	}
	h.Stop()
	got := map[string]*agent.Point{}
	for r := range out {
		p := r.GetPoint()
		require.Equal(t, "mail_spam", p.Name)
		require.Equal(t, []string{"dc"}, p.Dimensions)
		require.Equal(t, "dc1", p.Tags["dc"])
		key := "sender=" + p.Tags["sender"]
		if d, ok := p.Tags["sender_domain"]; ok {
			key = "sender_domain=" + d
		}
		got[fmt.Sprintf("%s %s", time.Unix(0, p.Time).UTC().Format("15:04"), key)] = p
	}
	return got, log.String()
}

// A sender's minute is written, stamped with its end, when its next
// minute begins: distinct recipients and HELOs counted exactly, its domain's
// distinct IPs, volume and bad ratio too.
func TestWindowClosesOnTheKeysNextPoint(t *testing.T) {
	var points []*agent.Point
	for i := range 30 {
		points = append(points, event(time.Duration(i)*time.Second, "spam@bad.example",
			fmt.Sprintf("r%d@x.org", i%20), fmt.Sprintf("h%d", i%3), fmt.Sprintf("10.0.0.%d", i%4), i%3 == 0))
	}
	points = append(points, event(70*time.Second, "spam@bad.example", "r0@x.org", "h0", "10.0.0.9", false))
	got, log := run(t, points...)
	require.Empty(t, log)
	s := got["10:01 sender=spam@bad.example"]
	require.NotNil(t, s, "the first minute, written at its end: %v", got)
	require.Equal(t, map[string]int64{"distinct_recipients": 20, "distinct_helos": 3, "volume": 30, "previous_volume": 0}, s.FieldsInt)
	d := got["10:01 sender_domain=bad.example"]
	require.NotNil(t, d)
	require.Equal(t, map[string]int64{"distinct_ips": 4, "volume": 30, "previous_volume": 0}, d.FieldsInt)
	require.Equal(t, map[string]float64{"bad_ratio": 10.0 / 30}, d.FieldsDouble)
	require.Len(t, got, 2, "the second minute is still open")
}

// A key that stops is written once the stream's time has passed its
// minute's end by another minute; it then carries its volume as
// previous_volume into nothing (it is forgotten). A key that goes on
// carries the previous minute's volume.
func TestIdleKeysAreWrittenAndForgotten(t *testing.T) {
	got, _ := run(t,
		event(10*time.Second, "quiet@a.example", "r@x.org", "h", "10.0.0.1", false),
		event(20*time.Second, "busy@b.example", "r1@x.org", "h", "10.0.0.2", false),
		event(80*time.Second, "busy@b.example", "r2@x.org", "h", "10.0.0.2", false),
		event(130*time.Second, "busy@b.example", "r3@x.org", "h", "10.0.0.2", true),
	)
	require.Contains(t, got, "10:01 sender=quiet@a.example", "swept at 10:02, its minute's end plus a minute")
	require.Contains(t, got, "10:01 sender=busy@b.example")
	require.Equal(t, int64(1), got["10:02 sender=busy@b.example"].FieldsInt["previous_volume"])
	require.Equal(t, int64(1), got["10:02 sender=busy@b.example"].FieldsInt["volume"])
	require.NotContains(t, got, "10:03 sender=busy@b.example", "still open")
}

// A point for a minute already written is dropped and logged, as
// Kapacitor's window drops it.
func TestLatePointsAreDropped(t *testing.T) {
	got, log := run(t,
		event(10*time.Second, "s@a.example", "r1@x.org", "h", "10.0.0.1", false),
		event(70*time.Second, "s@a.example", "r2@x.org", "h", "10.0.0.1", false),
		event(20*time.Second, "s@a.example", "r3@x.org", "h", "10.0.0.1", false), // late
		event(190*time.Second, "s@a.example", "r4@x.org", "h", "10.0.0.1", false),
	)
	require.Equal(t, int64(1), got["10:01 sender=s@a.example"].FieldsInt["distinct_recipients"])
	require.Equal(t, int64(1), got["10:02 sender=s@a.example"].FieldsInt["distinct_recipients"])
	require.Contains(t, log, "dropped 1 points")
}

// The set counts exactly across its switch from a list to a map.
func TestSet(t *testing.T) {
	var s set
	for i := range 3 * smallSet {
		s.add(uint64(i % (2 * smallSet)))
		s.add(uint64(i % (2 * smallSet)))
	}
	require.Equal(t, int64(2*smallSet), s.len())
}

// A window is required; a batch is refused.
func TestInitAndBatch(t *testing.T) {
	h := New(make(chan *agent.Response, 1), &bytes.Buffer{})
	init, err := h.Init(&agent.InitRequest{})
	require.NoError(t, err)
	require.False(t, init.Success)
	require.Contains(t, init.Error, "invalid window")
	require.ErrorContains(t, h.BeginBatch(&agent.BeginBatch{}), "wants a stream")
}
