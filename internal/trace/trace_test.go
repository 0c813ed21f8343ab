package trace

import (
	"bytes"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/influxdata/telegraf"
	"github.com/stretchr/testify/require"

	"github.com/mailtick/mailtick/internal/influxq"
	"github.com/mailtick/mailtick/internal/testutil/providertest"
	"github.com/mailtick/mailtick/internal/testutil/stacktest"
	"github.com/mailtick/mailtick/plugins/common/mailevent"
	ml "github.com/mailtick/mailtick/plugins/common/maillog"
)

// TestTraceIntegration: a real InfluxDB holding what the DC's inputs
// write: the log of a real Postfix read by inputs.maillog's reader (three
// messages, one recipient refused), the mailer's own event of one of them
// (as a mailer publishes it into NSQ), and Mailgun's published webhook
// samples through the mailgun preset. Looked up by message-id, queue id
// or recipient, the timeline holds every event of that message, oldest
// first, from each source, and the time between them; nothing of the
// other messages.
func TestTraceIntegration(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test")
	}
	db := stacktest.InfluxDB(t, "mail")

	b, err := os.ReadFile("../../plugins/common/maillog/testdata/postfix-3.7.11-debian12.log")
	require.NoError(t, err)
	c := ml.NewCorrelator(ml.Options{})
	var ms []telegraf.Metric
	now := time.Date(2026, 11, 30, 0, 0, 0, 0, time.UTC)
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		evs, _ := c.Line(line, now, time.UTC)
		for i := range evs {
			if !evs[i].Security {
				ms = append(ms, evs[i].Metric())
			}
		}
	}
	stacktest.WriteMetrics(t, db, "mail", "dc1", ms)
	// Another MTA reused the queue id, for another message: not m1's.
	require.NoError(t, db.Write("mail", `mail_event,dc=dc1,mailer=mx2,direction=outbound,event=delivered events=1i,queue_id="68ABA984896",message_id="<other@example.com>",recipient="x@example.net" 1795451230000000000`+"\n"))
	// The mailer handed m1 to the MTA a second before Postfix logged it.
	require.NoError(t, db.Write("mail", `mail_event,dc=dc1,customer=c1,mailer=app1,direction=outbound,event=accepted events=1i,message_id="m1@example.com",sender="alice@example.com" 1795451214000000000`+"\n"))

	bodies, err := providertest.Bodies("mailgun")
	require.NoError(t, err)
	m := mailevent.Mapping{Preset: "mailgun"}.WithDefaults()
	d, err := m.NewDecoder()
	require.NoError(t, err)
	var hooks []telegraf.Metric
	for _, body := range bodies {
		out := d.Decode(mailevent.NewScratch(), body.Data, time.Now())
		require.Empty(t, out.Bad, body.Name)
		hooks = append(hooks, out.Metrics...)
	}
	stacktest.WriteMetrics(t, db, "mail", "dc1", hooks)

	src := Source{Querier: influxq.Querier{URL: db.URL, Timeout: time.Minute}, Database: "mail"}
	day := func(s string) (time.Time, time.Time) {
		from, err := time.Parse(time.DateOnly, s)
		require.NoError(t, err)
		return from, from.Add(24 * time.Hour)
	}
	brief := func(steps []Step) []string {
		var out []string
		for _, st := range steps {
			out = append(out, strings.Join([]string{st.Event, st.Mailer, st.QueueID, st.Recipient}, " "))
		}
		return out
	}
	from, to := day("2026-11-23")
	m1 := []string{
		"accepted app1  ",
		"accepted mx1 68ABA984896 ",
		"bounced mx1 68ABA984896 bad1@example.net",
		"deferred mx1 68ABA984896 later1@example.net",
		"delivered mx1 68ABA984896 ok1@example.net",
	}
	for name, k := range map[string]Key{
		"message-id":         {MessageID: "m1@example.com"},
		"message-id in <>":   {MessageID: "<m1@example.com>"},
		"a recipient":        {Recipient: "bad1@example.net"},
		"recipient + sender": {Recipient: "later1@example.net", Sender: "alice@example.com"},
	} {
		steps, err := src.Trace(k, from, to)
		require.NoError(t, err, name)
		// Postfix's lines of one second come in the order of a
		// message's life; the recipients' outcomes of that second in no
		// order the log's times can tell.
		require.ElementsMatch(t, m1, brief(steps), name)
		require.Equal(t, m1[:2], brief(steps)[:2], name)
		require.Equal(t, "deferred", steps[2].Event, name)
		require.Equal(t, time.Second, steps[1].Time.Truncate(time.Second).Sub(steps[0].Time), "%s: the mailer's event a second before Postfix's", name)
		for i := 1; i < len(steps); i++ {
			require.Equal(t, steps[i].Time.Sub(steps[i-1].Time), steps[i].Since, name)
		}
	}
	// A queue id alone names it on every MTA that used it.
	steps, err := src.Trace(Key{QueueID: "68ABA984896"}, from, to)
	require.NoError(t, err)
	require.ElementsMatch(t, append(append([]string{}, m1...), "delivered mx2 68ABA984896 x@example.net"), brief(steps))
	steps, err = src.Trace(Key{Recipient: "reject-me@example.net"}, from, to)
	require.NoError(t, err)
	require.Equal(t, []string{"rejected mx1  reject-me@example.net"}, brief(steps), "a reject: no queue id, no message")

	steps, err = src.Trace(Key{Recipient: "nobody@example.net"}, from, to)
	require.NoError(t, err)
	require.Empty(t, steps)
	var out bytes.Buffer
	require.NoError(t, Write(&out, steps))
	require.Equal(t, "no event of such a message in the range\n", out.String())

	// Mailgun's own samples: one message to two recipients (and one
	// more accepted event of it that names none).
	from, to = day("2018-06-22")
	steps, err = src.Trace(Key{MessageID: "20180622182958.1.48906CB188F1A454@exmple.org"}, from, to)
	require.NoError(t, err)
	require.Equal(t, []string{
		"accepted mailgun  team@example.org",
		"accepted mailgun  ",
		"accepted mailgun  john@example.com",
		"delivered mailgun  john@example.com",
	}, brief(steps))
	out.Reset()
	require.NoError(t, Write(&out, steps))
	require.Contains(t, out.String(), "2018-06-22T18:29:59.626Z")
	require.Contains(t, out.String(), "+907ms")

	_, err = src.Trace(Key{}, from, to)
	require.ErrorContains(t, err, "nothing to look up")

	// A key that matches more than a timeline: an error, not a flood.
	var bulk strings.Builder
	for i := 0; i <= MaxSteps; i++ {
		fmt.Fprintf(&bulk, "mail_event,dc=dc1,mailer=app1,event=accepted events=1i,sender=\"bulk@example.com\" %d\n", time.Date(2026, 11, 24, 0, 0, 0, i*1000, time.UTC).UnixNano())
	}
	require.NoError(t, db.Write("mail", bulk.String()))
	from, to = day("2026-11-24")
	_, err = src.Trace(Key{Sender: "bulk@example.com"}, from, to)
	require.ErrorIs(t, err, ErrTooMany)
}
