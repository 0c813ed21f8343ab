// Package e2e runs the whole per-DC pipeline of telegraf.conf and
// tasks.toml on real servers: nsqd -> bin/telegraf -> DC InfluxDB ->
// Kapacitor -> the agent's listener -> piiscrub -> rollupfwd -> central
// InfluxDB.
package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/mailtick/mailtick/internal/gen"
	"github.com/mailtick/mailtick/internal/pii"
	"github.com/mailtick/mailtick/internal/stack"
	"github.com/mailtick/mailtick/internal/stack/stacktest"
	"github.com/mailtick/mailtick/internal/tasks"
)

func TestOneDCIntegration(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test")
	}
	root, err := stack.Root()
	require.NoError(t, err)
	lookupd := stacktest.NSQLookupd(t)
	nsqd := stacktest.NSQDWith(t, stack.NSQDOptions{Lookupd: []string{lookupd.TCPAddr}})
	dcDB := stacktest.InfluxDB(t)
	central := stacktest.InfluxDB(t)
	_, err = dcDB.Query("", "CREATE DATABASE mail")
	require.NoError(t, err)
	port, err := stack.FreePort()
	require.NoError(t, err)
	listen := fmt.Sprintf("127.0.0.1:%d", port)

	conf, err := os.ReadFile(filepath.Join(root, "telegraf.conf"))
	require.NoError(t, err)
	stacktest.Telegraf(t, string(conf),
		"MAILTICK_DC=dc1", "NSQLOOKUPD_HTTP="+lookupd.HTTPAddr, "DC_INFLUXDB_URL="+dcDB.URL,
		"LISTEN_ADDRESS="+listen, "CENTRAL_INFLUXDB_URL="+central.URL,
		"MAILTICK_PII_KEY=0123456789abcdef-e2e", "MAILTICK_PII_KEY_ID=e2e", "SPOOL_DIR="+t.TempDir())
	kapa := stacktest.Kapacitor(t, dcDB.URL, stack.Cluster{Name: "agent", URL: "http://" + listen})

	// The DC's tasks, rollups sent through the agent.
	dir := t.TempDir()
	tasksFile := filepath.Join(dir, "tasks.toml")
	require.NoError(t, os.WriteFile(tasksFile, []byte(fmt.Sprintf(`[kapacitor]
  url = %q
[[task]]
  name = "mail_counts_1m"
  script = %q
  [task.vars]
    every = "1s"
    period = "1h"
    out_cluster = "agent"
[[task]]
  name = "mail_spam"
  script = %q
  [task.vars]
    out_cluster = "agent"
    log_path = %q
`, kapa.URL, filepath.Join(root, "tickscripts", "mail_counts.tick"), filepath.Join(root, "tickscripts", "mail_spam.tick"),
		filepath.Join(dir, "spam.log"))), 0o600))
	f, want, err := tasks.Load(tasksFile)
	require.NoError(t, err)
	c, err := f.Client()
	require.NoError(t, err)
	plan, err := tasks.Plan(c, f, want, false)
	require.NoError(t, err)
	require.NoError(t, tasks.Apply(c, plan))

	// K events with e-mail and IP addresses in every string field, into NSQ.
	const k = 3000
	g, err := gen.New(gen.Config{Seed: 77, Count: k, Interval: 300 * time.Millisecond,
		Start: time.Now().Add(-k * 300 * time.Millisecond).Truncate(time.Minute)})
	require.NoError(t, err)
	sink, err := gen.NewNSQSink(nsqd.TCPAddr, "mail_events")
	require.NoError(t, err)
	byKey := map[string]int64{}
	_, err = gen.Run(context.Background(), g, sink, 0, 200, func(m gen.Message) {
		byKey[m.Event.Direction+" "+m.Event.Event]++
	})
	sink.Close()
	require.NoError(t, err)

	// Exactness: the DC has every raw event; central counts add up to K
	// per direction and event.
	require.Eventually(t, func() bool {
		n, err := dcDB.Count("mail", `SELECT count("queue_id") FROM mail_event`)
		return err == nil && n == k
	}, 60*time.Second, 250*time.Millisecond, "every raw event in the DC database")
	require.Eventually(t, func() bool {
		n, err := central.Count("mail_central", `SELECT sum("count") FROM mail_counts WHERE "window" = '1m'`)
		return err == nil && n == k
	}, 90*time.Second, 250*time.Millisecond, "central counts add up to every event")
	series, err := central.Query("mail_central", `SELECT sum("count") FROM mail_counts WHERE "window" = '1m' GROUP BY "direction", "event"`)
	require.NoError(t, err)
	got := map[string]int64{}
	for _, s := range series {
		n, err := s.Values[0][1].(json.Number).Int64()
		require.NoError(t, err)
		got[s.Tags["direction"]+" "+s.Tags["event"]] = n
	}
	require.Equal(t, byKey, got)

	// Privacy: nothing in the central database holds an e-mail or IP
	// address; the DC still has them.
	require.Eventually(t, func() bool {
		n, err := central.Count("mail_central", `SELECT count("distinct_recipients") FROM mail_spam`)
		return err == nil && n > 0
	}, 90*time.Second, 250*time.Millisecond, "spam signals central, senders pseudonymized")
	dump, err := central.Query("mail_central", `SELECT * FROM /.*/`)
	require.NoError(t, err)
	keys, err := central.Query("mail_central", `SHOW TAG VALUES WITH KEY =~ /.*/`)
	require.NoError(t, err)
	raw, _ := json.Marshal(append(dump, keys...))
	require.NotEmpty(t, dump)
	for _, s := range append(dump, keys...) {
		for _, row := range s.Values {
			for _, v := range row {
				if str, ok := v.(string); ok {
					require.False(t, pii.Contains(str), "central holds %q", str)
				}
			}
		}
		for _, v := range s.Tags {
			require.False(t, pii.Contains(v), "central holds tag %q", v)
		}
	}
	require.NotContains(t, string(raw), "@example")
	dcDump, err := dcDB.Query("mail", `SELECT sender FROM mail_event LIMIT 1`)
	require.NoError(t, err)
	require.True(t, pii.Contains(dcDump[0].Values[0][1].(string)), "the DC keeps the raw data")
}
