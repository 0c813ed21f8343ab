package reconcile_test

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/mailtick/mailtick/internal/influxq"
	"github.com/mailtick/mailtick/internal/latency"
	"github.com/mailtick/mailtick/internal/reconcile"
	"github.com/mailtick/mailtick/internal/testutil/stack"
	"github.com/mailtick/mailtick/internal/testutil/stacktest"
)

// rawEvent is one mail_event as the agent writes it.
type rawEvent struct {
	t         time.Time
	direction string
	event     string
	latency   float64 // 0: none (a reject)
}

func writeRaw(t *testing.T, db *stack.InfluxDB, events []rawEvent) {
	t.Helper()
	var b strings.Builder
	for i, e := range events {
		fields := "events=1i"
		if e.latency > 0 {
			fields += fmt.Sprintf(",latency_ms=%g", e.latency)
		}
		// Postfix's delays=a/b/c/d on some deliveries, one stage missing
		// on some of those.
		if e.latency > 0 && i%3 == 0 {
			fields += fmt.Sprintf(",delay_before_qmgr_ms=%g,delay_in_qmgr_ms=%g,delay_conn_setup_ms=%g", e.latency/10, e.latency/5, e.latency/2)
			if i%2 == 0 {
				fields += fmt.Sprintf(",delay_transmission_ms=%g", e.latency/5)
			}
		}
		// processors.mailclassify's tags, on some: a reject's reason,
		// the recipient's provider.
		tags := ""
		if e.event == "rejected" {
			tags += ",reason=blocked"
		}
		if i%2 == 0 {
			tags += ",rcpt_provider=gmail,sender_domain=shop.example"
		}
		// Distinct times: one point each.
		fmt.Fprintf(&b, "mail_event,customer=c1,dc=dc1,direction=%s,event=%s%s %s %d\n", e.direction, e.event, tags, fields, e.t.UnixNano()+int64(i))
	}
	require.NoError(t, db.Write("mail", b.String()))
}

// events makes n events in the minute starting at m, every third a
// reject without latency.
func events(m time.Time, n int) []rawEvent {
	var out []rawEvent
	for i := range n {
		e := rawEvent{t: m.Add(time.Duration(i) * time.Second / 2), direction: "outbound", event: "delivered", latency: float64(100 + 37*i)}
		if i%3 == 2 {
			e.event, e.latency = "rejected", 0
		}
		if i%4 == 3 {
			e.direction = "inbound"
		}
		out = append(out, e)
	}
	return out
}

func sumOf(t *testing.T, db *stack.InfluxDB, q string) float64 {
	t.Helper()
	s, err := db.Query("mail_rollups", q)
	require.NoError(t, err)
	if len(s) == 0 {
		return 0
	}
	var total float64
	for _, x := range s {
		for _, row := range x.Values {
			if row[1] != nil {
				f, err := row[1].(json.Number).Float64()
				require.NoError(t, err)
				total += f
			}
		}
	}
	return total
}

