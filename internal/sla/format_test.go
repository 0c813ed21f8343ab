package sla

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/mailtick/mailtick/internal/latency"
	"github.com/mailtick/mailtick/internal/report"
)

// TestFormats: the text table, the side-by-side comparison with B/A, CSV.
func TestFormats(t *testing.T) {
	a, b := report.Range{Name: "A", From: time.Unix(0, 0)}, report.Range{Name: "B", From: time.Unix(0, 0)}
	var ha, hb latency.Histogram
	for _, x := range []float64{100, 200, 300, 400} {
		ha.Observe(x)
		hb.Observe(2 * x)
	}
	within := []time.Duration{300 * time.Millisecond}
	results := []Result{
		result(a, []string{"dc"}, "dc1", &ha, within),
		result(b, []string{"dc"}, "dc1", &hb, within),
	}
	require.Equal(t, "p99.9", QuantileName(0.999))
	require.Equal(t, "p50", QuantileName(0.5))

	var text bytes.Buffer
	require.NoError(t, Table(results).WriteText(&text, []string{"dc"}, []report.Range{a, b}))
	require.Contains(t, text.String(), "A: A")
	var countLine, withinLine string
	for _, l := range strings.Split(text.String(), "\n") {
		if strings.Contains(l, " count ") {
			countLine = l
		}
		if strings.Contains(l, "within 300ms") {
			withinLine = l
		}
	}
	require.Regexp(t, `dc1\s+count\s+4\s+4\s+1\.000`, countLine)
	// 300 itself may count or not (a threshold within 1%): its bucket
	// stands for a little more than 300, so it does not.
	require.Regexp(t, `50\.00%\s+25\.00%\s+0\.500`, withinLine)

	var csv bytes.Buffer
	require.NoError(t, Table(results).WriteCSV(&csv, []string{"dc"}))
	lines := strings.Split(strings.TrimSpace(csv.String()), "\n")
	require.Equal(t, "range,from,to,dc,count,p50,p90,p95,p99,p99.9,within_300ms", lines[0])
	require.True(t, strings.HasPrefix(lines[1], "A,1970-01-01T00:00:00Z,0001-01-01T00:00:00Z,dc1,4,"), lines[1])
	require.True(t, strings.HasSuffix(lines[1], ",0.5"), lines[1])
}
