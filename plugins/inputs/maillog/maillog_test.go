package maillog

import (
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/influxdata/telegraf"
	telegrafconfig "github.com/influxdata/telegraf/config"
	"github.com/influxdata/telegraf/plugins/inputs"
	"github.com/influxdata/telegraf/testutil"
	"github.com/stretchr/testify/require"

	"github.com/mailtick/mailtick/internal/testutil/plugintest"
)

// realLog is the maillog_file a real Postfix wrote (plugins/common/maillog's
// testdata): 10 events, 9 mail_events and one mail_security (a
// connection lost after RCPT).
func realLog(t *testing.T) []string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", "common", "maillog", "testdata", "postfix-3.7.11-debian12.log"))
	require.NoError(t, err)
	return strings.SplitAfter(strings.TrimSuffix(string(b), "\n"), "\n")
}

func appendLines(t *testing.T, path string, lines ...string) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	require.NoError(t, err)
	for _, l := range lines {
		if !strings.HasSuffix(l, "\n") {
			l += "\n"
		}
		_, err = f.WriteString(l)
		require.NoError(t, err)
	}
	require.NoError(t, f.Close())
}

// run starts the plugin on files in a state folder; accept tells whether
// the outputs take what it emits (else they hold it).
func run(t *testing.T, path, state string, accept *atomic.Bool) (*MailLog, *testutil.Accumulator) {
	return runWith(t, path, state, func() string {
		if accept.Load() {
			return "accept"
		}
		return "hold"
	})
}

// runWith is run with outputs that do what verdict says for each metric:
// "accept", "reject" (Telegraf drops it: its buffer was full) or "hold".
func runWith(t *testing.T, path, state string, verdict func() string) (*MailLog, *testutil.Accumulator) {
	t.Helper()
	return start(t, func(m *MailLog) { m.Files, m.StateDir = []string{path}, state }, verdict)
}

// start starts the plugin with its defaults (rotate_wait and all) but for
// the schedule, from the beginning, in UTC, as set sets it, with outputs
// that do what verdict says.
func start(t *testing.T, set func(*MailLog), verdict func() string) (*MailLog, *testutil.Accumulator) {
	t.Helper()
	m := inputs.Inputs["maillog"]().(*MailLog)
	m.FromBeginning, m.Timezone, m.Log = true, "UTC", testutil.Logger{}
	m.PollInterval, m.CheckpointInterval = telegrafconfig.Duration(10*time.Millisecond), telegrafconfig.Duration(20*time.Millisecond)
	set(m)
	require.NoError(t, m.Init())
	acc := &testutil.Accumulator{}
	require.NoError(t, m.Start(acc))
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() { // the outputs
		defer close(done)
		seen := 0
		for {
			select {
			case <-stop:
				return
			case <-time.After(2 * time.Millisecond):
			}
			ms := acc.GetTelegrafMetrics()
			for ; seen < len(ms); seen++ {
				switch verdict() {
				case "accept":
					ms[seen].Accept()
				case "reject":
					ms[seen].Reject()
				default:
					ms = ms[:seen] // held: from here on
				}
			}
		}
	}()
	t.Cleanup(func() { close(stop); <-done })
	return m, acc
}

// runToEnd runs the plugin on path with outputs that accept, waits for n
// events and for the state checkpointed at the file's end.
func runToEnd(t *testing.T, path, stateDir string, accept *atomic.Bool, n int) (*MailLog, *testutil.Accumulator) {
	t.Helper()
	accept.Store(true)
	m, acc := run(t, path, stateDir, accept)
	acc.Wait(n)
	fi, err := os.Stat(path)
	require.NoError(t, err)
	checkpointed(t, m.followerState(path), fi.Size())
	return m, acc
}

// checkpointed waits until the state saved at stateFile has reached
// offset: every line before it was read and its events delivered.
func checkpointed(t *testing.T, stateFile string, offset int64) {
	t.Helper()
	var st state
	require.Eventually(t, func() bool {
		b, err := os.ReadFile(stateFile)
		return err == nil && json.Unmarshal(b, &st) == nil && st.Offset == offset
	}, 30*time.Second, 5*time.Millisecond, "want the state checkpointed at offset %d", offset)
}

