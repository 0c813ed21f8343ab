// Package flux holds the Flux versions of the rollups; its test runs their
// query logic on InfluxDB 1.8's Flux engine against seeded events.
package flux

import (
	"fmt"
	"math"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/mailtick/mailtick/internal/gen"
	latencyhist "github.com/mailtick/mailtick/internal/latency"
	"github.com/mailtick/mailtick/internal/testutil/stack"
	"github.com/mailtick/mailtick/internal/testutil/stacktest"
)

// queryOf returns the part of a task file between BEGIN QUERY and END
// QUERY, with the file's imports and the parameters the test sets in front.
func queryOf(t *testing.T, file, params string) string {
	t.Helper()
	b, err := os.ReadFile(file)
	require.NoError(t, err)
	text := string(b)
	begin := strings.Index(text, "// BEGIN QUERY")
	end := strings.Index(text, "// END QUERY")
	require.True(t, begin > 0 && end > begin, "%s needs BEGIN QUERY and END QUERY markers", file)
	var imports string
	for _, line := range strings.Split(text[:begin], "\n") {
		if strings.HasPrefix(line, "import ") {
			imports += line + "\n"
		}
	}
	return imports + params + text[begin:end]
}

// runFlux runs a Flux query on InfluxDB 1.8 and returns its rows as maps.
func runFlux(t *testing.T, db *stack.InfluxDB, query string) []map[string]string {
	t.Helper()
	tables, err := stack.Querier{URL: db.URL, Timeout: 5 * time.Minute}.Flux(query)
	require.NoError(t, err)
	var rows []map[string]string
	for _, tb := range tables {
		rows = append(rows, tb.Rows...)
	}
	return rows
}

func TestFluxRollupsIntegration(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test")
	}
	db := stacktest.InfluxDB(t, "mail")
	events := stacktest.SeedEvents(t, db, "mail", 8, 2000)

	params := "bucket = \"mail/autogen\"\nwindow = 1m\nwindow_name = \"1m\"\nperiod = 1h\n"
	countsParams := params + "measurement = \"mail_counts\"\nby = [\"dc\", \"direction\", \"event\", \"customer\"]\n"

	t.Run("mail_counts", func(t *testing.T) {
		rows := runFlux(t, db, queryOf(t, "mail_counts.flux", countsParams))
		require.NotEmpty(t, rows)
		total := 0
		for _, r := range rows {
			require.Equal(t, "mail_counts", r["_measurement"])
			require.Equal(t, "count", r["_field"])
			require.Equal(t, "1m", r["window"])
			n, err := strconv.Atoi(r["_value"])
			require.NoError(t, err)
			total += n
		}
		require.Equal(t, len(events), total, "the counts add up to every event")
	})

	t.Run("mail_latency", func(t *testing.T) {
		rows := runFlux(t, db, queryOf(t, "mail_latency.flux", params))
		want := latency(events)
		got := map[string]string{}
		for _, r := range rows {
			require.Equal(t, "mail_latency", r["_measurement"])
			tm, err := time.Parse(time.RFC3339Nano, r["_time"])
			require.NoError(t, err)
			v, err := strconv.ParseFloat(r["_value"], 64)
			require.NoError(t, err)
			got[fmt.Sprintf("%s %d %s", r["direction"], tm.UnixNano(), r["_field"])] = strconv.FormatFloat(v, 'f', 6, 64)
		}
		require.Equal(t, want, got)
	})

	// Last: it adds events. mail_deliv is mail_counts.flux by more tags,
	// those processors.mailclassify gives the raw events.
	t.Run("mail_deliv", func(t *testing.T) {
		var lines strings.Builder
		want := map[string]int{}
		at := time.Now().Add(-30 * time.Minute).Truncate(time.Minute)
		for i := range 60 {
			reason := []string{"userunknown", "mailboxfull", "blocked"}[i%3]
			provider := []string{"gmail", "microsoft"}[i%2]
			fmt.Fprintf(&lines, "mail_event,dc=dc9,direction=outbound,customer=c1,sender_domain=shop.example,event=bounced,reason=%s,rcpt_provider=%s events=1i %d\n",
				reason, provider, at.Add(time.Duration(i)*time.Second).UnixNano())
			want[reason+" "+provider]++
		}
		require.NoError(t, db.Write("mail", lines.String()))
		rows := runFlux(t, db, queryOf(t, "mail_counts.flux", params+`measurement = "mail_deliv"
by = ["dc", "direction", "customer", "sender_domain", "event", "reason", "rcpt_provider"]
`))
		got, total := map[string]int{}, 0
		for _, r := range rows {
			require.Equal(t, "mail_deliv", r["_measurement"])
			n, err := strconv.Atoi(r["_value"])
			require.NoError(t, err)
			total += n
			if r["dc"] == "dc9" {
				require.Equal(t, "shop.example", r["sender_domain"])
				got[r["reason"]+" "+r["rcpt_provider"]] += n
			}
		}
		require.Equal(t, want, got, "by reason and provider")
		require.Equal(t, len(events)+60, total, "the counts add up to every event")
	})
}

// latency computes, independently, what mail_latency.flux yields per
// direction, minute and statistic (Flux's exact_selector: rank ceil(q*n)).
func latency(events []gen.Message) map[string]string {
	out := map[string]string{}
	f := func(v float64) string { return strconv.FormatFloat(v, 'f', 6, 64) }
	for key, v := range stacktest.LatencyGroups(events) {
		sum := 0.0
		for _, x := range v {
			sum += x
		}
		for name, q := range map[string]float64{"p50": 0.5, "p90": 0.9, "p95": 0.95, "p99": 0.99} {
			out[key+" "+name] = f(v[max(0, int(math.Ceil(q*float64(len(v))))-1)])
		}
		out[key+" max"] = f(v[len(v)-1])
		out[key+" mean"] = f(sum / float64(len(v)))
		out[key+" count"] = f(float64(len(v)))
	}
	return out
}

