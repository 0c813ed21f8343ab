// Package tickscripts holds the Kapacitor TICKscripts of mailtick; its
// tests run them on a real Kapacitor reading a real InfluxDB, and check
// what they write against the same events counted here.
package tickscripts

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	client "github.com/influxdata/kapacitor/client/v1"
	"github.com/stretchr/testify/require"

	"github.com/mailtick/mailtick/internal/gen"
	"github.com/mailtick/mailtick/internal/kapacitor/tasks"
	"github.com/mailtick/mailtick/internal/latency"
	"github.com/mailtick/mailtick/internal/sla"
	"github.com/mailtick/mailtick/internal/testutil/stack"
	"github.com/mailtick/mailtick/internal/testutil/stacktest"
)

// script is the absolute path of a script of this folder.
func script(t *testing.T, name string) string {
	p, err := filepath.Abs(name)
	require.NoError(t, err)
	return p
}

// deploy applies a tasks file of body to Kapacitor at url.
func deploy(t *testing.T, url, body string) *client.Client {
	t.Helper()
	path := filepath.Join(t.TempDir(), "tasks.toml")
	require.NoError(t, os.WriteFile(path, []byte(fmt.Sprintf("id_prefix = \"test_\"\n[kapacitor]\n  url = %q\n", url)+body), 0o600))
	_, c, err := tasks.ApplyFile(path, false, tasks.Options{})
	require.NoError(t, err)
	return c
}

// seeded starts an InfluxDB with 2000 generated events (seed) in "mail"
// and an empty "mail_rollups", and a Kapacitor reading it.
func seeded(t *testing.T, seed uint64) (*stack.InfluxDB, *stack.Kapacitor, []gen.Message) {
	t.Helper()
	db := stacktest.InfluxDB(t, "mail", "mail_rollups")
	kapa := stacktest.Kapacitor(t, db.URL)
	return db, kapa, stacktest.SeedEvents(t, db, "mail", seed, 2000)
}

// TestRollupsIntegration: mail_counts.tick and mail_latency.tick over seeded
// raw events; the counts add up to every event, and the percentiles are
// those of the events (nearest rank, computed here).
func TestRollupsIntegration(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test")
	}
	db, kapa, events := seeded(t, 5)
	deploy(t, kapa.URL, fmt.Sprintf(`
[[task]]
  name = "counts_1m"
  script = %q
  [task.vars]
    every = "1s"
    period = "1h"
[[task]]
  name = "latency_1m"
  script = %q
  [task.vars]
    every = "1s"
    period = "1h"
`, script(t, "mail_counts.tick"), script(t, "mail_latency.tick")))

	// The counts add up to every event; the percentiles are those of the events.
	require.Eventually(t, func() bool {
		n, err := db.Count("mail_rollups", `SELECT sum("count") FROM mail_counts WHERE "window" = '1m'`)
		return err == nil && n == int64(len(events))
	}, 30*time.Second, 200*time.Millisecond, "sum of mail_counts = %d events", len(events))
	expected := stacktest.LatencyByMinute(events)
	const latencyQuery = `SELECT "p50", "p99", "max", "count" FROM mail_latency WHERE "window" = '1m' GROUP BY direction`
	require.Eventually(t, func() bool {
		series, err := db.Query("mail_rollups", latencyQuery)
		return err == nil && len(series) == 2 && len(series[0].Values)+len(series[1].Values) == len(expected)
	}, 30*time.Second, 200*time.Millisecond)
	series, err := db.Query("mail_rollups", latencyQuery)
	require.NoError(t, err)
	for _, s := range series {
		for _, row := range s.Values {
			ts, err := row[0].(json.Number).Int64()
			require.NoError(t, err)
			key := fmt.Sprintf("%s %d", s.Tags["direction"], ts)
			require.Contains(t, expected, key)
			require.Equal(t, expected[key], fmt.Sprint(row[1:]), key)
		}
	}

}

// TestVolumeCheckIntegration: ~1000 mails per direction, above warn_above,
// below crit_above: mail_volume_check.tick raises a WARNING per dc and
// direction on its topic.
func TestVolumeCheckIntegration(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test")
	}
	db := stacktest.InfluxDB(t, "mail")
	kapa := stacktest.Kapacitor(t, db.URL)
	stacktest.SeedEvents(t, db, "mail", 5, 2000)
	c := deploy(t, kapa.URL, fmt.Sprintf(`
[[task]]
  name = "volume"
  script = %q
  [task.vars]
    every = "1s"
    period = "1h"
    warn_above = 100
    crit_above = 1000000
    topic = "volume_test"
    log_path = %q
`, script(t, "mail_volume_check.tick"), filepath.Join(t.TempDir(), "volume.log")))
	require.Eventually(t, func() bool {
		ev, err := c.ListTopicEvents(c.TopicEventsLink("volume_test"), nil)
		if err != nil || len(ev.Events) != 2 {
			return false
		}
		for _, e := range ev.Events {
			if e.State.Level != "WARNING" || !strings.Contains(e.State.Message, "mails in dc1") {
				return false
			}
		}
		return true
	}, 30*time.Second, 200*time.Millisecond, "a WARNING for inbound and one for outbound")
}