func points(ms []telegraf.Metric) map[string]bool {
	out := map[string]bool{}
	for _, m := range ms {
		ev, _ := m.GetTag("event")
		rcpt, _ := m.GetField("recipient")
		out[ev+" "+toString(rcpt)+" "+m.Time().Format(time.RFC3339Nano)] = true
	}
	return out
}

func toString(v any) string {
	s, _ := v.(string)
	return s
}

// TestFollow: a whole log, then lines appended, then a rotation: every
// event once.
func TestFollow(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "mail.log")
	lines := realLog(t)
	appendLines(t, path, lines[:11]...)
	var accept atomic.Bool
	accept.Store(true)
	m, acc := run(t, path, filepath.Join(dir, "state"), &accept)
	acc.Wait(2) // two messages accepted
	appendLines(t, path, lines[11:]...)
	acc.Wait(10)

	require.NoError(t, os.Rename(path, path+".1"))
	appendLines(t, path, "Nov 23 16:30:00 mx1 postfix/smtpd[1]: NOQUEUE: reject: RCPT from x[192.0.2.9]: 554 5.7.1 <z@example.net>: Relay access denied; from=<y@example.com> to=<z@example.net> proto=ESMTP helo=<x>")
	acc.Wait(11)
	m.Stop()
	ms := acc.GetTelegrafMetrics()
	require.Len(t, ms, 11)
	require.Len(t, points(ms), 11, "eleven distinct points")
	rj, _ := ms[10].GetField("recipient")
	require.Equal(t, "z@example.net", rj, "the new file after the rotation is read from its start")
}

// TestCrashReplaysTheSamePoints: events the outputs had not taken when
// the agent stopped are read again after the restart, as the same points;
// what was checkpointed is not read again.
func TestCrashReplaysTheSamePoints(t *testing.T) {
	dir := t.TempDir()
	path, stateDir := filepath.Join(dir, "mail.log"), filepath.Join(dir, "state")
	lines := realLog(t)
	appendLines(t, path, lines[:14]...) // two messages queued, one recipient refused
	var accept atomic.Bool
	accept.Store(true)
	m, acc := run(t, path, stateDir, &accept)
	acc.Wait(3)
	checkpointed(t, m.followerState(path), int64(len(strings.Join(lines[:14], "")))) // after the three
	accept.Store(false)                                                              // the outputs go down
	appendLines(t, path, lines[14:]...)
	acc.Wait(10)
	m.Stop() // like a crash: the last checkpoint is before these
	first := acc.GetTelegrafMetrics()

	accept.Store(true)
	m2, acc2 := run(t, path, stateDir, &accept)
	acc2.Wait(7)
	fi, err := os.Stat(path)
	require.NoError(t, err)
	checkpointed(t, m2.followerState(path), fi.Size()) // the whole file read and delivered
	m2.Stop()
	again := acc2.GetTelegrafMetrics()
	require.Len(t, again, 7, "only what was not delivered is read again")
	want := points(first[3:])
	require.Equal(t, want, points(again), "the same points: InfluxDB overwrites them")
	for _, x := range again {
		if ev, _ := x.GetTag("event"); ev == "deferred" {
			require.Equal(t, int64(1), x.Fields()["attempt"], "the restored state counts attempts as before")
		}
	}
}

// TestRejectedAreReadAgain: the outputs drop batches (Telegraf's buffer
// full while the reader catches up after an outage). The checkpoint must
// not pass them: the follower goes back to its last checkpoint and reads
// them again, until every event is delivered.
func TestRejectedAreReadAgain(t *testing.T) {
	dir := t.TempDir()
	path, stateDir := filepath.Join(dir, "mail.log"), filepath.Join(dir, "state")
	lines := realLog(t)
	appendLines(t, path, lines...)
	var rejects atomic.Int64
	rejects.Store(4) // the first four metrics handed are dropped
	m, acc := runWith(t, path, stateDir, func() string {
		if rejects.Add(-1) >= 0 {
			return "reject"
		}
		return "accept"
	})
	fi, err := os.Stat(path)
	require.NoError(t, err)
	checkpointed(t, m.followerState(path), fi.Size())
	m.Stop()
	var delivered []telegraf.Metric
	for _, x := range acc.GetTelegrafMetrics() {
		delivered = append(delivered, x)
	}
	all := points(delivered)
	require.Len(t, all, 10, "every event of the log, the rejected read again as the same points")
	require.Greater(t, len(delivered), 10, "the rejected were handed twice")
	require.Positive(t, newStats(path).rewinds.Get(), "the follower went back to its checkpoint")
}

