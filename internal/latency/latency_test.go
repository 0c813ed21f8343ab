package latency

import (
	"math"
	"math/rand/v2"
	"regexp"
	"sort"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestIndexBounds: every x lies in (γ^(i-1), γ^i] of its bucket, and what
// the bucket stands for is within RelativeError of x, over 20 decades and
// at the bounds themselves.
func TestIndexBounds(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	xs := []float64{1, Gamma, Gamma * Gamma, 1e-3, 0.5, 60000, 86400000 * 7}
	for i := -300; i <= 1000; i++ {
		xs = append(xs, math.Pow(Gamma, float64(i)), math.Nextafter(math.Pow(Gamma, float64(i)), 0))
	}
	for range 100000 {
		xs = append(xs, math.Pow(10, r.Float64()*20-6))
	}
	for _, x := range xs {
		i := Index(x)
		require.Greater(t, x, math.Pow(Gamma, float64(i-1)), "x=%v i=%d", x, i)
		require.LessOrEqual(t, x, Upper(i), "x=%v i=%d", x, i)
		require.LessOrEqual(t, math.Abs(Value(i)-x)/x, RelativeError*(1+1e-12), "x=%v", x)
		j, err := ParseTag(Tag(x))
		require.NoError(t, err)
		require.Equal(t, i, j)
	}
	for _, x := range []float64{0, -1, math.NaN()} {
		require.Equal(t, ZeroTag, Tag(x))
	}
	require.Equal(t, float64(0), Value(Index(0)))
	for _, bad := range []string{"", "1.5", "x", "-2147483648"} {
		_, err := ParseTag(bad)
		require.Error(t, err, bad)
	}
}

// TestQuantilesOfMergedHistograms: histograms filled apart and merged
// answer every quantile within RelativeError of the exact nearest-rank
// quantile of all values, and ShareWithin is the exact share for a
// threshold within 1%.
func TestQuantilesOfMergedHistograms(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	var parts [10]Histogram
	var all []float64
	for i := range 50000 {
		x := math.Exp(r.NormFloat64()*1.5 + 7) // log-normal around a second
		if i%100 == 0 {
			x = 0
		}
		all = append(all, x)
		parts[i%len(parts)].Observe(x)
	}
	sort.Float64s(all)
	var h Histogram
	for i := range parts {
		h.Merge(&parts[i])
	}
	require.Equal(t, int64(len(all)), h.Count())
	for _, q := range []float64{0.001, 0.01, 0.5, 0.9, 0.95, 0.99, 0.999, 1} {
		want := all[NearestRank(q, int64(len(all)))-1]
		got := h.Quantile(q)
		if want == 0 {
			require.Zero(t, got, "q=%v", q)
			continue
		}
		require.LessOrEqual(t, math.Abs(got-want)/want, RelativeError*(1+1e-12), "q=%v want %v got %v", q, want, got)
	}
	for _, th := range []float64{100, 1000, 60000} {
		share := h.ShareWithin(th)
		lo := float64(sort.SearchFloat64s(all, th*(1-RelativeError)*0.999)) / float64(len(all))
		hi := float64(sort.SearchFloat64s(all, th*(1+RelativeError)*1.001)) / float64(len(all))
		require.True(t, lo <= share && share <= hi, "within %v: %v not in [%v, %v]", th, share, lo, hi)
	}
	var empty Histogram
	require.True(t, math.IsNaN(empty.Quantile(0.5)))
	require.Error(t, empty.Add("7", -1))
}

// TestWindows: windows of Europe/Berlin across its DST changes, ISO weeks,
// months, and India's half-hour offset.
func TestWindows(t *testing.T) {
	berlin, err := time.LoadLocation("Europe/Berlin")
	require.NoError(t, err)
	kolkata, err := time.LoadLocation("Asia/Kolkata")
	require.NoError(t, err)
	at := func(s string, loc *time.Location) time.Time {
		tt, err := time.ParseInLocation("2006-01-02 15:04", s, loc)
		require.NoError(t, err)
		return tt
	}
	tests := []struct {
		name        string
		level       Level
		t           time.Time
		loc         *time.Location
		start, next time.Time
	}{
		{"minute", Minute, at("2026-03-29 01:59", time.UTC).Add(30 * time.Second), berlin, at("2026-03-29 01:59", time.UTC), at("2026-03-29 02:00", time.UTC)},
		{"hour in Kolkata starts at :30 UTC", Hour, at("2026-11-23 10:10", time.UTC), kolkata, at("2026-11-23 09:30", time.UTC), at("2026-11-23 10:30", time.UTC)},
		{"23-hour day (spring forward)", Day, at("2026-03-29 12:00", berlin), berlin, at("2026-03-29 00:00", berlin), at("2026-03-30 00:00", berlin)},
		{"25-hour day (fall back)", Day, at("2026-10-25 23:30", berlin), berlin, at("2026-10-25 00:00", berlin), at("2026-10-26 00:00", berlin)},
		{"week from Monday", Week, at("2026-11-29 23:00", berlin), berlin, at("2026-11-23 00:00", berlin), at("2026-11-30 00:00", berlin)},
		{"week on a Monday", Week, at("2026-11-23 00:00", berlin), berlin, at("2026-11-23 00:00", berlin), at("2026-11-30 00:00", berlin)},
		{"February", Month, at("2028-02-29 08:00", berlin), berlin, at("2028-02-01 00:00", berlin), at("2028-03-01 00:00", berlin)},
		{"December", Month, at("2026-12-31 23:59", berlin), berlin, at("2026-12-01 00:00", berlin), at("2027-01-01 00:00", berlin)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			start := tt.level.Start(tt.t, tt.loc)
			require.True(t, tt.start.Equal(start), "start %v, want %v", start, tt.start)
			next := tt.level.Next(start, tt.loc)
			require.True(t, tt.next.Equal(next), "next %v, want %v", next, tt.next)
		})
	}
	require.Equal(t, 23*time.Hour, Day.Next(at("2026-03-29 00:00", berlin), berlin).Sub(at("2026-03-29 00:00", berlin)))
	_, err = ParseLevel("1y")
	require.ErrorContains(t, err, `invalid window "1y"`)
}

