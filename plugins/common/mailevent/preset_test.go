package mailevent

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

	"github.com/mailtick/mailtick/internal/testutil/providertest"
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
				out := decodeDetached(t, d, NewScratch(), body.Data)
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

// presetsREADME documents the presets (with the mapping's other options).
const presetsREADME = "../../parsers/mailevents/README.md"

// TestPresetTablesInREADME: the README's provider tables are the presets
// themselves, rendered; -update rewrites them.
func TestPresetTablesInREADME(t *testing.T) {
	var b strings.Builder
	for _, name := range PresetNames() {
		b.WriteString(presetTable(name))
	}
	const open, end = "<!-- presets: generated by go test -run TestPresetTablesInREADME -update -->\n", "<!-- /presets -->"
	readme, err := os.ReadFile(presetsREADME)
	require.NoError(t, err)
	text := string(readme)
	i, j := strings.Index(text, open), strings.Index(text, end)
	require.True(t, i >= 0 && j > i, "README.md must have the presets markers")
	if *update {
		text = text[:i+len(open)] + b.String() + text[j:]
		require.NoError(t, os.WriteFile(presetsREADME, []byte(text), 0o644))
	}
	require.Equal(t, b.String(), text[i+len(open):j])
}

// presetTable renders one preset: where its events are, which provider
// key becomes which mailtick key, and which events map to what.
func presetTable(name string) string {
	m := presets[name]()
	var b strings.Builder
	fmt.Fprintf(&b, "### `preset = %q`\n\n", name)
	var notes []string
	if m.FormField != "" {
		notes = append(notes, fmt.Sprintf("form field `%s`", m.FormField))
	}
	if len(m.JSONKeys) > 0 {
		notes = append(notes, fmt.Sprintf("JSON inside `%s`", strings.Join(m.JSONKeys, "`, `")))
	}
	if m.EventsPath != "" {
		notes = append(notes, fmt.Sprintf("events at `%s`", m.EventsPath))
	}
	if len(m.Explode) > 0 {
		notes = append(notes, fmt.Sprintf("one metric per element of `%s`", strings.Join(m.Explode, "`, `")))
	}
	notes = append(notes, fmt.Sprintf("time: the first of `%s`", strings.Join(m.TimeKeys, "`, `")))
	if m.TimeFill != "" {
		notes = append(notes, "`time_fill = \""+m.TimeFill+"\"`")
	}
	if len(m.KeepKeys) > 0 {
		notes = append(notes, fmt.Sprintf("other keys dropped, except `%s`", strings.Join(m.KeepKeys, "`, `")))
	}
	b.WriteString(strings.Join(notes, "; ") + ".\n\n| provider key | mailtick key |\n|---|---|\n")
	from := slices.Sorted(func(yield func(string) bool) {
		for k := range m.Rename {
			if !yield(k) {
				return
			}
		}
	})
	slices.SortStableFunc(from, func(a, c string) int { return strings.Compare(m.Rename[a], m.Rename[c]) })
	for _, k := range from {
		fmt.Fprintf(&b, "| `%s` | `%s` |\n", k, m.Rename[k])
	}
	for _, c := range m.Captures {
		fmt.Fprintf(&b, "| `%s` (text) | `smtp_code`, `smtp_status` when absent |\n", c.Key)
	}
	b.WriteString("\n| provider event | `event` |\n|---|---|\n")
	events := m.ValueMaps["event"]
	for _, k := range slices.Sorted(func(yield func(string) bool) {
		for k := range events {
			if !yield(k) {
				return
			}
		}
	}) {
		fmt.Fprintf(&b, "| `%s` | `%s` |\n", k, events[k])
	}
	for _, r := range m.ValueRules {
		var when []string
		for _, k := range slices.Sorted(func(yield func(string) bool) {
			for k := range r.When {
				if !yield(k) {
					return
				}
			}
		}) {
			when = append(when, fmt.Sprintf("%s=%s", k, r.When[k]))
		}
		cond := "always"
		if len(when) > 0 {
			cond = "`" + strings.Join(when, "`, `") + "`"
		}
		fmt.Fprintf(&b, "| %s | `%s = %s` |\n", cond, r.Key, r.Value)
	}
	b.WriteString("\nOther event names are kept as the provider writes them.\n\n")
	return b.String()
}

// TestWithDefaults: what a table leaves out is DefaultMapping's, what it
// writes stays.
func TestWithDefaults(t *testing.T) {
	require.Equal(t, DefaultMapping(), Mapping{}.WithDefaults())
	m := Mapping{Preset: "mailgun", Measurement: "webhook_event", TagKeys: []string{}}.WithDefaults()
	want := DefaultMapping()
	want.Preset, want.Measurement, want.TagKeys = "mailgun", "webhook_event", []string{}
	require.Equal(t, want, m)
}
