package maillog

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/influxdata/telegraf/testutil"
	"github.com/stretchr/testify/require"

	ml "github.com/mailtick/mailtick/plugins/common/maillog"
)

// journalRemote is systemd's own writer of journal files from the export
// format (Debian's systemd-journal-remote, installed by make setup): the
// tests' journals are real journal files, read by the real journalctl.
const journalRemote = "/lib/systemd/systemd-journal-remote"

// jentry is one journal entry to write.
type jentry struct {
	at                time.Time
	host, ident, unit string
	message           string
}

var monotonic atomic.Uint64

// writeJournal appends entries to the journal file at path, as a host's
// journald would have written them: SYSLOG_IDENTIFIER, _HOSTNAME, the
// unit, the realtime stamp. A message with a newline is written as the
// export format's binary field, as journald keeps it.
func writeJournal(t *testing.T, path string, entries ...jentry) {
	t.Helper()
	var b bytes.Buffer
	for _, e := range entries {
		fmt.Fprintf(&b, "__REALTIME_TIMESTAMP=%d\n__MONOTONIC_TIMESTAMP=%d\n_BOOT_ID=6b1c0c2a3d6e4f5a8b9c0d1e2f3a4b5c\n_HOSTNAME=%s\nSYSLOG_IDENTIFIER=%s\n_SYSTEMD_UNIT=%s\n",
			e.at.UnixMicro(), monotonic.Add(1), e.host, e.ident, e.unit)
		if strings.ContainsRune(e.message, '\n') {
			b.WriteString("MESSAGE\n")
			require.NoError(t, binary.Write(&b, binary.LittleEndian, uint64(len(e.message))))
			b.WriteString(e.message + "\n\n")
		} else {
			fmt.Fprintf(&b, "MESSAGE=%s\n\n", e.message)
		}
	}
	cmd := exec.Command(journalRemote, "--output="+path, "-")
	cmd.Stdin = &b
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "%s (make setup installs Debian's systemd-journal-remote): %s", journalRemote, out)
}

// postfixEntries are the lines of the real Postfix's log as its journal
// holds them, stamped from base on, one millisecond apart, with another
// program's entries between them (skipped by journal_identifiers), one of
// them a message of two lines.
func postfixEntries(t *testing.T, base time.Time) []jentry {
	t.Helper()
	var out []jentry
	for i, line := range realLog(t) {
		l, err := ml.SplitLine(strings.TrimSuffix(line, "\n"), time.Now(), time.UTC)
		require.NoError(t, err)
		at := base.Add(time.Duration(i) * time.Millisecond)
		out = append(out, jentry{at, "mx1", l.Program, "postfix@-.service", l.Message})
		if i%4 == 0 {
			out = append(out, jentry{at, "mx1", "sshd", "ssh.service", fmt.Sprintf("Accepted publickey for ops from 192.0.2.%d port 50022\nsecond line", i)})
		}
	}
	return out
}

// eventsOf is what the entries give, read apart by plugins/common/maillog
// as the plugin reads them: the points expected.
func eventsOf(entries []jentry) map[string]bool {
	c := ml.NewCorrelator(ml.Options{})
	out := map[string]bool{}
	for _, e := range entries {
		if !strings.HasPrefix(e.ident, "postfix") && !strings.HasPrefix(e.ident, "exim") {
			continue
		}
		evs, _ := c.Entry(e.at, e.host, e.ident, e.message)
		for k := range points(metricsOf(evs)) {
			out[k] = true
		}
	}
	return out
}

// runJournal runs the plugin on the journal files of dir.
func runJournal(t *testing.T, dir, state string, fromBeginning bool) (*MailLog, *testutil.Accumulator) {
	t.Helper()
	return runJournalWith(t, dir, state, fromBeginning, func() string { return "accept" })
}

// runJournalWith is runJournal with outputs that do what verdict says.
func runJournalWith(t *testing.T, dir, state string, fromBeginning bool, verdict func() string) (*MailLog, *testutil.Accumulator) {
	t.Helper()
	m, acc := start(t, func(m *MailLog) {
		m.Journal, m.JournalDirectory, m.StateDir, m.FromBeginning = true, dir, state, fromBeginning
	}, verdict)
	t.Cleanup(m.Stop) // a second Stop does nothing
	return m, acc
}

// savedCursor is the cursor of the plugin's state.
func savedCursor(t *testing.T, m *MailLog) string {
	b, err := os.ReadFile(m.journalStatePath())
	if err != nil {
		return ""
	}
	var s journalState
	require.NoError(t, json.Unmarshal(b, &s))
	return s.Cursor
}

