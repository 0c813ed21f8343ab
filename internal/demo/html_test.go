package demo

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestHTMLReportRendersIntegration renders the report in headless Chromium
// (Debian's package, installed by `make test`) and checks that every chart
// with data drew, and that one without data did not claim to.
func TestHTMLReportRendersIntegration(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test")
	}
	chromium, err := exec.LookPath("chromium")
	require.NoError(t, err, "chromium is needed: `make test` installs Debian's package")
	charts := []Chart{
		{Title: "latency", Kind: "line", Series: map[string][][2]float64{
			"dc1 p99": {{1795356000, 1900}, {1795356060, 2100}}, "dc2 p99": {{1795356000, 1700}}}},
		{Title: "counts", Kind: "bar", Bars: map[string]float64{"delivered": 6500, "bounced": 600}},
		{Title: "slow by mailer", Kind: "bar", Bars: map[string]float64{"mx01.dc1.example.net": 12}},
		{Title: "empty", Kind: "bar", Bars: map[string]float64{}},
	}
	path := filepath.Join(t.TempDir(), "report.html")
	f, err := os.Create(path)
	require.NoError(t, err)
	require.NoError(t, WriteHTML(f, "test report", charts))
	require.NoError(t, f.Close())

	out, err := exec.Command(chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
		"--disable-background-networking", "--disable-component-update", "--disable-sync",
		"--user-data-dir="+t.TempDir(), "--dump-dom", "file://"+path).Output()
	require.NoError(t, err)
	m := regexp.MustCompile(`<body data-drawn="(\d+)"`).FindSubmatch(out)
	require.NotNil(t, m, "the page did not run: %.300s", out)
	require.Equal(t, "3", string(m[1]), "three charts have data, one has none")
	require.Len(t, regexp.MustCompile(`<canvas width="600"`).FindAll(out, -1), 4, "a canvas per chart")
}
