package mailrollups

import (
	"fmt"
	"testing"
	"time"

	"github.com/influxdata/telegraf/config"
	"github.com/influxdata/telegraf/plugins/inputs"
	"github.com/influxdata/telegraf/testutil"
	"github.com/stretchr/testify/require"

	"github.com/mailtick/mailtick/internal/testutil/plugintest"
	"github.com/mailtick/mailtick/internal/testutil/stacktest"
)

func newPlugin(t *testing.T, url string) *MailRollups {
	t.Helper()
	m := inputs.Inputs["mailrollups"]().(*MailRollups)
	m.URL, m.ID, m.Log = url, "test", testutil.Logger{}
	return m
}

func TestSampleConfigLoads(t *testing.T) {
	plugintest.SampleConfigLoads(t, sampleConfig)
}

func TestInitErrorsNameTheOption(t *testing.T) {
	for _, tc := range []struct {
		set  func(*MailRollups)
		want string
	}{
		{func(m *MailRollups) { m.URL = "" }, `"url" must be set`},
		{func(m *MailRollups) { m.TZ = "Mars/Olympus" }, `invalid "tz" value "Mars/Olympus"`},
		{func(m *MailRollups) {
			m.CheckAges = []config.Duration{config.Duration(time.Hour), config.Duration(time.Minute)}
		}, `invalid "check_ages" value [1h0m0s 1m0s]`},
		{func(m *MailRollups) { m.CheckAges = []config.Duration{0} }, `invalid "check_ages" value [0s]`},
		{func(m *MailRollups) { m.FirstLookback = config.Duration(-time.Hour) }, `invalid "first_lookback" value -1h0m0s`},
	} {
		m := newPlugin(t, "http://127.0.0.1:1")
		tc.set(m)
		err := m.Init()
		require.ErrorContains(t, err, tc.want)
	}
	require.NoError(t, newPlugin(t, "http://127.0.0.1:1").Init(), "the defaults are valid")
}

// A cycle rolls up late events and emits them for central; the time of
// the last cycle is saved, and a new agent resumes from it: a late minute
// that passed an age while the agent was down is found on its first cycle.
func TestGatherResumesAfterARestart(t *testing.T) {
	db := stacktest.InfluxDB(t, "mail")
	now := time.Now().UTC()
	m := newPlugin(t, db.URL)
	require.NoError(t, m.Init())
	m.now = func() time.Time { return now }
	var acc testutil.Accumulator
	require.NoError(t, m.Gather(&acc), "the first cycle: nothing yet")
	require.Empty(t, acc.GetTelegrafMetrics())

	// While the agent is down, events land in a minute that passes its
	// 20-minute check 5 minutes later.
	minute := now.Add(-16 * time.Minute).Truncate(time.Minute)
	require.NoError(t, db.Write("mail", fmt.Sprintf("mail_event,dc=dc1,direction=outbound,event=delivered events=1i,latency_ms=12 %d\nmail_event,dc=dc1,direction=inbound,event=rejected events=1i %d\n",
		minute.UnixNano()+1, minute.UnixNano()+2)))

	later := newPlugin(t, db.URL)
	require.NoError(t, later.Init())
	later.now = func() time.Time { return now.Add(6 * time.Minute) }
	acc = testutil.Accumulator{}
	require.NoError(t, later.Gather(&acc))
	var counted float64
	for _, p := range acc.GetTelegrafMetrics() {
		if p.Name() == "mail_counts" && p.Tags()["window"] == "1m" {
			f, _ := p.GetField("count")
			counted += f.(float64)
		}
	}
	require.EqualValues(t, 2, counted, "the late minute's counts, for central")
	require.EqualValues(t, 2, later.late.Get())
	require.EqualValues(t, 2, later.cycles.Get(), "one cycle of each agent (selfstat shares a name and tags)")
}
