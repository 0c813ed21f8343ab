package spam

import (
	"bytes"
	"fmt"
	"strings"
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

// start is a handler with a one-minute window answering on out, its wall
// clock wall, and its log.
func start(t *testing.T, out chan *agent.Response, wall func() time.Time) (*Handler, *bytes.Buffer) {
	t.Helper()
	var log bytes.Buffer
	h := New(out, &log)
	h.now = wall
	ov := &agent.OptionValue{Value: &agent.OptionValue_DurationValue{DurationValue: int64(time.Minute)}}
	init, err := h.Init(&agent.InitRequest{Options: []*agent.Option{{Name: "window", Values: []*agent.OptionValue{ov}}}})
	require.NoError(t, err)
	require.True(t, init.Success, init.Error)
	return h, &log
}

// key is a written point's "time tag=value".
func key(t *testing.T, p *agent.Point) string {
	t.Helper()
	require.Equal(t, "mail_spam", p.Name)
	require.Equal(t, []string{"dc"}, p.Dimensions)
	require.Equal(t, "dc1", p.Tags["dc"])
	k := "sender=" + p.Tags["sender"]
	if d, ok := p.Tags["sender_domain"]; ok {
		k = "sender_domain=" + d
	}
	return fmt.Sprintf("%s %s", time.Unix(0, p.Time).UTC().Format("15:04"), k)
}

// run feeds the points, each at its own time by the wall clock (or after
// the latest point before it, for a late one), to a handler with a
// one-minute window and returns what it wrote, by key, and its log.
func run(t *testing.T, points ...*agent.Point) (map[string]*agent.Point, string) {
	t.Helper()
	out := make(chan *agent.Response, 1000)
	var wall time.Time
	h, log := start(t, out, func() time.Time { return wall })
	for _, p := range points {
		if at := time.Unix(0, p.Time); at.After(wall) {
			wall = at
		}
		require.NoError(t, h.Point(p))
	}
	h.Stop()
	got := map[string]*agent.Point{}
	for r := range out {
		got[key(t, r.GetPoint())] = r.GetPoint()
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

// One point stamped an hour ahead, among an hour of traffic from 50,400
// senders of 100 domains (14 new senders a second), is refused and logged:
// it does not move the clock, so idle senders go on being swept (the UDF
// holds those of the last two minutes, not all 50,400), and no real point of
// its domain is dropped as late (every point is in a volume written or
// held).
func TestPointAheadOfTheWallClockIsRefused(t *testing.T) {
	out := make(chan *agent.Response, 1000)
	var written []*agent.Point
	done := make(chan struct{})
	go func() {
		defer close(done)
		for r := range out {
			written = append(written, r.GetPoint())
		}
	}()
	var wall time.Time
	h, log := start(t, out, func() time.Time { return wall })
	const perSecond, domains = 14, 100
	n := 0
	for s := range 3600 {
		wall = t0.Add(time.Duration(s) * time.Second)
		for range perSecond {
			sender := fmt.Sprintf("u%d@d%d.example", n, n%domains)
			require.NoError(t, h.Point(event(time.Duration(s)*time.Second, sender, "r@x.org", "h", "10.0.0.1", false)))
			n++
		}
		if s == 60 {
			require.NoError(t, h.Point(event(time.Duration(s)*time.Second+time.Hour, "ahead@d7.example", "r@x.org", "h", "10.0.0.1", false)))
		}
	}
	g := h.groups["dc=dc1"]
	require.LessOrEqual(t, len(g.keys[0]), 2*60*perSecond, "senders held: those of the last two minutes")
	require.LessOrEqual(t, len(g.keys[1]), domains)
	require.Equal(t, t0.Add(3599*time.Second).UnixNano(), g.clock, "the clock follows the real points")
	held := [len(kinds)]int64{}
	for i := range kinds {
		for _, w := range g.keys[i] {
			held[i] += w.volume
		}
	}
	h.Stop()
	<-done
	volume := map[string]int64{}
	for _, p := range written {
		key(t, p)
		require.LessOrEqual(t, p.Time, t0.Add(time.Hour).UnixNano(), "nothing written past the hour")
		if _, ok := p.Tags["sender"]; ok {
			volume["sender"] += p.FieldsInt["volume"]
		} else {
			volume["sender_domain"] += p.FieldsInt["volume"]
		}
	}
	require.Equal(t, int64(n), volume["sender"]+held[0], "every real point counted per sender")
	require.Equal(t, int64(n), volume["sender_domain"]+held[1], "every real point counted per domain")
	require.NotContains(t, log.String(), "dropped")
	require.Equal(t, 1, strings.Count(log.String(), "mail_spam: refused"), log.String())
	require.Contains(t, log.String(), "mail_spam: refused 1 points of group map[dc:dc1] stamped more than 10s past the wall clock (the latest at 2026-11-23T11:01:00Z)")
}

// A point up to MaxAhead past the wall clock is counted; later ones are
// refused and logged, by the next sweep or at Stop. The wall clock is
// time.Now unless a test sets it.
func TestMaxAhead(t *testing.T) {
	out := make(chan *agent.Response, 10)
	wall := t0
	h, log := start(t, out, func() time.Time { return wall })
	require.NoError(t, h.Point(event(MaxAhead, "a@a.example", "r1@x.org", "h", "10.0.0.1", false)))
	require.NoError(t, h.Point(event(MaxAhead+time.Nanosecond, "a@a.example", "r2@x.org", "h", "10.0.0.1", false)))
	require.NoError(t, h.Point(event(time.Hour, "a@a.example", "r3@x.org", "h", "10.0.0.1", false)))
	require.Equal(t, t0.Add(MaxAhead).UnixNano(), h.groups["dc=dc1"].clock)
	wall = t0.Add(70 * time.Second)
	require.NoError(t, h.Point(event(70*time.Second, "a@a.example", "r4@x.org", "h", "10.0.0.1", false)))
	h.Stop()
	got := map[string]*agent.Point{}
	for r := range out {
		got[key(t, r.GetPoint())] = r.GetPoint()
	}
	require.Equal(t, int64(1), got["10:01 sender=a@a.example"].FieldsInt["volume"], "the point MaxAhead past the wall clock")
	require.Equal(t, "mail_spam: refused 2 points of group map[dc:dc1] stamped more than 10s past the wall clock (the latest at 2026-11-23T11:00:00Z)\n", log.String())

	h = New(make(chan *agent.Response, 1), &bytes.Buffer{})
	future := event(0, "a@a.example", "r@x.org", "h", "10.0.0.1", false)
	future.Time = time.Now().Add(time.Hour).UnixNano()
	require.NoError(t, h.Point(future))
	require.Equal(t, 1, h.groups["dc=dc1"].ahead)
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
