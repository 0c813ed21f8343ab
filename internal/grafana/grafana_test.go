package grafana

import (
	"math"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/mailtick/mailtick/internal/latency"
)

const shipped = "../../grafana"

// TestShippedDashboardsAreGenerated: grafana/dashboards holds exactly
// what this package builds (`mailtick-dev dashboards` writes it).
func TestShippedDashboardsAreGenerated(t *testing.T) {
	files, err := Files()
	require.NoError(t, err)
	onDisk, err := filepath.Glob(filepath.Join(shipped, "dashboards", "*.json"))
	require.NoError(t, err)
	require.Len(t, onDisk, len(files), "grafana/dashboards has a file this package does not build")
	for name, want := range files {
		got, err := os.ReadFile(filepath.Join(shipped, "dashboards", name))
		require.NoError(t, err, "run mailtick-dev dashboards")
		require.Equal(t, string(want), string(got), "%s differs from what internal/grafana builds: run mailtick-dev dashboards", name)
	}
}

// TestShippedDashboardsMatchSchema: every shipped dashboard reads under
// Grafana's schema, strictly, has a uid, and every panel has queries the
// check can run, on data sources the provisioning declares.
func TestShippedDashboardsMatchSchema(t *testing.T) {
	boards, sources, err := Local(shipped, "http://central:8086", map[string]string{"dc1": "http://dc1:8086", "dc2": "http://dc2:8086"})
	require.NoError(t, err)
	require.Len(t, boards, 5)
	uids := map[string]bool{"${" + DCVariable + "}": true}
	for _, s := range sources {
		uids[s.UID] = true
	}
	require.Equal(t, map[string]bool{"${" + DCVariable + "}": true, CentralUID: true, CentralFluxUID: true, "mailtick-dc-dc1": true, "mailtick-dc-dc2": true}, uids)
	require.Len(t, sources, 4, "central's two once, a source per DC")
	for name, d := range boards {
		panels, err := Panels(d)
		require.NoError(t, err, name)
		require.NotEmpty(t, panels, name)
		for _, p := range panels {
			require.NotEmpty(t, p.Title, name)
			for _, q := range p.Queries {
				require.True(t, uids[*q.Datasource.Uid], "%s: %q: data source %s is not provisioned", name, p.Title, *q.Datasource.Uid)
				require.NotContains(t, q.Query, "$dc ", "%s: %q: a multi-valued variable needs :regex", name, p.Title)
			}
		}
		_, err = Variables(d)
		require.NoError(t, err, name)
	}
}

// TestSchemaRefuses: the check fails on what Grafana's schema does not
// have, each error naming where.
func TestSchemaRefuses(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join(shipped, "dashboards", "mailtick-traffic.json"))
	require.NoError(t, err)
	for _, c := range []struct{ name, from, to, err string }{
		{"an unknown dashboard field", `"uid": "mailtick-traffic",`, `"uid": "mailtick-traffic", "colour": "red",`, "colour"},
		{"a wrong type", `"schemaVersion": 42`, `"schemaVersion": "42"`, "schemaVersion"},
		{"an unknown target field", `"rawQuery": true,`, `"rawQuery": true, "database": "x",`, "database"},
		{"a target without a query", `"query": "SELECT sum(\"count\") FROM \"mail_counts\" WHERE`, `"query": "", "x": "SELECT sum(\"count\") FROM \"mail_counts\" WHERE`, "targets"},
		{"an unknown panel option", `"showHeader": true,`, `"showHeader": true, "zebra": true,`, "zebra"},
		{"no uid", `"uid": "mailtick-traffic",`, ``, "uid"},
	} {
		t.Run(c.name, func(t *testing.T) {
			require.Contains(t, string(raw), c.from)
			dir := t.TempDir()
			require.NoError(t, os.WriteFile(filepath.Join(dir, "d.json"), []byte(strings.Replace(string(raw), c.from, c.to, 1)), 0o644))
			_, err := Load(dir)
			require.Error(t, err)
			require.Contains(t, err.Error(), c.err)
		})
	}
}

