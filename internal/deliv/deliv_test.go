package deliv_test

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/mailtick/mailtick/internal/deliv"
	"github.com/mailtick/mailtick/internal/influxq"
	"github.com/mailtick/mailtick/internal/reconcile"
	"github.com/mailtick/mailtick/internal/report"
	"github.com/mailtick/mailtick/internal/testutil/stacktest"
)

// ev is one raw event as processors.mailclassify leaves it.
type ev struct {
	t                                 time.Time
	customer, event, reason, provider string
}

// TestDeliverabilityIntegration: three days of events of two customers
// to three providers, rolled up to mail_deliv at 1m, 1h and 1d as the
// tasks do (here by the reconciler's Rebuild, which computes them as
// Kapacitor does); deliverability over ranges that cut days and hours
// answers exactly the rates and reasons computed from the events.
func TestDeliverabilityIntegration(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test")
	}
	db := stacktest.InfluxDB(t, "mail", "mail_rollups")
	start := time.Now().UTC().Add(-4 * 24 * time.Hour).Truncate(24 * time.Hour)
	rng := rand.New(rand.NewPCG(7, 7))
	var events []ev
	var lines strings.Builder
	events2 := []string{"delivered", "delivered", "delivered", "delivered", "bounced", "deferred", "complained", "expired", "rejected"}
	reasons := []string{"userunknown", "mailboxfull", "blocked", "onhold"}
	for i := 0; i < 3000; i++ {
		e := ev{t: start.Add(time.Duration(rng.Int64N(int64(3 * 24 * time.Hour)))),
			customer: []string{"c1", "c2"}[rng.IntN(2)], event: events2[rng.IntN(len(events2))],
			provider: []string{"gmail", "microsoft", "other"}[rng.IntN(3)]}
		tags := fmt.Sprintf("customer=%s,dc=dc1,direction=outbound,event=%s,rcpt_provider=%s,sender_domain=%s.example", e.customer, e.event, e.provider, e.customer)
		if e.event != "delivered" && e.event != "complained" {
			e.reason = reasons[rng.IntN(len(reasons))]
			tags += ",reason=" + e.reason
		}
		if e.event == "complained" {
			e.reason = "feedback"
			tags += ",reason=feedback"
		}
		fmt.Fprintf(&lines, "mail_event,%s events=1i %d\n", tags, e.t.UnixNano()+int64(i))
		events = append(events, e)
	}
	require.NoError(t, db.Write("mail", lines.String()))
	q := influxq.Querier{URL: db.URL, Timeout: time.Minute}
	r, err := reconcile.New(q, reconcile.Options{RawDB: "mail", RollupDB: "mail_rollups"})
	require.NoError(t, err)
	_, err = r.Rebuild(start, start.Add(3*24*time.Hour))
	require.NoError(t, err)

	src := deliv.Source{Querier: q, Database: "mail_rollups"}
	ranges := []report.Range{
		{Name: "all", From: start, To: start.Add(3 * 24 * time.Hour)},
		{Name: "cut", From: start.Add(13*time.Hour + 17*time.Minute), To: start.Add(2*24*time.Hour + 5*time.Hour + 3*time.Minute)},
	}
	results, err := src.Answer(ranges, deliv.Filter{By: []string{"customer", "rcpt_provider"}, Only: map[string][]string{"rcpt_provider": {"gmail", "microsoft"}}, Top: 3})
	require.NoError(t, err)
	require.Len(t, results, 2*2*2)
	for _, res := range results {
		rg := ranges[0]
		if res.Range == "cut" {
			rg = ranges[1]
		}
		want := map[string]int64{}
		why := map[string]int64{}
		for _, e := range events {
			if e.t.Before(rg.From) || !e.t.Before(rg.To) || e.customer != res.Group["customer"] || e.provider != res.Group["rcpt_provider"] {
				continue
			}
			want[e.event]++
			if e.reason != "" {
				why[e.reason]++
			}
		}
		require.Equal(t, want, res.Events, "%s %v", res.Range, res.Group)
		sent := want["delivered"] + want["bounced"] + want["expired"]
		require.Equal(t, sent, res.Sent)
		require.InDelta(t, float64(want["bounced"]+want["expired"])/float64(sent), res.Rates["bounce"], 1e-12)
		require.InDelta(t, float64(want["complained"])/float64(want["delivered"]), res.Rates["complaint"], 1e-12)
		require.InDelta(t, float64(want["deferred"])/float64(want["deferred"]+sent), res.Rates["deferral"], 1e-12)
		require.Len(t, res.Reasons, 3)
		for _, rc := range res.Reasons {
			require.Equal(t, why[rc.Reason], rc.Events, rc.Reason)
		}
		require.Equal(t, why["onhold"], res.Unclassified)
	}

	// Without customer or sender domain the answer comes from mail_deliv_dc
	// (a few series per DC): the same counts.
	byProvider, err := src.Answer(ranges, deliv.Filter{By: []string{"rcpt_provider"}})
	require.NoError(t, err)
	require.Len(t, byProvider, 2*3)
	for _, res := range byProvider {
		rg := ranges[0]
		if res.Range == "cut" {
			rg = ranges[1]
		}
		want := map[string]int64{}
		for _, e := range events {
			if !e.t.Before(rg.From) && e.t.Before(rg.To) && e.provider == res.Group["rcpt_provider"] {
				want[e.event]++
			}
		}
		require.Equal(t, want, res.Events, "%s %v", res.Range, res.Group)
	}

	var text, csv bytes.Buffer
	require.NoError(t, deliv.Table(results).WriteText(&text, []string{"customer", "rcpt_provider"}, ranges))
	require.Contains(t, text.String(), "A: all")
	require.Regexp(t, `c1\s+gmail\s+bounce\s+\d+\.\d\d%\s+\d+\.\d\d%\s+\d\.\d{3}`, text.String())
	require.NoError(t, deliv.Table(results).WriteCSV(&csv, []string{"customer", "rcpt_provider"}))
	require.True(t, strings.HasPrefix(csv.String(), "range,from,to,customer,rcpt_provider,sent,delivered,bounce,complaint,deferral,deferred,complained,unclassified,top_reasons\n"), csv.String())

	_, err = src.Answer(ranges, deliv.Filter{By: []string{"recipient"}})
	require.ErrorContains(t, err, `invalid --by "recipient"`)
}
