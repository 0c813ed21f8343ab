package demo

import (
	"encoding/json"
	"html"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"testing"

	"github.com/stretchr/testify/require"
)

// figure is what a reader sees on one chart, as the page records it.
type figure struct {
	caption string
	axis    []string
	legend  []string
	bars    string
	empty   bool
}

// TestHTMLReportRendersIntegration renders the report in headless Chromium
// (Debian's package, installed by `make test`) and checks what a reader
// sees: a labelled time axis and a legend on the latency chart, one bar
// per distinct name with the names in full (two mailers that differ only
// after their first label stay apart), a latency axis on the
// distribution, the SLA table, and nothing drawn for a chart without data.
func TestHTMLReportRendersIntegration(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test")
	}
	chromium, err := exec.LookPath("chromium")
	require.NoError(t, err, "chromium is needed: `make test` installs Debian's package")
	charts := []Chart{
		{Title: "latency", Kind: "time", YTitle: "ms", Series: map[string][][2]float64{
			"dc1 p99": {{1795356000, 1900}, {1795356060, 2100}, {1795359600, 2000}}, "dc2 p99": {{1795356000, 1700}}}},
		{Title: "by event", Kind: "bar", Bars: map[string]float64{"delivered": 6500, "bounced": 600}},
		{Title: "slow by mailer", Kind: "bar", Bars: map[string]float64{
			"mx01.dc1.example.net": 12, "mx01.dc2.example.net": 7, "mx02.dc1.example.net": 3}},
		{Title: "distribution", Kind: "distribution", Series: map[string][][2]float64{
			"dc1": {{98.2, 0.1}, {250.5, 0.6}, {1949.9, 0.3}}}},
		{Title: "empty", Kind: "bar", Bars: map[string]float64{}},
	}
	tables := []Table{{Title: "SLA this month", Columns: []string{"dc", "count", "p99"}, Rows: [][]string{{"dc1", "1200", "1947.8"}}}}
	path := filepath.Join(t.TempDir(), "report.html")
	f, err := os.Create(path)
	require.NoError(t, err)
	require.NoError(t, WriteHTML(f, "test report", charts, tables))
	require.NoError(t, f.Close())

	out, err := exec.Command(chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
		"--disable-background-networking", "--disable-component-update", "--disable-sync", "--window-size=1400,2000",
		"--user-data-dir="+t.TempDir(), "--dump-dom", "file://"+path).Output()
	require.NoError(t, err)
	m := regexp.MustCompile(`<body data-drawn="(\d+)"`).FindSubmatch(out)
	require.NotNil(t, m, "the page did not run: %.300s", out)
	require.Equal(t, "4", string(m[1]), "four charts have data, one has none")

	figs := figures(t, out)
	require.Len(t, figs, 5)
	latency, events, mailers, dist, empty := figs[0], figs[1], figs[2], figs[3], figs[4]

	require.Equal(t, "latency", latency.caption)
	require.NotEmpty(t, latency.axis)
	require.Equal(t, []string{"14:00", "14:10", "14:20", "14:30", "14:40", "14:50", "15:00"}, latency.axis, "1795356000 is 14:00 UTC; the points span an hour")
	require.Equal(t, []string{"dc1 p99", "dc2 p99"}, latency.legend)

	require.Equal(t, "2", events.bars)
	require.Equal(t, []string{"bounced", "delivered"}, events.axis)
	require.Equal(t, "3", mailers.bars, "one bar per distinct name")
	require.Equal(t, []string{"mx01.dc1.example.net", "mx01.dc2.example.net", "mx02.dc1.example.net"}, mailers.axis, "names in full")

	require.NotEmpty(t, dist.axis, "a latency axis")
	require.Equal(t, []string{"dc1"}, dist.legend)
	require.True(t, empty.empty)

	require.Regexp(t, `<caption>SLA this month</caption>`, string(out))
	require.Regexp(t, `<td>1947.8</td>`, string(out))
}

func figures(t *testing.T, dom []byte) []figure {
	t.Helper()
	attr := func(tag, name string) string {
		m := regexp.MustCompile(`\s` + name + `="([^"]*)"`).FindStringSubmatch(tag)
		if m == nil {
			return ""
		}
		return html.UnescapeString(m[1])
	}
	list := func(tag, name string) []string {
		var out []string
		if s := attr(tag, name); s != "" {
			require.NoError(t, json.Unmarshal([]byte(s), &out), "%s: %s", name, s)
		}
		return out
	}
	var figs []figure
	for _, m := range regexp.MustCompile(`(?s)<figure([^>]*)><figcaption>(.*?)</figcaption>`).FindAllSubmatch(dom, -1) {
		tag := string(m[1])
		figs = append(figs, figure{caption: html.UnescapeString(string(m[2])), axis: list(tag, "data-axis"),
			legend: list(tag, "data-legend"), bars: attr(tag, "data-bars"), empty: attr(tag, "data-empty") == "1"})
	}
	return figs
}