// reject is a one-line event: a NOQUEUE reject of recipient n.
func reject(n int) string {
	return fmt.Sprintf("Nov 23 16:30:%02d mx1 postfix/smtpd[1]: NOQUEUE: reject: RCPT from x[192.0.2.9]: 554 5.7.1 <z%d@example.net>: Relay access denied; from=<y@example.com> to=<z%d@example.net> proto=ESMTP helo=<x>", n%60, n, n)
}

func rejects(from, to int) []string {
	var out []string
	for n := from; n < to; n++ {
		out = append(out, reject(n))
	}
	return out
}

// recipients are the recipients of the events emitted, in order.
func recipients(acc *testutil.Accumulator) []string {
	var out []string
	for _, x := range acc.GetTelegrafMetrics() {
		r, _ := x.GetField("recipient")
		out = append(out, toString(r))
	}
	return out
}

func wantRecipients(from, to int) []string {
	var out []string
	for n := from; n < to; n++ {
		out = append(out, fmt.Sprintf("z%d@example.net", n))
	}
	return out
}

// TestRotateRenameLateWrites: logrotate renames the log while the agent
// runs; rsyslog goes on writing the renamed file until postrotate's HUP,
// the new file fills meanwhile. Every line of both is read, each once.
func TestRotateRenameLateWrites(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "mail.log")
	appendLines(t, path, rejects(0, 3)...)
	var accept atomic.Bool
	accept.Store(true)
	m, acc := run(t, path, filepath.Join(dir, "state"), &accept)
	acc.Wait(3)
	require.NoError(t, os.Rename(path, path+".1"))
	appendLines(t, path+".1", rejects(3, 5)...) // before the HUP
	appendLines(t, path, rejects(5, 7)...)      // the new file
	time.Sleep(100 * time.Millisecond)
	appendLines(t, path+".1", rejects(7, 9)...) // still before the HUP
	appendLines(t, path, rejects(9, 10)...)
	acc.Wait(10)
	m.Stop()
	require.ElementsMatch(t, wantRecipients(0, 10), recipients(acc))
}

// stoppedWithUnreadLines is the start of the stopped-agent rotation tests:
// mail.log with 4 lines an agent read, delivered and checkpointed before
// it stopped, and 3 more written while it is down (rejects 4 to 6).
func stoppedWithUnreadLines(t *testing.T) (path, stateDir string, accept *atomic.Bool) {
	t.Helper()
	dir := t.TempDir()
	path, stateDir = filepath.Join(dir, "mail.log"), filepath.Join(dir, "state")
	appendLines(t, path, rejects(0, 4)...)
	accept = new(atomic.Bool)
	m, _ := runToEnd(t, path, stateDir, accept, 4)
	m.Stop()
	appendLines(t, path, rejects(4, 7)...)
	return path, stateDir, accept
}

// TestRotateWhileStopped: the agent is down while logrotate renames the
// log (create mode), or copies and truncates it (copytruncate), and the
// new log grows past the saved offset. On restart the old file's unread
// tail is found among the rotated names and read first; nothing is lost,
// nothing read twice, no fragment.
func TestRotateWhileStopped(t *testing.T) {
	for _, mode := range []string{"rename", "copytruncate"} {
		t.Run(mode, func(t *testing.T) {
			path, stateDir, accept := stoppedWithUnreadLines(t)
			switch mode {
			case "rename":
				require.NoError(t, os.Rename(path, path+".1"))
			case "copytruncate":
				b, err := os.ReadFile(path)
				require.NoError(t, err)
				require.NoError(t, os.WriteFile(path+".1", b, 0o640))
				require.NoError(t, os.Truncate(path, 0))
			}
			appendLines(t, path, rejects(7, 20)...) // past the saved offset

			m2, acc2 := run(t, path, stateDir, accept)
			acc2.Wait(13)
			fi, err := os.Stat(path)
			require.NoError(t, err)
			checkpointed(t, m2.followerState(path), fi.Size())
			m2.Stop()
			require.Equal(t, wantRecipients(4, 20), recipients(acc2), "the old tail first, then the new file, in order")
			require.Zero(t, newStats(path).lost.Get())
		})
	}
}