// TestCover: spans are whole windows of their level, contiguous, and
// cover [from, to) exactly, with the coarsest level that fits.
func TestCover(t *testing.T) {
	berlin, err := time.LoadLocation("Europe/Berlin")
	require.NoError(t, err)
	r := rand.New(rand.NewPCG(5, 6))
	base := time.Date(2026, 1, 1, 0, 0, 0, 0, berlin)
	for range 300 {
		from := base.Add(time.Duration(r.Int64N(int64(300 * 24 * time.Hour)))).Truncate(time.Minute)
		to := from.Add(time.Duration(r.Int64N(int64(90 * 24 * time.Hour)))).Truncate(time.Minute)
		spans := Cover(from, to, berlin)
		at := from
		for _, s := range spans {
			require.True(t, at.Equal(s.From), "contiguous")
			require.True(t, s.From.Before(s.To))
			require.True(t, s.Level.Start(s.From, berlin).Equal(s.From), "%v starts a %s window", s.From, s.Level)
			require.True(t, s.Level.Start(s.To, berlin).Equal(s.To), "%v ends a %s window", s.To, s.Level)
			at = s.To
		}
		require.True(t, at.Equal(to) || from.Equal(to), "covers to %v", to)
		require.LessOrEqual(t, len(spans), 11, "%v .. %v: %v", from, to, spans)
	}
	// A calendar month is one span.
	nov := time.Date(2026, 11, 1, 0, 0, 0, 0, berlin)
	require.Equal(t, []Span{{Month, nov, nov.AddDate(0, 1, 0)}}, Cover(nov, nov.AddDate(0, 1, 0), berlin))
}

// TestWithinTagRegexp: the expression matches exactly the tags whose
// buckets ShareWithin counts, for thresholds around every kind of bound
// (negative, single-digit and multi-digit bucket indexes).
func TestWithinTagRegexp(t *testing.T) {
	for _, threshold := range []float64{0, 0.3, 0.9, 1, 1.05, 1.2, 2, 10, 99, 100, 999.9, 1000, 5000, 60000, 3.6e6, 1e12} {
		re := regexp.MustCompile(WithinTagRegexp(threshold))
		require.True(t, re.MatchString(ZeroTag), "threshold %v", threshold)
		for i := -3000; i <= 3000; i++ {
			want := Value(i) <= threshold
			require.Equal(t, want, re.MatchString(tagOf(i)), "threshold %v, bucket %d (value %v): %s", threshold, i, Value(i), re)
		}
		for _, bad := range []string{"", "x", "01", "-0", "1.5", " 1", "zero1"} {
			require.False(t, re.MatchString(bad), "threshold %v matches %q", threshold, bad)
		}
	}
	require.Equal(t, "^zero$", WithinTagRegexp(-1))
}
