// Package mailrollups is inputs.mailrollups: the reconciler of the DC's
// rollups (internal/reconcile) run by the agent every interval. The
// windows it recomputes go on the agent's central path (piiscrub,
// rollupfwd) as metrics, and to the DC database the next level reads; its
// self-metrics are internal_mailrollups.
package mailrollups

import (
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/influxdata/telegraf"
	"github.com/influxdata/telegraf/config"
	"github.com/influxdata/telegraf/plugins/inputs"
	"github.com/influxdata/telegraf/selfstat"

	"github.com/mailtick/mailtick/internal/influxq"
	"github.com/mailtick/mailtick/internal/reconcile"
)

//go:embed sample.conf
var sampleConfig string

// MailRollups runs one reconciliation cycle per Gather.
type MailRollups struct {
	URL            string            `toml:"url"`
	Username       config.Secret     `toml:"username"`
	Password       config.Secret     `toml:"password"`
	Timeout        config.Duration   `toml:"timeout"`
	RawDatabase    string            `toml:"raw_database"`
	RollupDatabase string            `toml:"rollup_database"`
	TZ             string            `toml:"tz"`
	GroupBy        []string          `toml:"group_by"`
	CheckAges      []config.Duration `toml:"check_ages"`
	FirstLookback  config.Duration   `toml:"first_lookback"`
	ID             string            `toml:"id"`
	Log            telegraf.Logger   `toml:"-"`

	opt  reconcile.Options
	last time.Time
	now  func() time.Time

	cycles, errs, queries, points, checked, late selfstat.Stat
	recomputed                                   map[string]selfstat.Stat
}

func (*MailRollups) SampleConfig() string { return sampleConfig }

// Init checks the options; errors name the option and the bad value.
func (m *MailRollups) Init() error {
	if m.URL == "" {
		return fmt.Errorf("%q must be set: the DC InfluxDB", "url")
	}
	loc, err := time.LoadLocation(m.TZ)
	if err != nil {
		return fmt.Errorf("invalid %q value %q: %w", "tz", m.TZ, err)
	}
	var ages []time.Duration
	for _, a := range m.CheckAges {
		ages = append(ages, time.Duration(a))
	}
	for i, a := range ages {
		if a <= 0 || (i > 0 && a <= ages[i-1]) {
			return fmt.Errorf("invalid %q value %v: want positive durations, ascending", "check_ages", ages)
		}
	}
	if m.FirstLookback < 0 {
		return fmt.Errorf("invalid %q value %s: must not be negative", "first_lookback", time.Duration(m.FirstLookback))
	}
	if m.ID == "" {
		if m.ID, err = os.Hostname(); err != nil {
			return fmt.Errorf("%q is not set and the hostname is unknown: %w", "id", err)
		}
	}
	m.opt = reconcile.Options{RawDB: m.RawDatabase, RollupDB: m.RollupDatabase, Loc: loc, GroupBy: m.GroupBy, Ages: ages}
	if _, err := reconcile.New(nil, m.opt); err != nil { // checks the options
		return err
	}
	stat := func(name string) selfstat.Stat {
		return selfstat.Register("mailrollups", name, map[string]string{"id": m.ID})
	}
	m.cycles, m.errs, m.queries = stat("cycles"), stat("errors"), stat("queries")
	m.points, m.checked, m.late = stat("points_read"), stat("windows_checked"), stat("late_events")
	m.recomputed = map[string]selfstat.Stat{}
	if m.now == nil {
		m.now = time.Now
	}
	return nil
}

func (m *MailRollups) querier() (influxq.Querier, error) {
	q := influxq.Querier{URL: m.URL, Timeout: time.Duration(m.Timeout)}
	for _, s := range []struct {
		secret config.Secret
		dst    *string
	}{{m.Username, &q.Username}, {m.Password, &q.Password}} {
		if s.secret.Empty() {
			continue
		}
		v, err := s.secret.Get()
		if err != nil {
			return q, err
		}
		*s.dst = v.String()
		v.Destroy()
	}
	return q, nil
}