// The reconciler finds the windows whose rollups miss events (late, or
// never rolled up), recomputes only those, cascades to every level above,
// and a second cycle finds nothing to do.
func TestCycleRepairsWhatDiffers(t *testing.T) {
	db := stacktest.InfluxDB(t, "mail")
	now := time.Now().UTC()
	loc, err := time.LoadLocation("Europe/Berlin")
	require.NoError(t, err)

	// Three minutes: a on time and rolled up by Kapacitor (here: by a
	// first cycle), b whose events arrive late, c never rolled up
	// (Kapacitor was down).
	a := now.Add(-3 * time.Hour).Truncate(time.Minute)
	b := now.Add(-50 * time.Minute).Truncate(time.Minute)
	c := now.Add(-30 * time.Minute).Truncate(time.Minute)
	writeRaw(t, db, events(a, 40))
	writeRaw(t, db, events(b, 30))

	var central []reconcile.Point
	r, err := reconcile.New(querier(db), reconcile.Options{RawDB: "mail", RollupDB: "mail_rollups", Loc: loc,
		Emit: func(p reconcile.Point) { central = append(central, p) }})
	require.NoError(t, err)
	st, err := r.Cycle(now.Add(-14*24*time.Hour), now)
	require.NoError(t, err)
	require.EqualValues(t, 70, st.LateEvents, "nothing was rolled up: every event is late")
	require.EqualValues(t, 2, st.Recomputed["mail_counts 1m"], "%v", st.Recomputed)

	// Now the late events of b, and c's events, none rolled up.
	writeRaw(t, db, events(b.Add(20*time.Second), 11))
	writeRaw(t, db, events(c, 25))
	central = nil
	st, err = r.Cycle(now.Add(-14*24*time.Hour), now)
	require.NoError(t, err)
	require.EqualValues(t, 11+25, st.LateEvents)
	settled := now.Add(-reconcile.DefaultAges[0])
	require.Equal(t, expected(settled, loc, b, c), st.Recomputed)

	// Every level holds what the raw events say, in every window that
	// ended before the first age (younger ones are Kapacitor's).
	for _, m := range []time.Time{a, b, c} {
		for _, l := range []struct {
			name  string
			level latency.Level
			loc   *time.Location
			field string
		}{
			{"mail_counts", latency.Minute, time.UTC, "events"}, {"mail_counts", latency.Hour, time.UTC, "events"},
			{"mail_counts", latency.Day, time.UTC, "events"},
			{"mail_deliv", latency.Minute, time.UTC, "events"}, {"mail_deliv", latency.Hour, time.UTC, "events"},
			{"mail_deliv", latency.Day, time.UTC, "events"},
			{"mail_deliv_dc", latency.Minute, time.UTC, "events"}, {"mail_deliv_dc", latency.Hour, time.UTC, "events"},
			{"mail_deliv_dc", latency.Day, time.UTC, "events"},
			{"mail_latency_hist", latency.Minute, loc, "latency_ms"}, {"mail_latency_hist", latency.Hour, loc, "latency_ms"},
			{"mail_latency_hist", latency.Day, loc, "latency_ms"}, {"mail_latency_hist", latency.Week, loc, "latency_ms"},
			{"mail_latency_hist", latency.Month, loc, "latency_ms"},
			{"mail_stage_hist", latency.Minute, loc, "delay_in_qmgr_ms"}, {"mail_stage_hist", latency.Hour, loc, "delay_transmission_ms"},
			{"mail_stage_hist", latency.Day, loc, "delay_before_qmgr_ms"}, {"mail_stage_hist", latency.Week, loc, "delay_conn_setup_ms"},
			{"mail_stage_hist", latency.Month, loc, "delay_transmission_ms"},
		} {
			from := l.level.Start(m, l.loc)
			to := l.level.Next(from, l.loc)
			if to.After(settled) {
				continue
			}
			where := fmt.Sprintf(`time >= %d AND time < %d`, from.UnixNano(), to.UnixNano())
			raw, err := db.Count("mail", `SELECT count("`+l.field+`") FROM "mail_event" WHERE `+where)
			require.NoError(t, err)
			stage := ""
			if l.name == "mail_stage_hist" { // each stage apart: the stage's field
				stage = ` AND "stage" = '` + strings.TrimSuffix(strings.TrimPrefix(l.field, "delay_"), "_ms") + `'`
			}
			require.EqualValues(t, raw, sumOf(t, db, `SELECT sum("count") FROM "`+l.name+`" WHERE "window" = '`+string(l.level)+`'`+stage+` AND `+where),
				"%s %s%s from %s", l.name, l.level, stage, from)
		}
	}

	// What went central: every minute's final counts, b and c recomputed,
	// a sent again from the DC's rollups (it passed the first age since
	// "last"), in the agents' types; the same point sent twice is one.
	final := map[string]float64{}
	deliv := map[string]float64{}
	for _, p := range central {
		switch {
		case p.Name == "mail_counts" && p.Tags["window"] == "1m":
			final[fmt.Sprint(p.Time.UnixNano(), p.Tags)] = p.Fields["count"].(float64)
		case p.Name == "mail_deliv" && p.Tags["window"] == "1m":
			deliv[fmt.Sprint(p.Time.UnixNano(), p.Tags)] = p.Fields["count"].(float64)
		case p.Name == "mail_latency_hist" && p.Tags["window"] == "1m":
			require.IsType(t, int64(0), p.Fields["count"])
			require.Equal(t, "Europe/Berlin", p.Tags["tz"])
			_, err := latency.ParseTag(p.Tags["bucket"])
			require.NoError(t, err)
		}
	}
	var counts, delivCounts, blocked float64
	for _, n := range final {
		counts += n
	}
	for k, n := range deliv {
		delivCounts += n
		if strings.Contains(k, "reason:blocked") {
			blocked += n
		}
	}
	require.EqualValues(t, 40+30+11+25, counts)
	require.EqualValues(t, 40+30+11+25, delivCounts, "mail_deliv counts the same events")
	require.EqualValues(t, 13+10+3+8, blocked, "by reason: every third event of each minute is a blocked reject")

	// Nothing differs any more: nothing is recomputed.
	st, err = r.Cycle(now.Add(-14*24*time.Hour), now)
	require.NoError(t, err)
	require.Zero(t, st.LateEvents)
	require.Empty(t, st.Recomputed, "a second cycle recomputed windows")
	require.NotZero(t, st.WindowsChecked)
}

