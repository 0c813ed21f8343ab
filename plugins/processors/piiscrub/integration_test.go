package piiscrub

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/mailtick/mailtick/internal/gen"
	"github.com/mailtick/mailtick/internal/pii"
	"github.com/mailtick/mailtick/internal/testutil/stacktest"
)

// TestAgentIntegration runs the real agent: inputs.mailevents from a real
// nsqd -> processors.piiscrub (sample.conf, key from the environment) ->
// outputs.file.
func TestAgentIntegration(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test")
	}
	nsqd := stacktest.NSQD(t)
	out := filepath.Join(t.TempDir(), "metrics.out")
	conf := fmt.Sprintf(`[agent]
  flush_interval = "200ms"
  omit_hostname = true
[[inputs.mailevents]]
  nsqd = [%q]
  [inputs.mailevents.tags]
    dc = "dc1"
%s
[[outputs.file]]
  files = [%q]
  data_format = "influx"
`, nsqd.TCPAddr, sampleConfig, out)
	stacktest.Telegraf(t, conf, "MAILTICK_PII_KEY="+testKey)

	const n = 2000
	var sent []gen.Event
	_, err := gen.Publish(context.Background(), nsqd.TCPAddr, "mail_events", gen.Config{Seed: 21, Count: n}, 0, 200,
		func(m gen.Message) { sent = append(sent, m.Event) })
	require.NoError(t, err)

	var lines []string
	require.Eventually(t, func() bool {
		lines = readLines(t, out)
		return len(lines) >= n
	}, 30*time.Second, 100*time.Millisecond, "want %d metrics in %s", n, out)
	require.Len(t, lines, n)

	pseudonyms := centralConfig(t)
	for i, line := range lines {
		require.False(t, pii.Contains(line), "line %d holds an address: %s", i, line)
		require.Contains(t, line, "latency_ms=", "allowed fields are kept")
	}
	for _, ev := range sent[:50] {
		// The sender's pseudonym, made with the same key, is in the output.
		require.Contains(t, strings.Join(lines, "\n"), `sender="`+string(pseudonyms.pseudonym(nil, ev.Sender))+`"`)
	}
}

func readLines(t *testing.T, path string) []string {
	f, err := os.Open(path)
	if os.IsNotExist(err) {
		return nil
	}
	require.NoError(t, err)
	defer f.Close()
	var lines []string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		lines = append(lines, sc.Text())
	}
	return lines
}