// TestExpandVars: Grafana's variable syntaxes and its regex format.
func TestExpandVars(t *testing.T) {
	single := map[string]string{"level": "1h", "ds": "mailtick-dc-dc1"}
	multi := map[string][]string{"dc": {"dc1", "dc.2"}, "direction": {"out/bound"}}
	for in, want := range map[string]string{
		`"window" = '$level'`:                   `"window" = '1h'`,
		`"window" = '${level}'`:                 `"window" = '1h'`,
		`[[level]]`:                             `1h`,
		`"dc" =~ /^${dc:regex}$/`:               `"dc" =~ /^(dc1|dc\.2)$/`,
		`"direction" =~ /^${direction:regex}$/`: `"direction" =~ /^out\/bound$/`,
		`$dc`:                                   `<dc without :regex>`,
		`time($__interval) $timeFilter $other`:  `time($__interval) $timeFilter $other`,
	} {
		require.Equal(t, want, expandVars(in, single, multi, true), in)
	}
}

// TestMacros: $timeFilter, $__interval and the Flux macros as Grafana
// writes them.
func TestMacros(t *testing.T) {
	r := Runner{From: time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC), To: time.Date(2026, 12, 2, 0, 0, 0, 0, time.UTC)}
	for _, c := range []struct {
		min    string
		points float64
		want   time.Duration
	}{
		{"", 1000, time.Minute},           // 86.4 s: the nearest step
		{"", 0, time.Minute},              // unset: 1,000 here
		{"", 100, 15 * time.Minute},       // 864 s
		{"1h", 1000, time.Hour},           // the minimum
		{"10s", 100000, 10 * time.Second}, // a data source's timeInterval
		{"1mo", 1000, time.Minute},        // Grafana reads "1mo" as 1m
	} {
		iv, err := r.interval(c.min, c.points)
		require.NoError(t, err)
		require.Equal(t, c.want, iv, "%+v", c)
	}
	_, err := r.interval("hourly", 1000)
	require.Error(t, err)
	require.Equal(t, "WHERE time >= 1796083200000ms and time <= 1796169600000ms GROUP BY time(1h) 3600000",
		r.influxQLMacros("WHERE $timeFilter GROUP BY time($__interval) $__interval_ms", time.Hour))
	require.Equal(t, "time(7d)", r.influxQLMacros("time($__interval)", 7*24*time.Hour), "days, not weeks: gtime.FormatInterval")
	src := Source{Bucket: "mail_central/autogen", Organization: "-"}
	require.Equal(t, `from(bucket: "mail_central/autogen") |> range(start: 2026-12-01T00:00:00Z, stop: 2026-12-02T00:00:00Z) |> aggregateWindow(every: 1m0s) |> map(fn: (r) => r.dc) // "-"`,
		r.fluxMacros("from(bucket: v.defaultBucket) |> range(start: v.timeRangeStart, stop: v.timeRangeStop) |> aggregateWindow(every: v.windowPeriod) |> map(fn: (r) => r.dc) // v.organization", src, time.Minute))
	require.Equal(t, `"mail_central/autogen" r["bucket"]`, r.fluxMacros(`r.bucket r["bucket"]`, src, time.Minute),
		"Grafana replaces any word.bucket: a record's bucket column is r[\"bucket\"]")
	files, err := Files()
	require.NoError(t, err)
	require.NotContains(t, string(files["mailtick-sla.json"]), "r.bucket")
}

// TestVariableRegex: data-source variables' regexes as Grafana reads them.
func TestVariableRegex(t *testing.T) {
	for re, names := range map[string][2][]string{
		"/mailtick-dc/":  {{"mailtick-dc-fra1", "x-mailtick-dc"}, {"mailtick-central"}},
		"/MAILTICK-DC/i": {{"mailtick-dc-fra1"}, {"central"}},
		"mailtick-dc-.*": {{"mailtick-dc-fra1"}, {"x-mailtick-dc-fra1"}},
	} {
		r, err := grafanaRegex(re)
		require.NoError(t, err, re)
		for _, n := range names[0] {
			require.True(t, r.MatchString(n), "%s %s", re, n)
		}
		for _, n := range names[1] {
			require.False(t, r.MatchString(n), "%s %s", re, n)
		}
	}
}

