package e2e

import (
	"context"
	"maps"
	"net/smtp"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/mailtick/mailtick/internal/testutil/stack"
	"github.com/mailtick/mailtick/internal/testutil/stacktest"
)

// TestPostfixQueuesIntegration runs the shipped telegraf.d/postfix-queues.conf
// (stock inputs.postfix in bin/telegraf) against the tests' real Postfix
// with mail in its hold queue (an access map's HOLD) and its deferred
// queue (the next hop answers 450): each queue's length is what Postfix's
// own postqueue lists before and after, and the oldest message's age and
// the bytes are there.
func TestPostfixQueuesIntegration(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test")
	}
	pf, _ := stacktest.Postfix(t)
	send := func(to ...string) {
		body := "From: <alice@example.com>\r\nSubject: queues\r\n\r\nhello\r\n"
		require.NoError(t, smtp.SendMail(pf.SMTP, nil, "alice@example.com", to, []byte(body)))
	}
	sent := time.Now()
	send("hold-me@example.net")
	send("later1@example.net")
	send("later2@example.net", "later3@example.net") // one message, two recipients

	// postqueue lists each message once, with the queue it is in.
	// (Called in Eventually's goroutine: errors are returned, never
	// failed on.)
	queues := func() map[string]int64 {
		out, err := exec.Command("postqueue", "-c", pf.ConfDir(), "-j").Output()
		if err != nil {
			return map[string]int64{"postqueue failed: " + err.Error(): 1}
		}
		n := map[string]int64{}
		for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
			if _, name, ok := strings.Cut(line, `"queue_name": "`); ok {
				n[name[:strings.IndexByte(name, '"')]]++
			}
		}
		return n
	}
	require.Eventually(t, func() bool {
		q := queues()
		return q["hold"] == 1 && q["deferred"]+q["active"] == 2
	}, time.Minute, 500*time.Millisecond, "Postfix holds one message and defers two")

	gather := func() (map[string]map[string]int64, string) {
		return gatherDropIn(t, "postfix-queues.conf", "POSTFIX_QUEUE_DIR="+filepath.Join(pf.Dir, "queue"), "postfix_queue", "queue")
	}
	// The deferred messages go back to active on every queue run: compare
	// a gathering with postqueue's listings before and after it, until
	// both listings agree.
	time.Sleep(time.Until(sent.Add(2 * time.Second))) // the held message is 2 s old at least
	var got map[string]map[string]int64
	var want map[string]int64
	var out string
	require.Eventually(t, func() bool {
		before := queues()
		got, out = gather()
		want = queues()
		if !maps.Equal(before, want) {
			return false
		}
		for _, q := range []string{"active", "hold", "incoming", "maildrop", "deferred"} {
			if _, ok := got[q]; !ok || got[q]["length"] != want[q] {
				return false // every queue is reported, as long as postqueue says
			}
		}
		return true
	}, time.Minute, time.Second, "inputs.postfix's lengths equal postqueue's %v: %v\n%s", want, got, out)
	t.Logf("postfix_queue: %v (postqueue: %v)", got, want)
	require.EqualValues(t, 1, got["hold"]["length"])
	require.GreaterOrEqual(t, got["hold"]["age"], int64(1), "the held message's age, in seconds")
	require.LessOrEqual(t, got["hold"]["age"], int64(time.Since(sent)/time.Second)+1)
	for _, q := range []string{"hold", "deferred", "active"} {
		if got[q]["length"] == 0 {
			continue
		}
		require.Positive(t, got[q]["size"], q)
		require.Contains(t, got[q], "age", "queue %s: the oldest message's age", q)
		require.GreaterOrEqual(t, got[q]["age"], int64(0), q)
	}
}