// TestSpamIntegration streams events with a spam burst from one sender
// through mail_spam.tick: its distinct recipients and HELO names are
// counted exactly, and a CRITICAL alert is raised.
func TestSpamIntegration(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test")
	}
	db := stacktest.InfluxDB(t, "mail", "spam_out")
	kapa := stacktest.Kapacitor(t, db.URL)
	c := deploy(t, kapa.URL, fmt.Sprintf(`
[[task]]
  name = "spam"
  script = %q
  [task.vars]
    out_db = "spam_out"
    recipients_warn = 50
    recipients_crit = 100
    topic = "spam_test"
    log_path = %q
`, script(t, "mail_spam.tick"), filepath.Join(t.TempDir(), "spam.log")))

	// Ordinary traffic over three minutes, and in the first minute one
	// sender mailing 150 distinct recipients from 12 HELO names; its next
	// event, a minute later, closes its window (stream windows close on the
	// group's next point).
	t0 := time.Now().Add(-5 * time.Minute).Truncate(time.Minute)
	g, err := gen.New(gen.Config{Seed: 9, Interval: 400 * time.Millisecond, Start: t0})
	require.NoError(t, err)
	var msgs []gen.Message
	for i := 0; i < 450; i++ {
		msgs = append(msgs, g.Next())
	}
	spammer := "spammer@bad.example"
	for i := 0; i < 150; i++ {
		m := g.Next()
		m.Event.Sender, m.Event.Recipient = spammer, fmt.Sprintf("victim%d@example%d.org", i, i%7)
		m.Event.Helo = fmt.Sprintf("host%d.bad.example", i%12)
		m.Time = t0.Add(time.Duration(i) * 300 * time.Millisecond)
		msgs = append(msgs, m)
	}
	last := g.Next()
	last.Event.Sender, last.Time = spammer, t0.Add(3*time.Minute+time.Second)
	msgs = append(msgs, last)
	sort.Slice(msgs, func(i, j int) bool { return msgs[i].Time.Before(msgs[j].Time) })
	var lines strings.Builder
	for _, m := range msgs {
		lines.WriteString(m.Line("dc1"))
	}
	require.NoError(t, db.Write("mail", lines.String()))

	require.Eventually(t, func() bool {
		n, err := db.Count("spam_out", `SELECT max("distinct_recipients") FROM mail_spam WHERE "sender" = 'spammer@bad.example'`)
		return err == nil && n == 150
	}, 60*time.Second, 250*time.Millisecond, "150 distinct recipients for the spammer, written in full")
	n, err := db.Count("spam_out", `SELECT max("distinct_helos") FROM mail_spam WHERE "sender" = 'spammer@bad.example'`)
	require.NoError(t, err)
	require.Equal(t, int64(12), n)
	require.Eventually(t, func() bool {
		ev, err := c.ListTopicEvents(c.TopicEventsLink("spam_test"), nil)
		if err != nil {
			return false
		}
		for _, e := range ev.Events {
			if e.ID == "mail_spam/recipients/dc1/"+spammer && e.State.Level == "CRITICAL" {
				return true
			}
		}
		return false
	}, 30*time.Second, 250*time.Millisecond, "a CRITICAL alert for the spammer")
}

// TestLatencyHistIntegration: mail_latency_hist.tick's 1m level from seeded
// raw events, and its 1h and 1d levels from the level below, on a real
// Kapacitor with the mail_latency_hist UDF: every quantile of every minute is
// within 1% of the exact nearest-rank quantile of its events, and each
// level counts every event once.
func TestLatencyHistIntegration(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test")
	}
	db, kapa, events := seeded(t, 7)
	const rollup = `
[[task]]
  name = "hist_%[1]s"
  script = %[2]q
  [task.vars]
    query = "SELECT \"count\", \"bucket\" FROM \"mail_rollups\".\"autogen\".\"mail_latency_hist\" WHERE \"window\" = '%[3]s'"
    field = ""
    window = "%[1]s"
    every = "1s"
    period = "%[4]s"
`
	hist := script(t, "mail_latency_hist.tick")
	deploy(t, kapa.URL, fmt.Sprintf(`
[[task]]
  name = "hist_1m"
  script = %q
  [task.vars]
    every = "1s"
    period = "1h"
`, hist)+fmt.Sprintf(rollup, "1h", hist, "1m", "3h")+fmt.Sprintf(rollup, "1d", hist, "1h", "3d"))

	for _, level := range []string{"1m", "1h", "1d"} {
		require.Eventually(t, func() bool {
			n, err := db.Count("mail_rollups", fmt.Sprintf(`SELECT sum("count") FROM mail_latency_hist WHERE "window" = '%s'`, level))
			return err == nil && n == int64(len(events))
		}, 60*time.Second, 250*time.Millisecond, "level %s counts all %d events", level, len(events))
	}
	src := sla.Source{Querier: stack.Querier{URL: db.URL}, Database: "mail_rollups"}
	for key, exact := range stacktest.LatencyGroups(events) {
		var direction string
		var minute int64
		_, err := fmt.Sscanf(key, "%s %d", &direction, &minute)
		require.NoError(t, err)
		from := time.Unix(0, minute)
		hists, err := src.Histograms(from, from.Add(time.Minute), sla.Filter{Directions: []string{direction}})
		require.NoError(t, err)
		require.Contains(t, hists, "", key)
		h := hists[""]
		require.Equal(t, int64(len(exact)), h.Count(), key)
		for _, q := range sla.Quantiles {
			want := exact[latency.NearestRank(q, int64(len(exact)))-1]
			require.InDelta(t, want, h.Quantile(q), want*latency.RelativeError*1.000001, "%s q%v", key, q)
		}
	}
}