// lastCursor is the cursor of the newest entry of the journal in dir.
func lastCursor(t *testing.T, dir string) string {
	out, err := exec.Command("journalctl", "--directory="+dir, "--lines=1", "--output=export", "--output-fields=MESSAGE").Output()
	require.NoError(t, err)
	e, err := newExportReader(bytes.NewReader(out)).next()
	require.NoError(t, err)
	return e.cursor
}

// waitPoints waits until acc holds exactly want's points.
func waitPoints(t *testing.T, acc *testutil.Accumulator, want map[string]bool, msg string) {
	t.Helper()
	require.Eventually(t, func() bool { return len(points(acc.GetTelegrafMetrics())) >= len(want) }, 30*time.Second, 10*time.Millisecond,
		"%s: want %d points, have %d", msg, len(want), len(points(acc.GetTelegrafMetrics())))
	require.Equal(t, want, points(acc.GetTelegrafMetrics()), msg)
	require.Len(t, acc.GetTelegrafMetrics(), len(want), "%s: no event twice", msg)
}

// TestJournal: the real Postfix's log as its journal holds it, read
// through journalctl from real journal files: the events the lines give,
// at the entries' own times, other programs' entries skipped; entries
// written while the plugin follows; a restart resumes after the saved
// cursor (Exim's entries written meanwhile, nothing read twice); the
// cursor saved is the newest entry's.
func TestJournal(t *testing.T) {
	dir, state := t.TempDir(), t.TempDir()
	file := filepath.Join(dir, "remote.journal")
	base := time.Date(2026, 11, 23, 16, 26, 55, 0, time.UTC)
	all := postfixEntries(t, base)
	half := len(all) / 2
	writeJournal(t, file, all[:half]...)

	m, acc := runJournal(t, dir, state, true)
	waitPoints(t, acc, eventsOf(all[:half]), "the entries there at the start")
	writeJournal(t, file, all[half:]...)
	waitPoints(t, acc, eventsOf(all), "and those written while it follows")
	for _, ms := range acc.GetTelegrafMetrics() {
		require.Equal(t, "mx1", ms.Tags()["mailer"], "the entry's _HOSTNAME: %v", ms)
	}
	require.Eventually(t, func() bool { return savedCursor(t, m) == lastCursor(t, dir) }, 30*time.Second, 10*time.Millisecond)
	m.Stop()

	exim := []jentry{}
	for i, line := range []string{
		"2026-11-23 16:30:00 1vN0aB-000000001Z-0001 <= alice@example.com H=mail.example.org (client.example.org) [192.0.2.7] P=esmtp S=2417 id=m1@example.com",
		"2026-11-23 16:30:02 1vN0aB-000000001Z-0001 => bob@example.net R=dnslookup T=remote_smtp H=mx.example.net [198.51.100.5] C=\"250 2.0.0 Ok\" QT=2s DT=1.5s",
		"2026-11-23 16:30:02 1vN0aB-000000001Z-0001 Completed",
	} {
		exim = append(exim, jentry{base.Add(time.Hour + time.Duration(i)*time.Second), "mx2", "exim", "exim4.service", line})
	}
	writeJournal(t, file, exim...)
	_, acc = runJournal(t, dir, state, true)
	waitPoints(t, acc, eventsOf(exim), "after a restart: only what was written since")
}

// TestJournalFromNow: a first start without from_beginning reads what is
// written from then on, even while the agent is down before it read any
// entry: the cursor of the newest entry at the first start is saved. (More
// than 10 entries after it: journalctl --follow shows only 10 unless told
// otherwise.)
func TestJournalFromNow(t *testing.T) {
	dir, state := t.TempDir(), t.TempDir()
	file := filepath.Join(dir, "remote.journal")
	all := postfixEntries(t, time.Date(2026, 11, 23, 16, 26, 55, 0, time.UTC))
	writeJournal(t, file, all[:10]...)
	m, acc := runJournal(t, dir, state, false)
	require.Eventually(t, func() bool { return savedCursor(t, m) == lastCursor(t, dir) }, 30*time.Second, 10*time.Millisecond)
	m.Stop()
	require.Empty(t, acc.GetTelegrafMetrics(), "nothing of what was there at the first start")
	writeJournal(t, file, all[10:]...)
	_, acc = runJournal(t, dir, state, false)
	waitPoints(t, acc, eventsOf(all[10:]), "what was written since the first start")
}

