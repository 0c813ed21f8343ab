// Package plugintest holds what every plugin's tests check alike.
package plugintest

import (
	"os"
	"testing"

	"github.com/stretchr/testify/require"
)

// ReadmeShowsSample requires the plugin's README.md (in the test's folder)
// to show sample.conf as it is, in a "```toml @sample.conf" block, as
// Telegraf's own plugin READMEs do.
func ReadmeShowsSample(t testing.TB, sampleConfig string) {
	t.Helper()
	readme, err := os.ReadFile("README.md")
	require.NoError(t, err)
	require.Contains(t, string(readme), "```toml @sample.conf\n"+sampleConfig+"```", "README must show sample.conf as it is")
}
