package rollupfwd

import (
	"testing"
	"time"

	"github.com/influxdata/telegraf"
	"github.com/influxdata/telegraf/metric"
	"github.com/stretchr/testify/require"
)

// point is a mail_counts point of minute i with count n.
func point(i int, n int64, tags map[string]string) telegraf.Metric {
	if tags == nil {
		tags = map[string]string{"dc": "dc1", "direction": "outbound"}
	}
	m := metric.New("mail_counts", tags, map[string]any{"count": n}, t0.Add(time.Duration(i)*time.Minute))
	m.AddField("p99", 1.5)
	return m
}

// TestSkipUnchanged: a point written again with the same series, time and
// values is not spooled again; any difference is.
func TestSkipUnchanged(t *testing.T) {
	dir := t.TempDir()
	r := newPlugin(t, dir, []string{"http://127.0.0.1:1"}, nil)
	require.NoError(t, r.Write([]telegraf.Metric{point(0, 5, nil), point(1, 7, nil)}))
	// Kapacitor's next run: the same two windows, one changed by a late
	// event, and a new one; the same point twice in a batch goes once.
	fieldsReordered := metric.New("mail_counts", map[string]string{"direction": "outbound", "dc": "dc1"},
		map[string]any{"p99": 1.5}, t0)
	fieldsReordered.AddField("count", int64(5))
	require.NoError(t, r.Write([]telegraf.Metric{fieldsReordered, point(1, 8, nil), point(2, 1, nil), point(2, 1, nil)}))
	// Other tags, another time, another type: other points.
	require.NoError(t, r.Write([]telegraf.Metric{
		point(0, 5, map[string]string{"dc": "dc1", "direction": "inbound"}),
		func() telegraf.Metric { m := point(0, 5, nil); m.AddField("count", 5.0); return m }(),
		point(0, 5, nil),
	}))
	require.Equal(t, []string{
		"mail_counts,dc=dc1,direction=outbound count=5i,p99=1.5 1795305600000000000",
		"mail_counts,dc=dc1,direction=outbound count=7i,p99=1.5 1795305660000000000",
		"mail_counts,dc=dc1,direction=outbound count=8i,p99=1.5 1795305660000000000",
		"mail_counts,dc=dc1,direction=outbound count=1i,p99=1.5 1795305720000000000",
		"mail_counts,dc=dc1,direction=inbound count=5i,p99=1.5 1795305600000000000",
		"mail_counts,dc=dc1,direction=outbound count=5,p99=1.5 1795305600000000000",
		// count=5i again: the last point spooled for it was count=5 (a
		// float): central holds that one now.
		"mail_counts,dc=dc1,direction=outbound count=5i,p99=1.5 1795305600000000000",
	}, spooled(t, dir))
	require.Equal(t, int64(2), r.pointsUnchanged.Get())
}

// TestSkipUnchangedOnlyOnceSpooled: a Write that fails remembers nothing,
// so Telegraf's retry spools the batch; a spool that lost records
// forgets, so what it lost is sent again when written again.
func TestSkipUnchangedOnlyOnceSpooled(t *testing.T) {
	dir := t.TempDir()
	r := newPlugin(t, dir, []string{"http://127.0.0.1:1"}, func(r *RollupFwd) {
		r.MaxSpoolBytes, r.SegmentBytes = 4096, 1024
	})
	var err error
	i := 0
	for ; err == nil; i++ {
		err = r.Write([]telegraf.Metric{point(i, 1, nil)})
	}
	require.ErrorContains(t, err, "is full")
	failed := point(i-1, 1, nil)
	lines := len(spooled(t, dir))

	r2 := newPlugin(t, t.TempDir(), []string{"http://127.0.0.1:1"}, nil)
	require.NoError(t, r2.Write([]telegraf.Metric{failed}), "a failed batch is not remembered: fresh spool takes it")
	r.SpoolFull = fullDropOldest
	require.NoError(t, r.Write([]telegraf.Metric{failed}), "the retried batch is spooled, dropping the oldest")
	require.Positive(t, r.droppedPoints.Get())
	require.Zero(t, r.unchanged.size()-1, "the spool lost records: only the point just spooled is remembered")
	require.NoError(t, r.Write([]telegraf.Metric{point(0, 1, nil)}))
	got := spooled(t, dir)
	require.Contains(t, got[len(got)-1], "count=1i,p99=1.5 1795305600000000000", "minute 0 (dropped from the spool) is spooled again")
	require.Less(t, len(got), lines+2)
}

// TestSkipUnchangedOff: "0s" spools every point.
func TestSkipUnchangedOff(t *testing.T) {
	dir := t.TempDir()
	r := newPlugin(t, dir, []string{"http://127.0.0.1:1"}, func(r *RollupFwd) { r.SkipUnchanged = 0 })
	for range 3 {
		require.NoError(t, r.Write([]telegraf.Metric{point(0, 5, nil)}))
	}
	require.Len(t, spooled(t, dir), 3)
}

// TestUnchangedMemory: a point is remembered from ttl/2 to ttl after it
// was last written, and a generation is retired early at max/2 points.
func TestUnchangedMemory(t *testing.T) {
	now := t0
	u := newUnchanged(time.Hour, 1000)
	u.now = func() time.Time { return now }
	u.forget()
	k, v := u.digest(point(0, 1, nil))
	u.remember(k, v)
	now = now.Add(29 * time.Minute)
	require.True(t, u.seen(k, v))
	now = now.Add(2 * time.Minute) // 31m: rotated on the next remember
	u.remember(u.digest(point(1, 1, nil)))
	require.True(t, u.seen(k, v), "31m after: in the older generation, and written again now")
	now = now.Add(40 * time.Minute)
	u.remember(u.digest(point(2, 1, nil)))
	require.True(t, u.seen(k, v), "seen at 31m: remembered past 71m")
	now = now.Add(31 * time.Minute)
	u.remember(u.digest(point(3, 1, nil)))
	now = now.Add(31 * time.Minute)
	u.remember(u.digest(point(4, 1, nil)))
	require.False(t, u.seen(k, v), "not written for over an hour: forgotten")

	u = newUnchanged(time.Hour, 10)
	u.now = func() time.Time { return now }
	u.forget()
	for i := range 100 {
		u.remember(u.digest(point(i, 1, nil)))
		require.LessOrEqual(t, u.size(), 10)
	}
	require.True(t, u.seen(u.digest(point(99, 1, nil))))
	require.False(t, u.seen(u.digest(point(0, 1, nil))))
}
