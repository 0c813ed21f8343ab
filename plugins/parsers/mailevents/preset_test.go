package mailevents

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/influxdata/telegraf"
	"github.com/stretchr/testify/require"

	"github.com/mailtick/mailtick/internal/providertest"
)

var update = flag.Bool("update", false, "rewrite the presets' expected output in testdata/presets")

// vocabulary is the one set of event names every preset maps into;
// resubscribed is the one name beyond it (Postmark, SendGrid).
var vocabulary = []string{
	"accepted", "delivered", "deferred", "bounced", "rejected", "failed",
	"opened", "clicked", "complained", "unsubscribed", "resubscribed",
}

// TestPresets decodes every published sample of every provider through
// its preset. The metrics must equal testdata/presets/<preset>.txt, which
// was written by -update and then read line by line against the
// providers' documentation; and whatever that file says, each metric must
// have a provider event name in the vocabulary, the provider's mailer tag,
// and a time of its own, not the time it was received.
func TestPresets(t *testing.T) {
	for _, name := range PresetNames() {
		t.Run(name, func(t *testing.T) {
			bodies, err := providertest.Bodies(name)
			require.NoError(t, err)
			m := DefaultMapping()
			m.Preset = name
			d, err := m.NewDecoder()
			require.NoError(t, err)

			var got strings.Builder
			for _, body := range bodies {
				out := d.Decode(NewScratch(), body.Data, receivedAt)
				require.Empty(t, out.Bad, body.Name)
				require.GreaterOrEqual(t, len(out.Metrics), body.Events, body.Name)
				fmt.Fprintf(&got, "# %s\n", body.Name)
				for _, mt := range out.Metrics {
					ev, _ := mt.GetTag("event")
					require.Contains(t, vocabulary, ev, body.Name)
					mailer, _ := mt.GetTag("mailer")
					require.Equal(t, strings.TrimSuffix(strings.TrimSuffix(name, "_sns"), "_events_api"), mailer, body.Name)
					if !noTime[body.Name] {
						require.NotEqual(t, receivedAt.Unix(), mt.Time().Unix(), "%s: no time of its own", body.Name)
					}
					got.WriteString(render(mt))
				}
			}
			file := filepath.Join("testdata", "presets", name+".txt")
			if *update {
				require.NoError(t, os.MkdirAll(filepath.Dir(file), 0o755))
				require.NoError(t, os.WriteFile(file, []byte(got.String()), 0o644))
			}
			want, err := os.ReadFile(file)
			require.NoError(t, err)
			require.Equal(t, string(want), got.String())
		})
	}
}

// noTime lists the samples that carry no time: django-anymail trimmed it.
var noTime = map[string]bool{"sparkpost.json#7": true, "sparkpost.json#8": true, "postmark.json#8": true}

// render is one metric per line, tags and fields sorted, values typed.
func render(m telegraf.Metric) string {
	var b strings.Builder
	b.WriteString(m.Name())
	tags := m.Tags()
	for _, k := range slices.Sorted(func(yield func(string) bool) {
		for k := range tags {
			if !yield(k) {
				return
			}
		}
	}) {
		fmt.Fprintf(&b, ",%s=%s", k, tags[k])
	}
	fields := m.Fields()
	keys := make([]string, 0, len(fields))
	for k := range fields {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for i, k := range keys {
		sep := ","
		if i == 0 {
			sep = " "
		}
		fmt.Fprintf(&b, "%s%s=%#v", sep, k, fields[k])
	}
	fmt.Fprintf(&b, " %s\n", m.Time().UTC().Format(time.RFC3339Nano))
	return b.String()
}

// TestPresetOverrides: options written beside a preset change it; lists
// add, tables merge, single values replace.
func TestPresetOverrides(t *testing.T) {
	m := DefaultMapping()
	m.Preset = "sendgrid"
	m.ValueMaps = map[string]map[string]string{"event": {"processed": "queued"}}
	m.KeepKeys = []string{"asm_group_id"}
	m.TimeFill = "none"
	merged, err := m.withPreset()
	require.NoError(t, err)
	require.Equal(t, "queued", merged.ValueMaps["event"]["processed"], "yours wins")
	require.Equal(t, "opened", merged.ValueMaps["event"]["open"], "the preset's other entries stay")
	require.Equal(t, []string{"tls", "asm_group_id"}, merged.KeepKeys, "lists add")
	require.Equal(t, "none", merged.TimeFill, "single values replace")
	require.Equal(t, "email", func() string {
		for k, v := range merged.Rename {
			if v == "recipient" {
				return k
			}
		}
		return ""
	}())

	m = DefaultMapping()
	m.Preset = "postmark"
	m.TimeKeys = []string{"MyTime"}
	merged, err = m.withPreset()
	require.NoError(t, err)
	require.Equal(t, "MyTime", merged.TimeKeys[0], "time_keys written beside a preset come first")

	m = DefaultMapping()
	m.Preset = "mailchimp"
	_, err = m.NewDecoder()
	require.ErrorContains(t, err, `invalid "preset" value "mailchimp": want one of mailgun, mailgun_events_api, mandrill, postmark, sendgrid, ses, ses_sns, sparkpost`)
}