// gatherDropIn runs a shipped telegraf.d file through bin/telegraf --test
// with env set, and returns the fields of its metrics named measurement,
// by the value of their tag.
func gatherDropIn(t *testing.T, file, env, measurement, tag string) (map[string]map[string]int64, string) {
	root, err := stack.Root()
	require.NoError(t, err)
	bin, err := stack.Binary("telegraf")
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "--config", filepath.Join(root, "telegraf.d", file), "--test")
	cmd.Env = append(os.Environ(), env)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return nil, string(out) + "\n" + err.Error()
	}
	got := map[string]map[string]int64{}
	for _, line := range strings.Split(string(out), "\n") {
		// > postfix_queue,host=vm,queue=hold age=3i,length=1i,size=573i 1795...
		line = strings.TrimPrefix(line, "> ")
		if !strings.HasPrefix(line, measurement+",") {
			continue
		}
		parts := strings.Fields(line)
		if len(parts) != 3 {
			return nil, string(out)
		}
		value := ""
		for _, kv := range strings.Split(parts[0], ",")[1:] {
			if k, v, _ := strings.Cut(kv, "="); k == tag {
				value = v
			}
		}
		got[value] = map[string]int64{}
		for _, kv := range strings.Split(parts[1], ",") {
			k, v, _ := strings.Cut(kv, "=")
			switch v {
			case "true", "false": // exim_queue's truncated
				got[value][k] = map[string]int64{"true": 1, "false": 0}[v]
				continue
			}
			n, err := strconv.ParseInt(strings.TrimSuffix(v, "i"), 10, 64)
			if err != nil {
				return nil, string(out)
			}
			got[value][k] = n
		}
	}
	return got, string(out)
}

// TestEximQueueIntegration runs the shipped telegraf.d/exim-queue.conf
// (inputs.exim_queue in bin/telegraf) against a real Exim (Debian's,
// unpacked by make setup) holding three messages, one frozen (exim -Mf):
// the lengths are what Exim's own exim -bpc and exim -bp say, and the
// oldest message's age and the bytes are there. Then the spool empty.
func TestEximQueueIntegration(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test")
	}
	exim, err := stack.StartExim(t.TempDir())
	require.NoError(t, err, "exim must run for this test")
	gather := func() (map[string]map[string]int64, string) {
		return gatherDropIn(t, "exim-queue.conf", "EXIM_SPOOL_DIR="+exim.Spool, "exim_queue", "state")
	}
	got, out := gather()
	require.Equal(t, map[string]map[string]int64{"queued": {"length": 0, "size": 0, "age": 0, "truncated": 0},
		"frozen": {"length": 0, "size": 0, "age": 0, "truncated": 0}}, got, out)

	sent := time.Now()
	_, err = exim.Submit("alice@example.com", "bob@example.net")
	require.NoError(t, err)
	frozen, err := exim.Submit("carol@example.com", "dave@example.net", "eve@example.org")
	require.NoError(t, err)
	_, err = exim.Submit("frank@example.com", "grace@example.net")
	require.NoError(t, err)
	require.NoError(t, exim.Freeze(frozen))
	time.Sleep(time.Until(sent.Add(2 * time.Second))) // the oldest is 2 s old at least

	count, listing, err := exim.Queue()
	require.NoError(t, err)
	got, out = gather()
	t.Logf("exim_queue: %v; exim -bpc: %d; exim -bp:\n%s", got, count, listing)
	require.Equal(t, int64(count), got["queued"]["length"]+got["frozen"]["length"], "exim -bpc counts them all\n%s", out)
	require.Equal(t, int64(strings.Count(listing, "*** frozen ***")), got["frozen"]["length"], "exim -bp marks the frozen")
	require.EqualValues(t, 2, got["queued"]["length"])
	require.EqualValues(t, 1, got["frozen"]["length"])
	for _, state := range []string{"queued", "frozen"} {
		require.Positive(t, got[state]["size"], state)
		require.GreaterOrEqual(t, got[state]["age"], int64(1), state)
		require.LessOrEqual(t, got[state]["age"], int64(time.Since(sent)/time.Second)+1, state)
	}
}
