package tasks

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	client "github.com/influxdata/kapacitor/client/v1"
	"github.com/stretchr/testify/require"

	"github.com/mailtick/mailtick/internal/testutil/stacktest"
)

func repoScript(name string) string {
	p, _ := filepath.Abs(filepath.Join("..", "..", "..", "tickscripts", name))
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
	require.Equal(t, 2, s.Version)
	require.Equal(t, client.BatchTask, s.Type)
	require.True(t, s.HasDBRP)
	require.Equal(t, map[string]client.VarType{
		"query": client.VarString, "window": client.VarDuration, "window_name": client.VarString,
		"every": client.VarDuration, "period": client.VarDuration, "out_cluster": client.VarString,
		"out_db": client.VarString, "out_rp": client.VarString, "local_cluster": client.VarString, "local_db": client.VarString,
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

// TestTasksIntegration deploys TICKscripts to a real Kapacitor with plan
// and apply, and checks idempotence, var changes, drift, prune and
// enable/disable. What the scripts compute is tested in tickscripts/.
func TestTasksIntegration(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test")
	}
	db := stacktest.InfluxDB(t, "mail", "mail_rollups")
	kapa := stacktest.Kapacitor(t, db.URL)

	// Raw events of the last 20 minutes, as the agent writes them.
	stacktest.SeedEvents(t, db, "mail", 5, 2000)

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
	require.Equal(t, 2, list[0].Version)
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
	var printed strings.Builder
	plan, c, err := ApplyFile(a, true, Options{DryRun: true, PlanTo: &printed})
	require.NoError(t, err)
	require.Equal(t, []string{"create test_a"}, kinds(plan))
	require.Contains(t, printed.String(), "create    test_a\n")
	_, err = c.Task(c.TaskLink("test_a"), nil)
	require.Error(t, err, "a dry run applies nothing")
	_, _, err = ApplyFile(a, true, Options{})
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
	plan, _, err = ApplyFile(a, false, Options{})
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

// TestShippedWindowsAreWhole: in the shipped tasks.toml, every task of a
// script grouping by time(window) runs every and looks back period in
// whole windows (CutWindows says none is cut); and CutWindows names a task
// that is (an hourly count run every 10m, as shipped until 0.3).
func TestShippedWindowsAreWhole(t *testing.T) {
	_, want, err := Load(filepath.Join("..", "..", "..", "tasks.toml"), Options{URL: "http://127.0.0.1:9092"})
	require.NoError(t, err)
	checked := 0
	for _, d := range want {
		window, every, period, ok := Windows(d)
		if !ok {
			continue // not a query grouped by time(window)
		}
		require.Zero(t, every%window, "%s: every %v is not a multiple of window %v", d.ID, every, window)
		require.Zero(t, period%window, "%s: period %v is not a multiple of window %v", d.ID, period, window)
		checked++
	}
	require.GreaterOrEqual(t, checked, 4, "mail_counts 1m, 1h, 1d and mail_latency 1m")
	require.Empty(t, CutWindows(want))

	path := writeTasks(t, t.TempDir(), "http://127.0.0.1:9092",
		"[[task]]\n  name = \"c\"\n  script = \"COUNTS\"\n  [task.vars]\n    window = \"1h\"\n    every = \"10m\"\n    period = \"2h\"\n")
	var warned []string
	_, cut, err := Load(path, Options{Warn: func(w string) { warned = append(warned, w) }})
	require.NoError(t, err)
	require.Equal(t, []string{`task "test_c": every 10m0s and period 2h0m0s are not whole windows of 1h0m0s: each run cuts its first window and overwrites it with a part`}, CutWindows(cut))
	require.Equal(t, CutWindows(cut), warned, "Load tells Warn")
}

// TestHandlersIntegration: tasks.toml's [[handler]]s on a real Kapacitor,
// with the tasks: created on each topic named; one whose option is empty
// (its variable unset) is skipped and said so; unchanged when applied
// again; a changed option is an update; a handler edited by hand is drift
// in list, and apply puts it back; prune removes the managed handlers no
// longer in the file and leaves the others alone.
func TestHandlersIntegration(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test")
	}
	db := stacktest.InfluxDB(t, "mail")
	kapa := stacktest.Kapacitor(t, db.URL)
	dir := t.TempDir()
	t.Setenv("TEST_HOOK", "http://127.0.0.1:9/hook")
	t.Setenv("TEST_UNSET", "")
	t.Setenv("TEST_TOKEN", "")
	body := `
[[handler]]
  name = "hook"
  topics = ["mail_volume", "mail_spam"]
  kind = "post"
  match = "level() == CRITICAL"
  [handler.options]
    url = "${TEST_HOOK}"
    headers = { X-Note = "" }
[[handler]]
  name = "pager"
  topics = ["mail_volume"]
  kind = "post"
  [handler.options]
    url = "https://${TEST_UNSET}/x"
[[handler]]
  name = "auth"
  topics = ["mail_volume"]
  kind = "post"
  [handler.options]
    url = "http://127.0.0.1:9/auth"
    headers = { Authorization = "Bearer ${TEST_TOKEN}" }
`
	path := writeTasks(t, dir, kapa.URL, body)
	plan, c, err := ApplyFile(path, false, Options{})
	require.NoError(t, err)
	require.Equal(t, []string{"create handler mail_volume/test_hook", "create handler mail_spam/test_hook", "skipped handler mail_volume/test_pager",
		"skipped handler mail_volume/test_auth"}, kinds(plan), "a variable unset anywhere in the options skips it; a literal empty value does not")
	h, err := c.TopicHandler(c.TopicHandlerLink("mail_volume", "test_hook"))
	require.NoError(t, err)
	require.Equal(t, "post", h.Kind)
	require.Equal(t, "level() == CRITICAL", h.Match)
	require.Equal(t, "http://127.0.0.1:9/hook", h.Options["url"])
	// Someone else's handler on the same topic.
	_, err = c.CreateTopicHandler(c.TopicHandlersLink("mail_volume"), client.TopicHandlerOptions{ID: "theirs", Kind: "log", Options: map[string]any{"path": "/tmp/x.log"}})
	require.NoError(t, err)

	plan, _, err = ApplyFile(path, false, Options{})
	require.NoError(t, err)
	require.Equal(t, []string{"unchanged handler mail_volume/test_hook", "unchanged handler mail_spam/test_hook", "skipped handler mail_volume/test_pager",
		"skipped handler mail_volume/test_auth"}, kinds(plan))

	// Set: deployed; unset again: removed.
	t.Setenv("TEST_TOKEN", "t0ken")
	plan, _, err = ApplyFile(path, false, Options{})
	require.NoError(t, err)
	require.Contains(t, kinds(plan), "create handler mail_volume/test_auth")
	t.Setenv("TEST_TOKEN", "")
	plan, _, err = ApplyFile(path, false, Options{})
	require.NoError(t, err)
	require.Contains(t, kinds(plan), "delete handler mail_volume/test_auth")

	t.Setenv("TEST_HOOK", "http://127.0.0.1:9/other")
	plan, _, err = ApplyFile(path, false, Options{})
	require.NoError(t, err)
	require.Contains(t, kinds(plan), "update handler mail_volume/test_hook")

	// Edited by hand: an option changed, another added.
	_, err = c.ReplaceTopicHandler(c.TopicHandlerLink("mail_spam", "test_hook"), client.TopicHandlerOptions{ID: "test_hook", Kind: "post",
		Match: "level() == CRITICAL", Options: map[string]any{"url": "http://127.0.0.1:9/other", "headers": map[string]any{"X-Note": ""}, "capture-response": true}})
	require.NoError(t, err)
	f, want, err := Load(path, Options{})
	require.NoError(t, err)
	list, err := List(c, f, want)
	require.NoError(t, err)
	drift := map[string]string{}
	for _, d := range list {
		drift[d.ID] = d.Drift
	}
	require.Equal(t, "differs from tasks.toml: option capture-response: true -> (none)", drift["handler mail_spam/test_hook"], "an option added by hand")
	require.Equal(t, "in sync", drift["handler mail_volume/test_hook"])
	require.Contains(t, drift["handler mail_volume/test_pager"], "not deployed")
	require.NotContains(t, drift, "handler mail_volume/theirs", "not managed: another prefix")

	path = writeTasks(t, dir, kapa.URL, "")
	plan, _, err = ApplyFile(path, true, Options{})
	require.NoError(t, err)
	require.Equal(t, []string{"delete handler mail_spam/test_hook", "delete handler mail_volume/test_hook"}, kinds(plan))
	_, err = c.TopicHandler(c.TopicHandlerLink("mail_volume", "theirs"))
	require.NoError(t, err, "prune leaves others' handlers")
	_, err = c.TopicHandler(c.TopicHandlerLink("mail_volume", "test_hook"))
	require.Error(t, err)
}
