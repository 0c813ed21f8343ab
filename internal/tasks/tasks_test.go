package tasks

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
	"github.com/mailtick/mailtick/internal/stack/stacktest"
)

func repoScript(name string) string {
	p, _ := filepath.Abs(filepath.Join("..", "..", "tickscripts", name))
	return p
}

// writeTasks writes a tasks.toml for url into dir.
func writeTasks(t *testing.T, dir, url, body string) string {
	t.Helper()
	require.NoError(t, os.MkdirAll(dir, 0o750))
	path := filepath.Join(dir, "tasks.toml")
	text := fmt.Sprintf("id_prefix = \"test_\"\n[kapacitor]\n  url = %q\n", url) +
		strings.NewReplacer("COUNTS", repoScript("mail_counts.tick"), "LATENCY", repoScript("mail_latency.tick"),
			"VOLUME", repoScript("mail_volume_check.tick"), "SPAM", repoScript("mail_spam.tick")).Replace(body)
	require.NoError(t, os.WriteFile(path, []byte(text), 0o600))
	return path
}

func TestParseScript(t *testing.T) {
	text, err := os.ReadFile(repoScript("mail_counts.tick"))
	require.NoError(t, err)
	s, err := ParseScript("mail_counts.tick", string(text))
	require.NoError(t, err)
	require.Equal(t, 1, s.Version)
	require.Equal(t, client.BatchTask, s.Type)
	require.True(t, s.HasDBRP)
	require.Equal(t, map[string]client.VarType{
		"query": client.VarString, "window": client.VarDuration, "window_name": client.VarString,
		"every": client.VarDuration, "period": client.VarDuration, "out_cluster": client.VarString,
		"out_db": client.VarString, "out_rp": client.VarString,
	}, s.Vars)

	s, err = ParseScript("x.tick", "var data = stream|from()\nvar crit = lambda: \"value\" > 10\nvar n = 3\nvar f = 0.5\nvar on = TRUE\nvar hosts = ['a']\nvar re = /^mx/\nvar t duration\ndata|alert().crit(crit)\n")
	require.NoError(t, err)
	require.Equal(t, client.StreamTask, s.Type)
	require.Equal(t, map[string]client.VarType{"crit": client.VarLambda, "n": client.VarInt, "f": client.VarFloat,
		"on": client.VarBool, "hosts": client.VarList, "re": client.VarRegex, "t": client.VarDuration}, s.Vars)
}

func TestLoadErrors(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		body, want string
	}{
		{"[[task]]\n  name = \"c\"\n  script = \"COUNTS\"\n  [task.vars]\n    window = 5\n", `task "c": var "window" (duration): want a duration string like "5m", got int64 5`},
		{"[[task]]\n  name = \"c\"\n  script = \"COUNTS\"\n  [task.vars]\n    windw = \"5m\"\n", `task "c": var "windw" is not declared`},
		{"[[task]]\n  name = \"c\"\n  script = \"COUNTS\"\n  [task.vars]\n    period = \"soon\"\n", `var "period" (duration): want a duration string`},
		{"[[task]]\n  name = \"c\"\n  script = \"COUNTS\"\n[[task]]\n  name = \"c\"\n  script = \"COUNTS\"\n", `task "c" is defined twice`},
		{"[[task]]\n  name = \"c\"\n  script = \"missing.tick\"\n", `task "c": script:`},
		{"[[task]]\n  name = \"c\"\n  script = \"COUNTS\"\n  dbrps = [\"mail\"]\n", `invalid dbrps entry "mail"`},
	}
	for _, tt := range tests {
		path := writeTasks(t, dir, "http://127.0.0.1:9092", tt.body)
		_, _, err := Load(path, Options{})
		require.ErrorContains(t, err, path+": ")
		require.ErrorContains(t, err, tt.want)
	}
}

