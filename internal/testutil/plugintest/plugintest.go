// Package plugintest holds what every plugin's tests check alike.
package plugintest

import (
	"os"
	"testing"

	"github.com/influxdata/telegraf/config"
	"github.com/stretchr/testify/require"
)

// SampleConfigLoads requires sample.conf to load as Telegraf loads a
// config file, to hold one plugin and that plugin to initialize, and the
// README to show it (ReadmeShowsSample). It returns the plugin (the
// telegraf.Input, StreamingProcessor or Output Telegraf runs) for checks
// of the plugin's own. The test sets what sample.conf takes from the
// environment first. The plugin must be registered: call it from the
// plugin's package.
func SampleConfigLoads(t testing.TB, sampleConfig string) any {
	t.Helper()
	c := config.NewConfig()
	require.NoError(t, c.LoadConfigData([]byte(sampleConfig), ""))
	type loaded struct {
		init   func() error
		plugin any
	}
	var all []loaded
	for _, p := range c.Inputs {
		all = append(all, loaded{p.Init, p.Input})
	}
	for _, p := range c.Processors {
		all = append(all, loaded{p.Init, p.Processor})
	}
	for _, p := range c.Outputs {
		all = append(all, loaded{p.Init, p.Output})
	}
	require.Len(t, all, 1, "sample.conf holds one plugin")
	require.NoError(t, all[0].init())
	ReadmeShowsSample(t, sampleConfig)
	return all[0].plugin
}

// ReadmeShowsSample requires the plugin's README.md (in the test's folder)
// to show sample.conf as it is, in a "```toml @sample.conf" block, as
// Telegraf's own plugin READMEs do.
func ReadmeShowsSample(t testing.TB, sampleConfig string) {
	t.Helper()
	readme, err := os.ReadFile("README.md")
	require.NoError(t, err)
	require.Contains(t, string(readme), "```toml @sample.conf\n"+sampleConfig+"```", "README must show sample.conf as it is")
}