// TestRotationChainWhileStopped: more than one rotation while the agent is
// down. The saved file was renamed, and the file that followed it was
// rotated in turn (renamed again, or copied and truncated): the saved
// file's tail, then each later generation from its start, oldest first,
// then the path; nothing lost, nothing twice.
func TestRotationChainWhileStopped(t *testing.T) {
	for _, mode := range []string{"rename twice", "rename, then copytruncate"} {
		t.Run(mode, func(t *testing.T) {
			path, stateDir, accept := stoppedWithUnreadLines(t)
			require.NoError(t, os.Rename(path, path+".1")) // the saved file
			appendLines(t, path, rejects(7, 12)...)        // the next one
			switch mode {
			case "rename twice":
				require.NoError(t, os.Rename(path+".1", path+".2"))
				require.NoError(t, os.Rename(path, path+".1"))
			case "rename, then copytruncate":
				b, err := os.ReadFile(path)
				require.NoError(t, err)
				require.NoError(t, os.WriteFile(path+".2", b, 0o640))
				require.NoError(t, os.Truncate(path, 0))
			}
			appendLines(t, path, rejects(12, 20)...)

			m2, acc2 := run(t, path, stateDir, accept)
			acc2.Wait(16)
			m2.Stop()
			require.Equal(t, wantRecipients(4, 20), recipients(acc2), "every generation once, in order")
			require.Zero(t, newStats(path).lost.Get())
		})
	}
}

// TestLongLineCut: a block without newline (what a crash leaves) is cut at
// maxLineBytes and counted; the lines after it are read.
func TestLongLineCut(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "mail.log")
	cut := newStats(path).cut.Get()
	appendLines(t, path, reject(0), strings.Repeat("\x00", 3*maxLineBytes+17), reject(1))
	var accept atomic.Bool
	accept.Store(true)
	m, acc := run(t, path, filepath.Join(dir, "state"), &accept)
	acc.Wait(2)
	m.Stop()
	require.Equal(t, wantRecipients(0, 2), recipients(acc))
	require.Equal(t, int64(1), newStats(path).cut.Get()-cut)
}

func TestInit(t *testing.T) {
	m := &MailLog{StateDir: "x", Timezone: "UTC", PollInterval: 1, CheckpointInterval: 1, MaxUndelivered: 1}
	require.ErrorContains(t, m.Init(), `set "files", "listen" or "journal"`)
	m.Files = []string{"/var/log/mail.log"}
	m.Timezone = "Mars/Olympus"
	require.ErrorContains(t, m.Init(), `invalid "timezone" value "Mars/Olympus"`)
	m.Timezone, m.InternalNetworks = "UTC", []string{"10.0.0.0/33"}
	require.ErrorContains(t, m.Init(), `invalid "internal_networks" value "10.0.0.0/33"`)
	m.InternalNetworks, m.Files, m.Journal, m.Journalctl, m.JournalIdentifiers = nil, nil, true, "no-journalctl-here", []string{"postfix*"}
	require.ErrorContains(t, m.Init(), `invalid "journalctl" value "no-journalctl-here"`)
	m.Journalctl, m.JournalIdentifiers = "journalctl", nil
	require.ErrorContains(t, m.Init(), `invalid "journal_identifiers" value []`)
	m.JournalIdentifiers, m.StateDir = []string{"postfix*"}, ""
	require.ErrorContains(t, m.Init(), `"state_dir" must be set`)
}

func TestSampleConfigLoads(t *testing.T) {
	plugintest.SampleConfigLoads(t, sampleConfig)
}