// Overrides set vars over tasks.toml: for every task declaring the var,
// or for one task; they are typed as the script declares, and one that
// matches nothing is an error. File vars apply where declared.
func TestLoadOverrides(t *testing.T) {
	dir := t.TempDir()
	path := writeTasks(t, dir, "http://127.0.0.1:9092", `
[vars]
  out_cluster = "agent"
[[task]]
  name = "counts"
  script = "COUNTS"
[[task]]
  name = "volume"
  script = "VOLUME"
  [task.vars]
    warn_below = 100
`)
	over := func(ss ...string) Options {
		var opt Options
		for _, s := range ss {
			o, err := ParseOverride(s)
			require.NoError(t, err)
			opt.Overrides = append(opt.Overrides, o)
		}
		return opt
	}
	_, want, err := Load(path, over("every=1s", "volume.warn_below=5", "counts.period=1h"))
	require.NoError(t, err)
	require.Equal(t, "agent", want[0].Vars["out_cluster"].Value, "file vars where the script declares them")
	require.NotContains(t, want[1].Vars, "out_cluster", "not where it does not")
	require.Equal(t, time.Second, want[0].Vars["every"].Value)
	require.Equal(t, time.Second, want[1].Vars["every"].Value, "an unscoped override applies to every task declaring it")
	require.Equal(t, int64(5), want[1].Vars["warn_below"].Value, "over the task's own var")
	require.Equal(t, time.Hour, want[0].Vars["period"].Value)
	require.Equal(t, []string{"every=1s", "period=1h"}, want[0].Overridden)

	for _, tt := range []struct{ opt, want string }{
		{"nosuchvar=1", `override "nosuchvar=1": no task has that name or declares that var`},
		{"nosuchtask.every=1s", `override "nosuchtask.every=1s": no task has that name`},
		{"counts.warn_below=5", `override "counts.warn_below=5": var "warn_below" is not declared`},
		{"volume.warn_below=many", `override "volume.warn_below=many" (int)`},
	} {
		_, _, err := Load(path, over(tt.opt))
		require.ErrorContains(t, err, tt.want)
	}
	_, err = ParseOverride("every")
	require.ErrorContains(t, err, `invalid override "every"`)
}

func TestDiff(t *testing.T) {
	require.Equal(t, []string{"- b", "+ B", "+ d"}, Diff("a\nb\nc", "a\nB\nc\nd"))
	require.Empty(t, Diff("a\nb", "a\nb"))
}

