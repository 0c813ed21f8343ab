// Package latency is mailtick's mergeable latency summary: a histogram of
// bucket counts on a logarithmic scale (DDSketch's mapping), so that the
// summaries of any set of minutes, DCs and directions add up to the
// summary of their union, and every quantile read from it is within 1% of
// the exact one.
//
// A latency x > 0 falls in bucket i = ceil(log_γ x), which holds
// (γ^(i-1), γ^i]; the bucket stands for 2γ^i/(γ+1), which is within
// (γ-1)/(γ+1) = 0.990% of every value of the bucket. Latencies of 0 or
// less fall in the bucket "zero", which stands for 0. The TICKscripts' UDF
// (internal/kapacitor/latencyhist), `mailtick sla` and the Flux twin all use this mapping.
package latency

import (
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"
)

// Gamma is the ratio of a bucket's upper bound to its lower bound.
const Gamma = 1.02

// RelativeError bounds |estimate - exact| / exact for every quantile.
const RelativeError = (Gamma - 1) / (Gamma + 1)

// ZeroTag is the bucket tag of latencies of 0 or less.
const ZeroTag = "zero"

var lnGamma = math.Log(Gamma)

// zeroIndex is the index ZeroTag decodes to, below every real bucket.
const zeroIndex = math.MinInt32

// Index is the bucket of x: ceil(log_γ x), or that of ZeroTag for x <= 0
// and NaN.
func Index(x float64) int {
	if !(x > 0) {
		return zeroIndex
	}
	x = math.Min(x, math.MaxFloat64)
	i := int(math.Ceil(math.Log(x) / lnGamma))
	// log and the division round: put x back where its bounds say.
	for x <= math.Pow(Gamma, float64(i-1)) {
		i--
	}
	for x > math.Pow(Gamma, float64(i)) {
		i++
	}
	return i
}

// Tag is the value of the tag "bucket" for x.
func Tag(x float64) string { return tagOf(Index(x)) }

func tagOf(i int) string {
	if i == zeroIndex {
		return ZeroTag
	}
	return strconv.Itoa(i)
}

// ParseTag is the inverse of Tag.
func ParseTag(s string) (int, error) {
	if s == ZeroTag {
		return zeroIndex, nil
	}
	i, err := strconv.Atoi(s)
	if err != nil || i <= zeroIndex || i > math.MaxInt32 {
		return 0, fmt.Errorf("invalid latency bucket %q: want an integer or %q", s, ZeroTag)
	}
	return i, nil
}

// Value is what bucket i stands for.
func Value(i int) float64 {
	if i == zeroIndex {
		return 0
	}
	return 2 * math.Pow(Gamma, float64(i)) / (Gamma + 1)
}

// Upper is the largest latency of bucket i.
func Upper(i int) float64 {
	if i == zeroIndex {
		return 0
	}
	return math.Pow(Gamma, float64(i))
}

// Histogram is a set of bucket counts. The zero value is empty.
type Histogram struct {
	counts map[int]int64
	total  int64
}

// Add counts n latencies in the bucket of tag.
func (h *Histogram) Add(tag string, n int64) error {
	i, err := ParseTag(tag)
	if err != nil {
		return err
	}
	if n < 0 {
		return fmt.Errorf("negative count %d in latency bucket %q", n, tag)
	}
	h.AddIndex(i, n)
	return nil
}

// AddIndex counts n latencies in bucket i.
func (h *Histogram) AddIndex(i int, n int64) {
	if h.counts == nil {
		h.counts = map[int]int64{}
	}
	h.counts[i] += n
	h.total += n
}

// Observe counts one latency.
func (h *Histogram) Observe(x float64) { h.AddIndex(Index(x), 1) }

// Merge adds o's counts to h.
func (h *Histogram) Merge(o *Histogram) {
	for i, n := range o.counts {
		h.AddIndex(i, n)
	}
}

// Count is the number of latencies counted.
func (h *Histogram) Count() int64 { return h.total }

// Bucket is one bucket's count.
type Bucket struct {
	Index int
	Count int64
}

// Buckets are the non-empty buckets, lowest first.
func (h *Histogram) Buckets() []Bucket {
	out := make([]Bucket, 0, len(h.counts))
	for i, n := range h.counts {
		if n > 0 {
			out = append(out, Bucket{i, n})
		}
	}
	sort.Slice(out, func(a, b int) bool { return out[a].Index < out[b].Index })
	return out
}