// TestListen: the lines of a real Postfix's log, sent as syslog over UDP
// and over TCP (newline-delimited and octet-counted), give the same events
// as the file does.
func TestListen(t *testing.T) {
	m, acc := listening(t, func(m *MailLog) { m.MaxQueueIDs, m.QueueIDTTL = 1000, telegrafconfig.Duration(time.Hour) })
	lines := realLog(t)
	// UDP: one datagram per line.
	udp, err := net.Dial("udp", m.lns[0].Addr().String())
	require.NoError(t, err)
	for _, l := range lines {
		_, err := udp.Write([]byte("<22>" + strings.TrimSuffix(l, "\n")))
		require.NoError(t, err) // 26 small datagrams: far below a loopback socket's buffer
	}
	udp.Close()
	acc.Wait(10)
	// TCP: the same log from another host, half newline-delimited, half
	// octet-counted.
	tcp, err := net.Dial("tcp", m.lns[1].Addr().String())
	require.NoError(t, err)
	for i, l := range lines {
		l = strings.Replace(strings.TrimSuffix(l, "\n"), " mx1 ", " mx2 ", 1)
		if i%2 == 0 {
			_, err = fmt.Fprintf(tcp, "%s\n", l)
		} else {
			_, err = fmt.Fprintf(tcp, "%d %s", len(l), l)
		}
		require.NoError(t, err)
	}
	tcp.Close()
	acc.Wait(20)
	mailers := map[string]int{}
	for _, x := range acc.GetTelegrafMetrics() {
		h, _ := x.GetTag("mailer")
		mailers[h]++
	}
	require.Equal(t, map[string]int{"mx1": 10, "mx2": 10}, mailers)
}

// A second agent on the same state_dir (telegraf --once beside the running
// one) is refused: it would save offsets over the first's.
func TestStateDirLocked(t *testing.T) {
	dir := t.TempDir()
	path, stateDir := filepath.Join(dir, "mail.log"), filepath.Join(dir, "state")
	appendLines(t, path, reject(0))
	var accept atomic.Bool
	accept.Store(true)
	m, acc := run(t, path, stateDir, &accept)
	acc.Wait(1)
	second := inputs.Inputs["maillog"]().(*MailLog)
	second.Files, second.StateDir, second.Log = []string{path}, stateDir, testutil.Logger{}
	require.NoError(t, second.Init())
	err := second.Start(&testutil.Accumulator{})
	require.ErrorContains(t, err, "in use by another process")
	require.ErrorContains(t, err, "state_dir")
	m.Stop()
	require.NoError(t, second.Start(&testutil.Accumulator{}), "free once the first stopped")
	second.Stop()
}

// TestLinesWithoutTimestamp: lines with no syslog header (a program
// logging to a file of its own) get distinct times, one point each, and
// the same times when read again after a restart.
func TestLinesWithoutTimestamp(t *testing.T) {
	dir := t.TempDir()
	path, stateDir := filepath.Join(dir, "mail.log"), filepath.Join(dir, "state")
	var lines []string
	for _, l := range rejects(0, 3) {
		lines = append(lines, l[len("Nov 23 16:30:00 mx1 "):]) // "postfix/smtpd[1]: NOQUEUE: ..."
	}
	appendLines(t, path, lines[0])
	var accept atomic.Bool
	m, acc := runToEnd(t, path, stateDir, &accept, 1)
	accept.Store(false) // the outputs go down: the next lines are read, not delivered
	appendLines(t, path, lines[1:]...)
	acc.Wait(3)
	m.Stop()
	first := acc.GetTelegrafMetrics()
	times := map[time.Time]bool{}
	for _, x := range first {
		times[x.Time()] = true
	}
	require.Len(t, times, 3, "distinct times: three points, not one")

	accept.Store(true)
	m2, acc2 := run(t, path, stateDir, &accept)
	acc2.Wait(2)
	m2.Stop()
	again := acc2.GetTelegrafMetrics()
	require.Len(t, again, 2, "what was not delivered is read again")
	require.Equal(t, points(first[1:]), points(again), "the same times again: InfluxDB overwrites the points")
}