// TestJournalRotationAndVacuum: the journal rotates while the agent is
// down and the file it was reading is vacuumed before it read its tail:
// the saved cursor no longer exists. journalctl seeks by the cursor's
// time; reading resumes with the newer file, nothing read twice. A new
// file appearing while it follows (the next rotation) is read too.
func TestJournalRotationAndVacuum(t *testing.T) {
	dir, state := t.TempDir(), t.TempDir()
	all := postfixEntries(t, time.Date(2026, 11, 23, 16, 26, 55, 0, time.UTC))
	a, b, c := all[:8], all[8:12], all[12:]
	first := filepath.Join(dir, "system.journal")
	writeJournal(t, first, a...)
	m, acc := runJournal(t, dir, state, true)
	waitPoints(t, acc, eventsOf(a), "the first file")
	require.Eventually(t, func() bool { return savedCursor(t, m) == lastCursor(t, dir) }, 30*time.Second, 10*time.Millisecond)
	m.Stop()

	// Down: entries the agent never reads, then a rotation, the archived
	// file vacuumed.
	unread := []jentry{{a[len(a)-1].at.Add(time.Millisecond), "mx1", "postfix/smtpd", "postfix@-.service", "NOQUEUE: reject: RCPT from unknown[192.0.2.9]: 554 5.7.1 <lost@example.net>: Relay access denied; from=<x@example.com> to=<lost@example.net> proto=ESMTP helo=<x>"}}
	writeJournal(t, first, unread...)
	second := filepath.Join(dir, "system@0001.journal")
	writeJournal(t, second, b...)
	require.NoError(t, os.Remove(first))

	m, acc = runJournal(t, dir, state, true)
	waitPoints(t, acc, eventsOf(append(a[:0:0], b...)), "after the vacuum: the newer file")
	for k := range points(acc.GetTelegrafMetrics()) {
		require.NotContains(t, k, "lost@example.net")
	}
	writeJournal(t, filepath.Join(dir, "system@0002.journal"), c...)
	waitPoints(t, acc, eventsOf(append(append(a[:0:0], b...), c...)), "a file that appears while it follows")
	m.Stop()
}

// TestJournalBadCursor: a saved cursor journalctl refuses (not one it
// wrote) is dropped with a warning, and the journal is read from its
// oldest entry: the events read again overwrite their points.
func TestJournalBadCursor(t *testing.T) {
	dir, state := t.TempDir(), t.TempDir()
	all := postfixEntries(t, time.Date(2026, 11, 23, 16, 26, 55, 0, time.UTC))
	writeJournal(t, filepath.Join(dir, "remote.journal"), all...)
	m := &MailLog{JournalDirectory: dir, StateDir: state}
	b, err := json.Marshal(journalState{Cursor: "not a cursor", Queue: json.RawMessage(`null`)})
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(m.journalStatePath(), b, 0o600))
	_, acc := runJournal(t, dir, state, false)
	waitPoints(t, acc, eventsOf(all), "from the oldest entry")
}

// TestJournalGap: a hole in the sequence numbers of one journal between
// two entries read one after the other is counted as entries lost; other
// journals' numbers and journal_units (journalctl skipping entries) are
// not.
func TestJournalGap(t *testing.T) {
	m := &MailLog{Log: testutil.Logger{}}
	j := &journal{m: m, lost: newStats("gap-test").lines}
	for _, c := range []string{"s=a;i=1", "s=a;i=2", "s=a;i=5", "s=b;i=9", "s=b;i=a", "s=a;i=7"} {
		j.gap(seqnumOf(c))
	}
	require.Equal(t, int64(2), j.lost.Get(), "2 and 5: 3 and 4 gone")
	m.JournalUnits = []string{"postfix*"}
	j.gap(seqnumOf("s=a;i=f"))
	require.Equal(t, int64(2), j.lost.Get(), "with journal_units, holes are journalctl's filter")
}

// TestJournalRejectedAreReadAgain: the outputs drop the first events
// (Telegraf's buffer full): the cursor saved does not pass them; the
// journal is read again from the last checkpoint, until every event is
// delivered, as the same points.
func TestJournalRejectedAreReadAgain(t *testing.T) {
	dir, state := t.TempDir(), t.TempDir()
	all := postfixEntries(t, time.Date(2026, 11, 23, 16, 26, 55, 0, time.UTC))
	writeJournal(t, filepath.Join(dir, "remote.journal"), all...)
	var rejects atomic.Int64
	rejects.Store(4)
	m, acc := runJournalWith(t, dir, state, true, func() string {
		if rejects.Add(-1) >= 0 {
			return "reject"
		}
		return "accept"
	})
	require.Eventually(t, func() bool { return savedCursor(t, m) == lastCursor(t, dir) }, 30*time.Second, 10*time.Millisecond)
	m.Stop()
	require.Equal(t, eventsOf(all), points(acc.GetTelegrafMetrics()), "every event, the rejected read again as the same points")
	require.Greater(t, len(acc.GetTelegrafMetrics()), len(eventsOf(all)), "the rejected were handed twice")
	require.Positive(t, newStats(m.journalName()).rewinds.Get(), "the journal went back to its checkpoint")
}