// Quantile is the nearest-rank q-quantile (0 < q <= 1): what the bucket of
// the ceil(q·n)-th smallest latency stands for. NaN when h is empty.
func (h *Histogram) Quantile(q float64) float64 {
	if h.total == 0 {
		return math.NaN()
	}
	rank := NearestRank(q, h.total)
	var seen int64
	for _, b := range h.Buckets() {
		seen += b.Count
		if seen >= rank {
			return Value(b.Index)
		}
	}
	return math.NaN() // not reached: the counts add up to total
}

// NearestRank is the 1-based rank of the q-quantile of n values.
func NearestRank(q float64, n int64) int64 {
	r := int64(math.Ceil(q * float64(n)))
	if r < 1 {
		r = 1
	}
	if r > n {
		r = n
	}
	return r
}

// ShareWithin is the share of latencies at most threshold, counted by
// bucket: a bucket counts when what it stands for is at most threshold, so
// the answer is the exact share for some threshold within 1% of it.
// NaN when h is empty.
func (h *Histogram) ShareWithin(threshold float64) float64 {
	if h.total == 0 {
		return math.NaN()
	}
	var n int64
	for i, c := range h.counts {
		if Value(i) <= threshold {
			n += c
		}
	}
	return float64(n) / float64(h.total)
}

// WithinTagRegexp is a regular expression (RE2, anchored) matching the
// bucket tags that ShareWithin(threshold) counts: "zero" and every bucket
// whose value is at most threshold. It lets a query that can only filter
// tags (InfluxQL, Grafana's panels) count the same latencies.
func WithinTagRegexp(threshold float64) string {
	top := Index(threshold) // Value(top) < Upper(top): top or top-1 is the last one in
	if top == zeroIndex {
		return "^zero$"
	}
	for Value(top) > threshold {
		top--
	}
	return "^(zero|" + intsUpTo(top) + ")$"
}

// intsUpTo is an alternation matching the decimal integers (no leading
// zeros, minus sign for negatives) at most n.
func intsUpTo(n int) string {
	if n < 0 {
		// -m for every m >= -n: longer than -n, or as long and not below it.
		m := strconv.Itoa(-n)
		alts := []string{fmt.Sprintf("-[1-9][0-9]{%d,}", len(m))}
		alts = append(alts, sameLengthFrom(m)...)
		for i := range alts[1:] {
			alts[i+1] = "-" + alts[i+1]
		}
		return strings.Join(alts, "|")
	}
	s := strconv.Itoa(n)
	alts := []string{"-[1-9][0-9]*", "[0-9]"}
	if len(s) > 1 {
		alts = alts[:1]
		if len(s) > 2 {
			alts = append(alts, fmt.Sprintf("[1-9][0-9]{0,%d}", len(s)-2), "0")
		} else {
			alts = append(alts, "[0-9]")
		}
		alts = append(alts, sameLengthUpTo(s)...)
	} else {
		alts[1] = "[0-" + s + "]"
	}
	return strings.Join(alts, "|")
}

// sameLengthUpTo matches the numbers of s's length (no leading zero) at
// most s.
func sameLengthUpTo(s string) []string {
	var alts []string
	for k := 0; k < len(s); k++ {
		lo := byte('0')
		if k == 0 {
			lo = '1'
		}
		if s[k] > lo {
			alts = append(alts, s[:k]+digitRange(lo, s[k]-1)+anyDigits(len(s)-k-1))
		}
	}
	return append(alts, s)
}

// sameLengthFrom matches the numbers of s's length at least s.
func sameLengthFrom(s string) []string {
	var alts []string
	for k := 0; k < len(s); k++ {
		if s[k] < '9' {
			alts = append(alts, s[:k]+digitRange(s[k]+1, '9')+anyDigits(len(s)-k-1))
		}
	}
	return append(alts, s)
}

func digitRange(lo, hi byte) string {
	if lo == hi {
		return string(lo)
	}
	return "[" + string(lo) + "-" + string(hi) + "]"
}

func anyDigits(n int) string {
	switch n {
	case 0:
		return ""
	case 1:
		return "[0-9]"
	}
	return fmt.Sprintf("[0-9]{%d}", n)
}