// expected is what a cycle recomputes when minutes ms changed: the
// minutes, and at each level above the windows holding them that ended by
// settled.
func expected(settled time.Time, loc *time.Location, ms ...time.Time) map[string]int64 {
	out := map[string]int64{}
	for _, name := range []string{"mail_counts 1m", "mail_deliv 1m", "mail_deliv_dc 1m", "mail_latency 1m", "mail_latency_hist 1m", "mail_stage_hist 1m"} {
		out[name] = int64(len(ms))
	}
	for _, l := range []struct {
		name  string
		level latency.Level
		loc   *time.Location
	}{
		{"mail_counts", latency.Hour, time.UTC}, {"mail_counts", latency.Day, time.UTC},
		{"mail_deliv", latency.Hour, time.UTC}, {"mail_deliv", latency.Day, time.UTC},
		{"mail_deliv_dc", latency.Hour, time.UTC}, {"mail_deliv_dc", latency.Day, time.UTC},
		{"mail_latency_hist", latency.Hour, loc}, {"mail_latency_hist", latency.Day, loc},
		{"mail_latency_hist", latency.Week, loc}, {"mail_latency_hist", latency.Month, loc},
		{"mail_stage_hist", latency.Hour, loc}, {"mail_stage_hist", latency.Day, loc},
		{"mail_stage_hist", latency.Week, loc}, {"mail_stage_hist", latency.Month, loc},
	} {
		windows := map[time.Time]bool{}
		for _, m := range ms {
			s := l.level.Start(m, l.loc)
			if !l.level.Next(s, l.loc).After(settled) {
				windows[s] = true
			}
		}
		if len(windows) > 0 {
			out[l.name+" "+string(l.level)] = int64(len(windows))
		}
	}
	return out
}

// Only windows whose end passed an age between the last cycle and now are
// compared: a late event in a window that passed no age waits for the
// next one.
func TestCycleComparesAtAges(t *testing.T) {
	db := stacktest.InfluxDB(t, "mail")
	now := time.Now().UTC()
	m := now.Add(-25 * time.Minute).Truncate(time.Minute) // passed 20m a while ago, 40m not yet
	writeRaw(t, db, events(m, 9))
	r, err := reconcile.New(querier(db), reconcile.Options{RawDB: "mail", RollupDB: "mail_rollups"})
	require.NoError(t, err)
	st, err := r.Cycle(now.Add(-time.Minute), now)
	require.NoError(t, err)
	require.Zero(t, st.LateEvents, "the minute passed no age in the last minute")
	// The cycle in which its end passes 40 minutes finds it.
	later := m.Add(time.Minute + 40*time.Minute + time.Second)
	st, err = r.Cycle(later.Add(-2*time.Second), later)
	require.NoError(t, err)
	require.EqualValues(t, 9, st.LateEvents)
}

// Rebuild recomputes a range whatever its rollups hold.
func TestRebuild(t *testing.T) {
	db := stacktest.InfluxDB(t, "mail", "mail_rollups")
	m := time.Now().UTC().Add(-2 * time.Hour).Truncate(time.Minute)
	writeRaw(t, db, events(m, 12))
	// A wrong rollup, as a restored backup may hold.
	require.NoError(t, db.Write("mail_rollups", fmt.Sprintf("mail_counts,dc=dc1,direction=outbound,event=delivered,customer=c1,window=1m count=99 %d\n", m.UnixNano())))
	r, err := reconcile.New(querier(db), reconcile.Options{RawDB: "mail", RollupDB: "mail_rollups"})
	require.NoError(t, err)
	st, err := r.Rebuild(m.Add(-time.Hour), m.Add(time.Hour))
	require.NoError(t, err)
	require.EqualValues(t, 1, st.Recomputed["mail_counts 1m"], "the minutes that hold raw events")
	require.EqualValues(t, 12, sumOf(t, db, fmt.Sprintf(`SELECT sum("count") FROM "mail_counts" WHERE "window" = '1m' AND time >= %d`, m.UnixNano())))
	require.EqualValues(t, 12, sumOf(t, db, fmt.Sprintf(`SELECT sum("count") FROM "mail_counts" WHERE "window" = '1h' AND time >= %d AND time <= %d`, m.Add(-time.Hour).UnixNano(), m.UnixNano())))
}

func querier(db *stack.InfluxDB) influxq.Querier {
	return influxq.Querier{URL: db.URL, Timeout: time.Minute}
}