// TestTasksIntegration deploys the repository's TICKscripts to a real
// Kapacitor reading a real InfluxDB, and checks the rollups they write
// against the same events counted here.
func TestTasksIntegration(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test")
	}
	db := stacktest.InfluxDB(t)
	kapa := stacktest.Kapacitor(t, db.URL)
	_, err := db.Query("", "CREATE DATABASE mail; CREATE DATABASE mail_rollups")
	require.NoError(t, err)

	// Raw events of the last 20 minutes, as the agent writes them.
	events := stacktest.SeedEvents(t, db, "mail", 5, 2000)

	dir := t.TempDir()
	tasksBody := `
[[task]]
  name = "counts_1m"
  script = "COUNTS"
  [task.vars]
    every = "1s"
    period = "1h"
[[task]]
  name = "latency_1m"
  script = "LATENCY"
  [task.vars]
    every = "1s"
    period = "1h"
`
	path := writeTasks(t, dir, kapa.URL, tasksBody)
	f, want, err := Load(path, Options{})
	require.NoError(t, err)
	c, err := f.Client()
	require.NoError(t, err)

	plan, err := Plan(c, f, want, false)
	require.NoError(t, err)
	require.Equal(t, []string{"create test_counts_1m", "create test_latency_1m"}, kinds(plan))
	require.NoError(t, Apply(c, plan))
	plan, err = Plan(c, f, want, false)
	require.NoError(t, err)
	require.Equal(t, []string{"unchanged test_counts_1m", "unchanged test_latency_1m"}, kinds(plan), "apply twice changes nothing")

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

	// The volume check: ~1000 mails per direction, above warn_above, below
	// crit_above: a WARNING per dc and direction on the topic.
	volume := writeTasks(t, filepath.Join(dir, "volume"), kapa.URL, fmt.Sprintf(`
[[task]]
  name = "volume"
  script = "VOLUME"
  [task.vars]
    every = "1s"
    period = "1h"
    warn_above = 100
    crit_above = 1000000
    topic = "volume_test"
    log_path = %q
`, filepath.Join(dir, "volume.log")))
	_, _, err = ApplyFile(volume, false, Options{})
	require.NoError(t, err)
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
	require.NoError(t, c.DeleteTask(c.TaskLink("test_volume")))

	// A var changed in tasks.toml: plan shows it, apply makes it so.
	path = writeTasks(t, dir, kapa.URL, strings.Replace(tasksBody, `period = "1h"`, `period = "2h"`, 1))
	f, want, err = Load(path, Options{})
	require.NoError(t, err)
	plan, err = Plan(c, f, want, false)
	require.NoError(t, err)
	require.Equal(t, []string{"update test_counts_1m", "unchanged test_latency_1m"}, kinds(plan))
	require.Contains(t, plan[0].Details, "var period: 1h0m0s -> 2h0m0s")
	require.NoError(t, Apply(c, plan))

	// Edited by hand in Kapacitor: list shows the drift, plan the diff.
	edited := want[1].Text + "// hand edit\n"
	_, err = c.UpdateTask(c.TaskLink("test_latency_1m"), client.UpdateTaskOptions{TICKscript: edited})
	require.NoError(t, err)
	list, err := List(c, f, want)
	require.NoError(t, err)
	require.Equal(t, "in sync", list[0].Drift)
	require.Contains(t, list[1].Drift, "script differs")
	require.Equal(t, "enabled", list[0].Status)
	require.Equal(t, 1, list[0].Version)
	plan, err = Plan(c, f, want, false)
	require.NoError(t, err)
	require.Contains(t, plan[1].Details, "- // hand edit")

	// A task left out of tasks.toml is deleted by prune only; a task made
	// by hand (no prefix) is never touched.
	_, err = c.CreateTask(client.CreateTaskOptions{ID: "handmade", Type: client.BatchTask, TICKscript: want[0].Script.Text, Status: client.Disabled})
	require.NoError(t, err)
	path = writeTasks(t, dir, kapa.URL, tasksBody[:strings.Index(tasksBody, "[[task]]\n  name = \"latency_1m\"")])
	f, want, err = Load(path, Options{})
	require.NoError(t, err)
	plan, err = Plan(c, f, want, false)
	require.NoError(t, err)
	require.Equal(t, []string{"update test_counts_1m"}, kinds(plan), "no delete without prune")
	plan, err = Plan(c, f, want, true)
	require.NoError(t, err)
	require.Equal(t, []string{"update test_counts_1m", "delete test_latency_1m"}, kinds(plan))
	require.NoError(t, Apply(c, plan))
	all, err := c.ListTasks(nil)
	require.NoError(t, err)
	var ids []string
	for _, tk := range all {
		ids = append(ids, tk.ID)
	}
	sort.Strings(ids)
	require.Equal(t, []string{"handmade", "test_counts_1m"}, ids)

	// enabled = false disables, and nothing else.
	path = writeTasks(t, dir, kapa.URL, strings.Replace(tasksBody[:strings.Index(tasksBody, "[[task]]\n  name = \"latency_1m\"")],
		`script = "COUNTS"`, "script = \"COUNTS\"\n  enabled = false", 1))
	f, want, err = Load(path, Options{})
	require.NoError(t, err)
	plan, err = Plan(c, f, want, false)
	require.NoError(t, err)
	require.Equal(t, []string{"disable test_counts_1m"}, kinds(plan))
	require.NoError(t, Apply(c, plan))
	list, err = List(c, f, want)
	require.NoError(t, err)
	require.Equal(t, "disabled", list[0].Status)
	require.Equal(t, "in sync", list[0].Drift)
}