// TestMath: $A / $B * k as Grafana joins series: equal labels, or one's
// holding the other's, or a lone series on each side; per time both have;
// a division by 0 kept as Inf; other forms refused.
func TestMath(t *testing.T) {
	frames := map[string][]Frame{
		"A": {{Labels: map[string]string{"dc": "dc1"}, Points: map[int64]float64{1: 5, 2: 0, 3: 1, 4: 7}},
			{Labels: map[string]string{"dc": "dc9"}, Points: map[int64]float64{1: 5}}},
		"B": {{Labels: map[string]string{"dc": "dc1"}, Points: map[int64]float64{1: 10, 2: 4, 3: 0}}},
		"L": {{Labels: map[string]string{"x": "1"}, Points: map[int64]float64{1: 3}}},
		"M": {{Labels: map[string]string{"y": "2"}, Points: map[int64]float64{1: 6}}},
	}
	out, err := math3("$A / $B * 100", frames)
	require.NoError(t, err)
	require.Len(t, out, 1, "dc9 has no partner")
	require.Equal(t, map[int64]float64{1: 50, 2: 0, 3: math.Inf(1)}, out[0].Points)
	out, err = math3("$L / $M * 100", frames)
	require.NoError(t, err)
	require.Equal(t, map[int64]float64{1: 50}, out[0].Points, "lone series pair whatever their labels")
	_, err = math3("$A + $B", frames)
	require.Error(t, err)
	_, err = math3("$A / $C * 100", frames)
	require.Error(t, err)
}

// TestLoadSources: the shipped provisioning with its variables, and
// files Grafana would refuse or the panels could not use.
func TestLoadSources(t *testing.T) {
	dir := t.TempDir()
	for body, want := range map[string]string{
		"apiVersion: 1\ndatasources:\n  - name: a\n    uid: a\n    type: influxdb\n    url: http://x\n    jsonData: {version: Flux}\n":                  "defaultBucket",
		"apiVersion: 1\ndatasources:\n  - name: a\n    uid: a\n    type: influxdb\n    url: http://x\n    jsonData: {dbName: m, timeInterval: often}\n": "timeInterval",
		"apiVersion: 1\ndatasources:\n  - name: a\n    uid: a\n    type: influxdb\n    url: http://x\n    jsonData: {}\n":                               "dbName",
		"apiVersion: 1\ndatasources:\n  - name: a\n    uid: a\n    type: prometheus\n    url: http://x\n":                                               "prometheus",
		"apiVersion: 1\ndatasources:\n  - name: a\n    uid: a\n    type: influxdb\n    url: http://x\n    colour: red\n":                                "colour",
		"apiVersion: 2\n": "apiVersion",
	} {
		f := filepath.Join(dir, "ds.yaml")
		require.NoError(t, os.WriteFile(f, []byte(body), 0o644))
		_, err := LoadSources(f, os.Getenv)
		require.ErrorContains(t, err, want, body)
	}
	env := map[string]string{"MAILTICK_CENTRAL_INFLUXDB_URL": "http://c:8086", "MAILTICK_DC": "fra1", "MAILTICK_DC_INFLUXDB_URL": "http://f:8086",
		"MAILTICK_CENTRAL_INFLUXDB_USER": "reader", "MAILTICK_CENTRAL_INFLUXDB_PASSWORD": "p$w"}
	sources, err := LoadSources(filepath.Join(shipped, "provisioning", "datasources", "mailtick.yaml"), func(k string) string { return env[k] })
	require.NoError(t, err)
	require.Equal(t, []Source{
		{UID: CentralUID, Name: CentralUID, URL: "http://c:8086", Database: "mail_central", User: "reader", Password: "p$w"},
		{UID: CentralFluxUID, Name: CentralFluxUID, URL: "http://c:8086", Flux: true, Bucket: "mail_central/autogen", Organization: "-", Token: "reader:p$w"},
		{UID: "mailtick-dc-fra1", Name: "mailtick-dc-fra1", URL: "http://f:8086", Database: "mail", TimeInterval: "10s"},
	}, sources)
}

// TestSLAThresholdQueries: each share query selects the buckets
// ShareWithin counts for its threshold.
func TestSLAThresholdQueries(t *testing.T) {
	files, err := Files()
	require.NoError(t, err)
	text := string(files["mailtick-sla.json"])
	for _, d := range SLAThresholds {
		re := latency.WithinTagRegexp(float64(d.Milliseconds()))
		require.Contains(t, text, `\"bucket\" =~ /`+re+`/`, "threshold %v", d)
		regexp.MustCompile(re)
	}
}