// Gather runs one cycle: from the last cycle's time (saved in the rollup
// database) to now.
func (m *MailRollups) Gather(acc telegraf.Accumulator) error {
	db, err := m.querier()
	if err != nil {
		return err
	}
	opt := m.opt
	opt.Emit = func(p reconcile.Point) { acc.AddFields(p.Name, p.Fields, p.Tags, p.Time) }
	r, err := reconcile.New(db, opt)
	if err != nil {
		return err
	}
	now := m.now()
	if m.last.IsZero() {
		m.last = m.loadLast(db, now)
	}
	m.cycles.Incr(1)
	st, err := r.Cycle(m.last, now)
	m.queries.Incr(st.Queries)
	m.points.Incr(st.PointsRead)
	m.checked.Incr(st.WindowsChecked)
	m.late.Incr(st.LateEvents)
	for k, n := range st.Recomputed {
		s, ok := m.recomputed[k]
		if !ok {
			var name, lvl string
			fmt.Sscan(k, &name, &lvl)
			s = selfstat.Register("mailrollups", "windows_recomputed", map[string]string{"id": m.ID, "rollup": name, "window": lvl})
			m.recomputed[k] = s
		}
		s.Incr(n)
	}
	if err != nil {
		m.errs.Incr(1)
		return fmt.Errorf("reconciling the rollups (the next cycle resumes from %s): %w", m.last.Format(time.RFC3339), err)
	}
	if st.LateEvents > 0 {
		m.Log.Infof("%d late events rolled up; windows recomputed: %v", st.LateEvents, st.Recomputed)
	}
	m.last = now
	return m.saveLast(db, now)
}

// The last cycle's time, one point at time 0 per reconciler id.
func (m *MailRollups) loadLast(db influxq.Querier, now time.Time) time.Time {
	first := now.Add(-time.Duration(m.FirstLookback))
	s, err := db.Query(m.RollupDatabase, `SELECT "last" FROM "mail_reconcile" WHERE "id" = '`+escape(m.ID)+`'`)
	if err != nil || len(s) == 0 || len(s[0].Values) == 0 {
		if err != nil && !errors.Is(err, influxq.ErrNoDatabase) {
			m.Log.Warnf("reading the last cycle's time (starting from %s): %v", first.Format(time.RFC3339), err)
		}
		return first
	}
	row := s[0].Values[len(s[0].Values)-1]
	n, ok := row[len(row)-1].(json.Number)
	if !ok {
		return first
	}
	ns, err := n.Int64()
	if err != nil || ns > now.UnixNano() {
		return first
	}
	return time.Unix(0, ns)
}

func (m *MailRollups) saveLast(db influxq.Querier, now time.Time) error {
	return reconcile.Write(db, m.RollupDatabase, []reconcile.Point{{Name: "mail_reconcile",
		Tags: map[string]string{"id": m.ID}, Fields: map[string]any{"last": now.UnixNano()}, Time: time.Unix(0, 0)}})
}

func escape(s string) string {
	out := make([]byte, 0, len(s))
	for i := 0; i < len(s); i++ {
		if s[i] == '\'' || s[i] == '\\' {
			out = append(out, '\\')
		}
		out = append(out, s[i])
	}
	return string(out)
}

func init() {
	inputs.Add("mailrollups", func() telegraf.Input {
		var ages []config.Duration
		for _, a := range reconcile.DefaultAges {
			ages = append(ages, config.Duration(a))
		}
		return &MailRollups{
			Timeout:        config.Duration(time.Minute),
			RawDatabase:    "mail",
			RollupDatabase: "mail_rollups",
			TZ:             "UTC",
			GroupBy:        []string{"dc", "direction"},
			CheckAges:      ages,
			FirstLookback:  config.Duration(time.Hour),
		}
	})
}