// TestOwnershipIntegration: two tasks.toml with one prefix on one
// Kapacitor never prune or overwrite each other's tasks; lists are read
// past Kapacitor's page of 100; an update that Kapacitor refuses leaves
// the running task enabled, with its old script.
func TestOwnershipIntegration(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test")
	}
	db := stacktest.InfluxDB(t)
	kapa := stacktest.Kapacitor(t, db.URL)
	body := func(name, script string) string {
		return fmt.Sprintf("[[task]]\n  name = %q\n  script = %q\n  [task.vars]\n    every = \"1h\"\n", name, script)
	}
	a := writeTasks(t, filepath.Join(t.TempDir(), "a"), kapa.URL, body("a", "COUNTS"))
	b := writeTasks(t, filepath.Join(t.TempDir(), "b"), kapa.URL, body("b", "COUNTS"))
	_, c, err := ApplyFile(a, true, Options{})
	require.NoError(t, err)
	_, _, err = ApplyFile(b, true, Options{})
	require.NoError(t, err)
	_, _, err = ApplyFile(a, true, Options{})
	require.NoError(t, err)
	ids := func() []string {
		all, err := c.ListTasks(&client.ListTasksOptions{Limit: 1000})
		require.NoError(t, err)
		var ids []string
		for _, tk := range all {
			ids = append(ids, tk.ID)
		}
		sort.Strings(ids)
		return ids
	}
	require.Equal(t, []string{"test_a", "test_b"}, ids(), "prune of one file leaves the other's tasks")

	// The other file's task is not taken over by name.
	clash := writeTasks(t, filepath.Join(t.TempDir(), "c"), kapa.URL, body("a", "COUNTS"))
	_, _, err = ApplyFile(clash, false, Options{})
	require.ErrorContains(t, err, "task test_a belongs to")

	// More tasks than one list page: all are seen, all pruned.
	fa, _, err := Load(a, Options{})
	require.NoError(t, err)
	script, err := os.ReadFile(repoScript("mail_counts.tick"))
	require.NoError(t, err)
	for i := 0; i < 120; i++ {
		_, err := c.CreateTask(client.CreateTaskOptions{ID: fmt.Sprintf("test_old%03d", i), Type: client.BatchTask,
			TICKscript: stamp(fa.Owner, string(script)), Status: client.Disabled})
		require.NoError(t, err)
	}
	plan, _, err := ApplyFile(a, false, Options{})
	require.NoError(t, err)
	require.Equal(t, []string{"unchanged test_a"}, kinds(plan), "existing tasks on later pages are not created again")
	plan, _, err = ApplyFile(a, true, Options{})
	require.NoError(t, err)
	require.Len(t, plan, 121)
	require.Equal(t, []string{"test_a", "test_b"}, ids())

	// A script Kapacitor refuses: the running task stays enabled, unchanged.
	broken := filepath.Join(t.TempDir(), "broken.tick")
	require.NoError(t, os.WriteFile(broken, []byte(strings.Replace(string(script), "|query(", "|nosuchnode()\n    |query(", 1)), 0o600))
	bad := writeTasks(t, filepath.Dir(a), kapa.URL, body("a", broken))
	_, _, err = ApplyFile(bad, false, Options{})
	require.ErrorContains(t, err, "the task runs on with its old script")
	task, err := c.Task(c.TaskLink("test_a"), nil)
	require.NoError(t, err)
	require.Equal(t, client.Enabled, task.Status)
	require.NotContains(t, task.TICKscript, "nosuchnode")
}

func TestExpandEnv(t *testing.T) {
	t.Setenv("MAILTICK_TEST_USER", "ops")
	require.Equal(t, `user "ops" password "pa$$w0rd$HOME" regex "^a$"`, expandEnv(`user "${MAILTICK_TEST_USER}" password "pa$$w0rd$HOME" regex "^a$"`))
	require.Equal(t, "x", expandEnv("x${MAILTICK_TEST_UNSET}"))
}

func kinds(plan []Action) []string {
	var out []string
	for _, a := range plan {
		out = append(out, a.Kind+" "+a.ID)
	}
	return out
}

// TestSpamIntegration streams events with a spam burst from one sender
// through mail_spam.tick on a real Kapacitor subscribed to a real InfluxDB.
func TestSpamIntegration(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test")
	}
	db := stacktest.InfluxDB(t)
	// The databases exist before Kapacitor starts, so it subscribes at once.
	_, err := db.Query("", "CREATE DATABASE mail; CREATE DATABASE spam_out")
	require.NoError(t, err)
	kapa := stacktest.Kapacitor(t, db.URL)

	dir := t.TempDir()
	path := writeTasks(t, dir, kapa.URL, fmt.Sprintf(`
[[task]]
  name = "spam"
  script = "SPAM"
  [task.vars]
    out_db = "spam_out"
    recipients_warn = 50
    recipients_crit = 100
    topic = "spam_test"
    log_path = %q
`, filepath.Join(dir, "spam.log")))
	_, c, err := ApplyFile(path, false, Options{})
	require.NoError(t, err)

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