// TestFluxSpamIntegration runs mail_spam.flux's query over events with a
// spam burst and checks every distinct count against its own.
func TestFluxSpamIntegration(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test")
	}
	db := stacktest.InfluxDB(t, "mail")
	events := stacktest.SeedEvents(t, db, "mail", 12, 300)
	minute := events[0].Time.Truncate(time.Minute)
	var burst strings.Builder
	for i := 0; i < 150; i++ {
		m := events[i%len(events)]
		m.Event.Sender, m.Event.Recipient = "spammer@bad.example", fmt.Sprintf("victim%d@example.org", i)
		m.Event.Helo = fmt.Sprintf("host%d.bad.example", i%12)
		m.Time = minute.Add(time.Duration(i)*100*time.Millisecond + 7)
		burst.WriteString(m.Line("dc1"))
		events = append(events, m)
	}
	require.NoError(t, db.Write("mail", burst.String()))

	rows := runFlux(t, db, queryOf(t, "mail_spam.flux", "bucket = \"mail/autogen\"\nspan = 1m\nperiod = 1h\n"))
	got := map[string]string{}
	for _, r := range rows {
		require.Equal(t, "mail_spam", r["_measurement"])
		key := r["sender"] + r["sender_domain"]
		got[fmt.Sprintf("%s %s %s", r["_time"], key, r["_field"])] = r["_value"]
	}
	first := fmt.Sprintf("%s spammer@bad.example", minute.UTC().Format(time.RFC3339))
	require.Equal(t, "150", got[first+" distinct_recipients"])
	require.Equal(t, "12", got[first+" distinct_helos"])

	// Every sender's distinct recipients per minute, counted here.
	want := map[string]map[string]bool{}
	for _, m := range events {
		key := fmt.Sprintf("%s %s distinct_recipients", m.Time.Truncate(time.Minute).UTC().Format(time.RFC3339), m.Event.Sender)
		if want[key] == nil {
			want[key] = map[string]bool{}
		}
		want[key][m.Event.Recipient] = true
	}
	for key, rcpts := range want {
		require.Equal(t, strconv.Itoa(len(rcpts)), got[key], key)
	}
}

// TestFluxLatencyHistIntegration runs mail_latency_hist.flux's query level
// by level on InfluxDB 1.8's Flux engine over 70 days of events: the 1m
// level from raw events, then 1h, 1d, 1w (from Monday) and 1mo each from
// the level below, its rows written back as to() would. Every count of
// every window and bucket equals a computation of the test's own with
// internal/latency, the mapping the TICKscripts' UDF and `mailtick sla` use.
func TestFluxLatencyHistIntegration(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test")
	}
	db := stacktest.InfluxDB(t, "mail", "mail_rollups")
	start := time.Now().Add(-70 * 24 * time.Hour)
	g, err := gen.New(gen.Config{Seed: 21, Start: start, Interval: 29 * time.Minute})
	require.NoError(t, err)
	var events []gen.Message
	var lines strings.Builder
	for m := g.Next(); m.Time.Before(time.Now().Add(-time.Minute)); m = g.Next() {
		events = append(events, m)
		lines.WriteString(m.Line("dc1"))
	}
	require.NoError(t, db.Write("mail", lines.String()))

	levels := []struct {
		level       latencyhist.Level
		below, span string
		offset      string
	}{
		{latencyhist.Minute, "", "1m", "0s"},
		{latencyhist.Hour, "1m", "1h", "0s"},
		{latencyhist.Day, "1h", "1d", "0s"},
		{latencyhist.Week, "1d", "1w", "4d"},
		{latencyhist.Month, "1d", "1mo", "0s"},
	}
	for _, l := range levels {
		params := fmt.Sprintf("bucket = \"mail/autogen\"\nout_bucket = \"mail_rollups/autogen\"\nlevel = %q\nbelow = %q\nspan = %s\noffset = %s\nperiod = 120d\ntz = \"UTC\"\n",
			l.level, l.below, l.span, l.offset)
		rows := runFlux(t, db, queryOf(t, "mail_latency_hist.flux", params))
		want := map[string]int{}
		for _, m := range events {
			want[fmt.Sprintf("%s %s %s", m.Event.Direction, l.level.Start(m.Time, time.UTC).Format(time.RFC3339), latencyhist.Tag(m.Event.LatencyMs))]++
		}
		got := map[string]int{}
		var write strings.Builder
		for _, r := range rows {
			require.Equal(t, "mail_latency_hist", r["_measurement"])
			require.Equal(t, string(l.level), r["window"])
			n, err := strconv.Atoi(r["_value"])
			require.NoError(t, err)
			tm, err := time.Parse(time.RFC3339Nano, r["_time"])
			require.NoError(t, err)
			got[fmt.Sprintf("%s %s %s", r["direction"], tm.Format(time.RFC3339), r["bucket"])] = n
			fmt.Fprintf(&write, "mail_latency_hist,bucket=%s,dc=%s,direction=%s,tz=%s,window=%s count=%di %d\n",
				r["bucket"], r["dc"], r["direction"], r["tz"], r["window"], n, tm.UnixNano())
		}
		require.Equal(t, want, got, "level %s", l.level)
		require.NoError(t, db.Write("mail_rollups", write.String()))
		t.Logf("level %-3s: %d points", l.level, len(rows))
	}
}
