package tickscripts

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	client "github.com/influxdata/kapacitor/client/v1"
	"github.com/stretchr/testify/require"

	"github.com/mailtick/mailtick/internal/dev/dc"
	"github.com/mailtick/mailtick/internal/kapacitor/tasks"
	"github.com/mailtick/mailtick/internal/testutil/stack"
	"github.com/mailtick/mailtick/internal/testutil/stacktest"
)

// deployShipped applies the tasks of the shipped tasks.toml whose names
// start with prefix, with the local DC's overrides (schedule and log
// paths only: every period, threshold and query is the shipped one).
func deployShipped(t *testing.T, kapacitorURL, prefix string) *client.Client {
	t.Helper()
	root, err := stack.Root()
	require.NoError(t, err)
	f, desired, err := tasks.Load(filepath.Join(root, "tasks.toml"),
		tasks.Options{URL: kapacitorURL, Overrides: dc.Overrides(t.TempDir(), "1s")})
	require.NoError(t, err)
	var want []tasks.Desired
	for _, d := range desired {
		if strings.HasPrefix(d.ID, f.IDPrefix+prefix) {
			want = append(want, d)
		}
	}
	require.NotEmpty(t, want, "tasks.toml has tasks %s*", prefix)
	c, err := f.Client()
	require.NoError(t, err)
	plan, err := tasks.Plan(c, f, want, false)
	require.NoError(t, err)
	require.NoError(t, tasks.Apply(c, plan))
	return c
}

// delivCounts writes one minute's mail_deliv counts, as the mail_deliv_1m
// task writes them.
func delivCounts(t *testing.T, db *stack.InfluxDB, at time.Time, customer, provider string, events map[string]int) {
	t.Helper()
	var b strings.Builder
	for event, n := range events {
		reason := ""
		if event != "delivered" {
			reason = ",reason=userunknown"
		}
		fmt.Fprintf(&b, "mail_deliv,customer=%s,dc=dc1,direction=outbound,event=%s,rcpt_provider=%s,sender_domain=%s.example%s,window=1m count=%d %d\n",
			customer, event, provider, customer, reason, n, at.UnixNano())
	}
	require.NoError(t, db.Write("mail_rollups", b.String()))
}

// levels are the last level of each alert of a topic, by id.
func levels(t *testing.T, c *client.Client, topic string) map[string]string {
	ev, err := c.ListTopicEvents(c.TopicEventsLink(topic), nil)
	if err != nil {
		return nil
	}
	out := map[string]string{}
	for _, e := range ev.Events {
		out[e.ID] = e.State.Level
	}
	return out
}

// TestDeliverabilityAlertsIntegration: the shipped deliverability tasks
// on a real Kapacitor: a customer whose bounce rate crosses SES's 10%
// goes CRITICAL and recovers once more mail is delivered; one under the
// thresholds, and one that sent too little, raise nothing; a customer
// whose mail to Gmail draws 0.4% complaints crosses Gmail's 0.3%.
func TestDeliverabilityAlertsIntegration(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test")
	}
	db := stacktest.InfluxDB(t, "mail", "mail_rollups")
	kapa := stacktest.Kapacitor(t, db.URL)
	at := time.Now().UTC().Add(-30 * time.Minute).Truncate(time.Minute)
	delivCounts(t, db, at, "c1", "microsoft", map[string]int{"delivered": 1000, "bounced": 150}) // 13% bounces
	delivCounts(t, db, at, "c2", "microsoft", map[string]int{"delivered": 2000, "bounced": 20})  // 1%
	delivCounts(t, db, at, "c3", "microsoft", map[string]int{"delivered": 100, "bounced": 100})  // 50%, but 200 sent
	delivCounts(t, db, at, "c4", "gmail", map[string]int{"delivered": 1000, "complained": 4})    // 0.4% complaints
	c := deployShipped(t, kapa.URL, "mail_deliverability_")

	t.Cleanup(func() {
		if !t.Failed() {
			return
		}
		list, err := c.ListTasks(nil)
		require.NoError(t, err)
		for _, task := range list {
			t.Logf("task %s: error %q\n%s", task.ID, task.Error, task.Dot)
		}
	})
	const c1 = "mail_deliverability/sending/customer=c1,sender_domain=c1.example"
	require.Eventually(t, func() bool {
		l := levels(t, c, "mail_deliverability")
		return l[c1] == "CRITICAL" && l["mail_deliverability/gmail/customer=c4"] == "CRITICAL"
	}, 60*time.Second, 200*time.Millisecond, "c1's bounces and c4's Gmail complaints raise CRITICAL: %v", levels(t, c, "mail_deliverability"))
	l := levels(t, c, "mail_deliverability")
	// c4's 0.4% complaints are over SES's 0.1% review threshold, under its 0.5%.
	require.Equal(t, "WARNING", l["mail_deliverability/sending/customer=c4,sender_domain=c4.example"])
	require.Len(t, l, 3, "c2 is under the thresholds, c3 under min_volume: %v", l)

	// c1 delivers 3000 more: 150 of 4150, 3.6%, under 5%: it recovers.
	delivCounts(t, db, at.Add(time.Minute), "c1", "microsoft", map[string]int{"delivered": 3000})
	require.Eventually(t, func() bool { return levels(t, c, "mail_deliverability")[c1] == "OK" },
		60*time.Second, 200*time.Millisecond, "c1 recovers: %v", levels(t, c, "mail_deliverability"))

	// The rates are written for the report and the dashboards: c1's last
	// is 150 of 4150.
	require.Eventually(t, func() bool {
		series, err := db.Query("mail_rollups", `SELECT last("bounce_rate") FROM "mail_deliverability" WHERE "rates" = 'sending' AND "customer" = 'c1'`)
		return err == nil && len(series) == 1 && fmt.Sprint(series[0].Values[0][1]) == fmt.Sprint(150.0/4150.0)
	}, 30*time.Second, 200*time.Millisecond, "mail_deliverability holds c1's bounce rate")
}
