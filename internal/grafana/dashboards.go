// Package grafana is mailtick's Grafana dashboards as code: they are
// built here with Grafana's Foundation SDK and written to
// grafana/dashboards (`mailtick-dev dashboards`), checked against the
// SDK's schema (Grafana's dashboard kind, strictly: no field the schema
// does not know), and every panel's queries run against a real InfluxDB
// (Run), with Grafana's variables and macros expanded as Grafana expands
// them.
package grafana

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/grafana/grafana-foundation-sdk/go/bargauge"
	"github.com/grafana/grafana-foundation-sdk/go/cog"
	"github.com/grafana/grafana-foundation-sdk/go/cog/variants"
	"github.com/grafana/grafana-foundation-sdk/go/common"
	"github.com/grafana/grafana-foundation-sdk/go/dashboard"
	"github.com/grafana/grafana-foundation-sdk/go/expr"
	"github.com/grafana/grafana-foundation-sdk/go/stat"
	"github.com/grafana/grafana-foundation-sdk/go/table"
	"github.com/grafana/grafana-foundation-sdk/go/timeseries"

	"github.com/mailtick/mailtick/internal/latency"
	"github.com/mailtick/mailtick/internal/sla"
)

// The data sources the dashboards name, as grafana/provisioning declares
// them: central's InfluxDB in InfluxQL and in Flux (the quantiles: InfluxQL
// cannot rank bucket counts), and a DC's InfluxDB, chosen on the DC
// dashboard by the variable dc_influxdb.
const (
	CentralUID     = "mailtick-central"
	CentralFluxUID = "mailtick-central-flux"
	DCVariable     = "dc_influxdb"
	exprUID        = "__expr__"
)

// SLAThresholds are the latencies the SLA dashboard shows the share
// within, as `mailtick sla --within` would.
var SLAThresholds = []time.Duration{time.Second, 5 * time.Second, time.Minute, 5 * time.Minute}

func ref(kind, uid string) common.DataSourceRef { return common.DataSourceRef{Type: &kind, Uid: &uid} }

var (
	central     = ref("influxdb", CentralUID)
	centralFlux = ref("influxdb", CentralFluxUID)
	dcSource    = ref("influxdb", "${"+DCVariable+"}")
	exprSource  = ref(exprUID, exprUID)
)

// panel is one panel, before the SDK builds it.
type panel struct {
	kind    string // timeseries, table, stat or bargauge
	title   string
	desc    string
	unit    string
	source  common.DataSourceRef
	queries []InfluxQuery
	maths   [][2]string // refId, expression (Grafana's math expressions)
	w, h    uint32
}

// MaxDataPoints is every panel's: Grafana's $__interval is the range over
// it, rounded (otherwise the panel's width in pixels decides).
const MaxDataPoints = 1000

func (p panel) build() cog.Builder[dashboard.Panel] {
	w, h := p.w, p.h
	if w == 0 {
		w = 12
	}
	if h == 0 {
		h = 8
	}
	var b cog.Builder[dashboard.Panel]
	targets := func(add func(cog.Builder[variants.Dataquery])) {
		for _, q := range p.queries {
			q.Datasource = &p.source
			add(q)
		}
		for _, m := range p.maths {
			add(expr.NewExprBuilder().TypeMath(expr.NewTypeMathBuilder().RefId(m[0]).Expression(m[1]).Datasource(exprSource)))
		}
	}
	switch p.kind {
	case "timeseries":
		pb := timeseries.NewPanelBuilder().Title(p.title).Description(p.desc).Datasource(p.source).Unit(p.unit).Span(w).Height(h).MaxDataPoints(MaxDataPoints)
		targets(func(t cog.Builder[variants.Dataquery]) { pb.WithTarget(t) })
		b = pb
	case "table":
		// The builder leaves the footer's reducer null, which the
		// schema requires: Grafana's own default.
		pb := table.NewPanelBuilder().Title(p.title).Description(p.desc).Datasource(p.source).Unit(p.unit).Span(w).Height(h).MaxDataPoints(MaxDataPoints).
			Footer(common.NewTableFooterOptionsBuilder().Show(false).Reducer([]string{"sum"}))
		targets(func(t cog.Builder[variants.Dataquery]) { pb.WithTarget(t) })
		b = pb
	case "stat":
		pb := stat.NewPanelBuilder().Title(p.title).Description(p.desc).Datasource(p.source).Unit(p.unit).Span(w).Height(h).MaxDataPoints(MaxDataPoints)
		targets(func(t cog.Builder[variants.Dataquery]) { pb.WithTarget(t) })
		b = pb
	case "bargauge":
		pb := bargauge.NewPanelBuilder().Title(p.title).Description(p.desc).Datasource(p.source).Unit(p.unit).Span(w).Height(h).MaxDataPoints(MaxDataPoints)
		targets(func(t cog.Builder[variants.Dataquery]) { pb.WithTarget(t) })
		b = pb
	default:
		panic("grafana: unknown panel kind " + p.kind)
	}
	return b
}

// influxQL is a raw InfluxQL target.
func influxQL(refID, query, alias string, table bool) InfluxQuery {
	format := "time_series"
	if table {
		format = "table"
	}
	return InfluxQuery{RefId: refID, Query: query, RawQuery: true, ResultFormat: format, Alias: alias}
}

// hidden is a target that only feeds an expression.
func hidden(q InfluxQuery) InfluxQuery { q.Hide = true; return q }

// variable kinds of the dashboards.
func tagVariable(name, label, measurement string) cog.Builder[dashboard.VariableModel] {
	q := fmt.Sprintf(`SHOW TAG VALUES FROM %q WITH KEY = %q`, measurement, name)
	all := "$__all"
	return dashboard.NewQueryVariableBuilder(name).Label(label).Datasource(central).
		Query(dashboard.StringOrMap{String: &q}).Definition(q).
		Multi(true).IncludeAll(true).Refresh(dashboard.VariableRefreshOnDashboardLoad).
		Current(dashboard.VariableOption{Text: dashboard.StringOrArrayOfString{ArrayOfString: []string{"All"}},
			Value: dashboard.StringOrArrayOfString{ArrayOfString: []string{all}}})
}

// levelVariable chooses the rollup level the panels read: levels[0] is
// the default.
func levelVariable(desc string, levels ...string) cog.Builder[dashboard.VariableModel] {
	values := strings.Join(levels, ",")
	return dashboard.NewCustomVariableBuilder("level").Label("rollup level").Description(desc).
		Values(dashboard.StringOrMap{String: &values}).
		Current(dashboard.VariableOption{Text: dashboard.StringOrArrayOfString{String: &levels[0]},
			Value: dashboard.StringOrArrayOfString{String: &levels[0]}})
}

// board is one dashboard.
type board struct {
	file, uid, title, desc string
	vars                   []cog.Builder[dashboard.VariableModel]
	panels                 []panel
}

// Files are the dashboards as grafana/dashboards holds them, by file name.
func Files() (map[string][]byte, error) {
	register()
	out := map[string][]byte{}
	for _, b := range boards() {
		db := dashboard.NewDashboardBuilder(b.title).Uid(b.uid).Description(b.desc).
			Tags([]string{"mailtick"}).Editable().Refresh("1m").Time("now-24h", "now").Timezone("utc")
		for _, v := range b.vars {
			db.WithVariable(v)
		}
		for _, p := range b.panels {
			db.WithPanel(p.build())
		}
		d, err := db.Build()
		if err != nil {
			return nil, fmt.Errorf("dashboard %s: %w", b.uid, err)
		}
		var buf bytes.Buffer
		enc := json.NewEncoder(&buf)
		enc.SetEscapeHTML(false) // the queries' < and > as they are
		enc.SetIndent("", "  ")
		if err := enc.Encode(d); err != nil {
			return nil, fmt.Errorf("dashboard %s: %w", b.uid, err)
		}
		out[b.file] = buf.Bytes()
	}
	return out, nil
}

// filter is the WHERE of a central panel: the level and the chosen DCs
// and directions.
const filter = `"window" = '$level' AND "dc" =~ /^${dc:regex}$/ AND "direction" =~ /^${direction:regex}$/ AND $timeFilter`

func boards() []board {
	dcVars := func(measurement string) []cog.Builder[dashboard.VariableModel] {
		return []cog.Builder[dashboard.VariableModel]{tagVariable("dc", "DC", measurement), tagVariable("direction", "direction", measurement)}
	}
	countLevels := "The rollup windows the panels sum: 1m for the last hours, 1h for days, 1d for months (a window counts when it starts in the range)."
	return []board{slaBoard(dcVars), trafficBoard(dcVars, countLevels), deliverabilityBoard(dcVars, countLevels), spamBoard(), dcBoard()}
}

func slaBoard(dcVars func(string) []cog.Builder[dashboard.VariableModel]) board {
	b := board{file: "mailtick-sla.json", uid: "mailtick-sla", title: "mailtick: latency SLA",
		desc: "Latency quantiles and SLA shares over the dashboard's range, from central's mergeable histograms (mail_latency_hist), as `mailtick sla` answers them.",
		vars: append(dcVars("mail_latency_hist"), levelVariable("The histogram windows the panels merge: a window counts when it starts in the range (1mo with a calendar month's range is `mailtick sla <month>`).", "1d", "1m", "1h", "1w", "1mo"))}
	b.panels = append(b.panels, panel{kind: "table", title: "Latency quantiles over the range (ms)", unit: "ms", source: centralFlux, w: 24,
		desc:    "Nearest-rank quantiles of the merged histogram buckets (each within 1% of the exact latency), per DC and direction: Flux, since InfluxQL cannot rank bucket counts.",
		queries: []InfluxQuery{{RefId: "Q", Query: FluxQuantiles("mail_latency_hist", []string{"dc", "direction"}, "")}}})

	total := fmt.Sprintf(`SELECT sum("count") FROM "mail_latency_hist" WHERE %s GROUP BY "dc", "direction"`, filter)
	share := panel{kind: "bargauge", title: "Share of messages within the SLA thresholds over the range", unit: "percent", source: central, w: 24,
		desc:    "Messages whose histogram bucket stands for at most the threshold, as `mailtick sla --within` counts them, per DC and direction.",
		queries: []InfluxQuery{hidden(influxQL("T", total, "", false))}}
	for i, d := range SLAThresholds {
		within := fmt.Sprintf(`SELECT sum("count") FROM "mail_latency_hist" WHERE "bucket" =~ /%s/ AND %s GROUP BY "dc", "direction"`,
			latency.WithinTagRegexp(float64(d.Milliseconds())), filter)
		id := fmt.Sprintf("W%d", i)
		share.queries = append(share.queries, hidden(influxQL(id, within, "", false)))
		share.maths = append(share.maths, [2]string{"within " + ShortDuration(d), fmt.Sprintf("$%s / $T * 100", id)})
	}
	b.panels = append(b.panels, share)

	overTime := `SELECT sum("count") FROM "mail_latency_hist" WHERE %s%s GROUP BY time($__interval), "dc", "direction" fill(%s)`
	b.panels = append(b.panels, panel{kind: "timeseries", title: "Share within 1 s over time", unit: "percent", source: central,
		desc: "Per interval, from the histograms of the chosen level.",
		queries: []InfluxQuery{hidden(influxQL("T", fmt.Sprintf(overTime, "", filter, "none"), "", false)),
			hidden(influxQL("W", fmt.Sprintf(overTime, fmt.Sprintf(`"bucket" =~ /%s/ AND `, latency.WithinTagRegexp(1000)), filter, "0"), "", false))},
		maths: [][2]string{{"within 1s", "$W / $T * 100"}}})

	b.panels = append(b.panels, panel{kind: "timeseries", title: "Worst minute's p50 and p99 per interval (ms)", unit: "ms", source: central,
		desc: "mail_latency: each minute's own quantiles (exact, from the raw events); the largest per interval.",
		queries: []InfluxQuery{influxQL("A", `SELECT max("p50") AS "p50", max("p99") AS "p99" FROM "mail_latency" WHERE "window" = '1m' AND "dc" =~ /^${dc:regex}$/ AND "direction" =~ /^${direction:regex}$/ AND $timeFilter GROUP BY time($__interval), "dc", "direction" fill(none)`,
			"$tag_dc $tag_direction $col", false)}})

	b.panels = append(b.panels, panel{kind: "table", title: "Where the time goes: Postfix's delays by stage over the range (ms)", unit: "ms", source: centralFlux, w: 24,
		desc:    "Postfix's delays=a/b/c/d (before the queue manager, in it, connection setup, transmission) from mail_stage_hist, as `mailtick sla --by stage`.",
		queries: []InfluxQuery{{RefId: "Q", Query: FluxQuantiles("mail_stage_hist", []string{"dc", "stage"}, "")}}})
	return b
}

func trafficBoard(dcVars func(string) []cog.Builder[dashboard.VariableModel], levels string) board {
	b := board{file: "mailtick-traffic.json", uid: "mailtick-traffic", title: "mailtick: mail volumes",
		desc: "Events counted centrally (mail_counts) by DC, direction and event.",
		vars: append(dcVars("mail_counts"), levelVariable(levels, "1h", "1m", "1d"))}
	sum := `SELECT sum("count") FROM "mail_counts" WHERE ` + filter
	b.panels = append(b.panels,
		panel{kind: "stat", title: "Events over the range", unit: "short", source: central, w: 6,
			queries: []InfluxQuery{influxQL("A", sum, "events", false)}},
		panel{kind: "bargauge", title: "Events by event over the range", unit: "short", source: central, w: 18,
			queries: []InfluxQuery{influxQL("A", sum+` GROUP BY "event"`, "$tag_event", false)}})
	for _, by := range []string{"dc", "direction", "event"} {
		b.panels = append(b.panels, panel{kind: "timeseries", title: "Events by " + by, unit: "short", source: central, w: 8,
			queries: []InfluxQuery{influxQL("A", fmt.Sprintf(`%s GROUP BY time($__interval), %q fill(none)`, sum, by), "$tag_"+by, false)}})
	}
	b.panels = append(b.panels, panel{kind: "table", title: "Top customers by events over the range", unit: "short", source: central, w: 24,
		queries: []InfluxQuery{influxQL("A", fmt.Sprintf(`SELECT top("events", "customer", 20) AS "events" FROM (SELECT sum("count") AS "events" FROM "mail_counts" WHERE %s GROUP BY "customer")`, filter), "", true)}})
	return b
}

func deliverabilityBoard(dcVars func(string) []cog.Builder[dashboard.VariableModel], levels string) board {
	b := board{file: "mailtick-deliverability.json", uid: "mailtick-deliverability", title: "mailtick: deliverability",
		desc: "Why mail did not arrive, and where it went, from central's mail_deliv_dc (by DC) and mail_deliv (by customer), as `mailtick deliverability` answers.",
		vars: append(dcVars("mail_deliv_dc"), levelVariable(levels, "1h", "1m", "1d"))}
	events := func(measurement, which, by string) string {
		return fmt.Sprintf(`SELECT sum("count") FROM %q WHERE "event" =~ /^(%s)$/ AND %s GROUP BY %s`, measurement, which, filter, by)
	}
	const sent, bounced = "delivered|bounced|expired", "bounced|expired"
	b.panels = append(b.panels,
		panel{kind: "bargauge", title: "Bounce rate by mailbox provider over the range", unit: "percent", source: central,
			desc:    "Bounced and expired of the mail that reached an end (delivered, bounced, expired), as `mailtick deliverability --by rcpt_provider`.",
			queries: []InfluxQuery{hidden(influxQL("S", events("mail_deliv_dc", sent, `"rcpt_provider"`), "", false)), hidden(influxQL("B", events("mail_deliv_dc", bounced, `"rcpt_provider"`), "", false))},
			maths:   [][2]string{{"bounce rate", "$B / $S * 100"}}},
		panel{kind: "bargauge", title: "Why mail did not arrive: events by reason over the range", unit: "short", source: central,
			queries: []InfluxQuery{influxQL("A", fmt.Sprintf(`SELECT sum("count") FROM "mail_deliv_dc" WHERE "reason" != '' AND %s GROUP BY "reason"`, filter), "$tag_reason", false)}},
		panel{kind: "timeseries", title: "Bounce rate by mailbox provider over time", unit: "percent", source: central, w: 24,
			queries: []InfluxQuery{hidden(influxQL("S", events("mail_deliv_dc", sent, `time($__interval), "rcpt_provider" fill(none)`), "", false)),
				hidden(influxQL("B", events("mail_deliv_dc", bounced, `time($__interval), "rcpt_provider" fill(0)`), "", false))},
			maths: [][2]string{{"bounce rate", "$B / $S * 100"}}},
		panel{kind: "table", title: "Customers with the most bounces over the range", unit: "short", source: central, w: 24,
			queries: []InfluxQuery{influxQL("A", fmt.Sprintf(`SELECT top("bounced", "customer", 20) AS "bounced" FROM (SELECT sum("count") AS "bounced" FROM "mail_deliv" WHERE "event" =~ /^(%s)$/ AND %s GROUP BY "customer")`, bounced, filter), "", true)}})
	return b
}

func spamBoard() board {
	b := board{file: "mailtick-spam.json", uid: "mailtick-spam", title: "mailtick: spam signals",
		desc: "Per sender and minute (mail_spam, senders as pseudonyms): distinct recipients, HELO names and client addresses, the share of bad outcomes.",
		vars: []cog.Builder[dashboard.VariableModel]{tagVariable("dc", "DC", "mail_spam")}}
	where := `"dc" =~ /^${dc:regex}$/ AND $timeFilter`
	b.panels = append(b.panels,
		panel{kind: "timeseries", title: "Most distinct recipients of one sender in a minute", unit: "short", source: central,
			queries: []InfluxQuery{influxQL("A", `SELECT max("distinct_recipients") FROM "mail_spam" WHERE `+where+` GROUP BY time($__interval), "dc" fill(none)`, "$tag_dc", false)}},
		panel{kind: "table", title: "Top senders by distinct recipients in a minute", unit: "short", source: central,
			queries: []InfluxQuery{influxQL("A", `SELECT top("distinct_recipients", "sender", 20) AS "distinct_recipients", "distinct_helos", "distinct_ips", "bad_ratio", "volume" FROM "mail_spam" WHERE `+where, "", true)}})
	return b
}

func dcBoard() board {
	b := board{file: "mailtick-dc.json", uid: "mailtick-dc", title: "mailtick: a DC (abuse, agent health)",
		desc: "One DC's InfluxDB: the abuse and security signals of its MTAs (never sent central: they hold addresses) and its agent's own metrics.",
		vars: []cog.Builder[dashboard.VariableModel]{dashboard.NewDatasourceVariableBuilder(DCVariable).Label("DC").Type("influxdb").Regex("/mailtick-dc/")}}
	q := func(refID, query, alias string) []InfluxQuery {
		return []InfluxQuery{influxQL(refID, query, alias, false)}
	}
	rate := func(measurement, fields string) string {
		var sel []string
		for _, f := range strings.Split(fields, ",") {
			sel = append(sel, fmt.Sprintf(`non_negative_derivative(max(%q), 1s) AS %q`, f, f))
		}
		return fmt.Sprintf(`SELECT %s FROM "telegraf".."%s" WHERE $timeFilter GROUP BY time($__interval), "host" fill(none)`, strings.Join(sel, ", "), measurement)
	}
	gauge := func(measurement, fields, by string) string {
		var sel []string
		for _, f := range strings.Split(fields, ",") {
			sel = append(sel, fmt.Sprintf(`max(%q) AS %q`, f, f))
		}
		return fmt.Sprintf(`SELECT %s FROM "telegraf".."%s" WHERE $timeFilter GROUP BY time($__interval), %s fill(none)`, strings.Join(sel, ", "), measurement, by)
	}
	b.panels = append(b.panels,
		panel{kind: "timeseries", title: "Security signals of the MTAs, per interval", unit: "short", source: dcSource,
			desc:    "mail_security (inputs.maillog): SASL failures and logins, postscreen verdicts, TLS sessions, lost connections.",
			queries: q("A", `SELECT sum("events") FROM "mail".."mail_security" WHERE $timeFilter GROUP BY time($__interval), "signal" fill(none)`, "$tag_signal")},
		panel{kind: "table", title: "Client networks with the most SASL failures over the range", unit: "short", source: dcSource,
			queries: []InfluxQuery{influxQL("A", `SELECT top("failures", "client_net", 20) AS "failures" FROM (SELECT sum("events") AS "failures" FROM "mail".."mail_security" WHERE "signal" = 'sasl_failure' AND $timeFilter GROUP BY "client_net")`, "", true)}},
		panel{kind: "timeseries", title: "Abuse counts the alerts judge (mail_abuse.tick)", unit: "short", source: dcSource, w: 24,
			desc:    "Failures per client network (10m), distinct addresses and logins per SASL user (1h), from the DC's mail_rollups.",
			queries: q("A", `SELECT max("n") FROM "mail_rollups".."mail_abuse" WHERE $timeFilter GROUP BY time($__interval), "abuse" fill(none)`, "$tag_abuse")},
		panel{kind: "timeseries", title: "NSQ messages received and dead-lettered per second", unit: "short", source: dcSource,
			queries: q("A", rate("internal_mailevents", "messages_received,events_dead_lettered"), "$col")},
		panel{kind: "timeseries", title: "Event time lag of NSQ events", unit: "short", source: dcSource,
			desc:    "Events per second by how far behind their own time they arrived (inputs.mailevents' lag classes).",
			queries: q("A", `SELECT non_negative_derivative(max("events"), 1s) FROM "telegraf".."internal_mailevents_lag" WHERE $timeFilter GROUP BY time($__interval), "lag" fill(none)`, "$tag_lag")},
		panel{kind: "timeseries", title: "Dead letters by reason per second", unit: "short", source: dcSource,
			queries: q("A", `SELECT non_negative_derivative(max("events"), 1s) FROM "telegraf".."internal_mailevents_errors" WHERE $timeFilter GROUP BY time($__interval), "reason" fill(none)`, "$tag_reason")},
		panel{kind: "timeseries", title: "MTA log lines read and events emitted per second", unit: "short", source: dcSource,
			queries: q("A", rate("internal_maillog", "lines_read,events_emitted"), "$col")},
		panel{kind: "timeseries", title: "Spool to central: bytes waiting", unit: "bytes", source: dcSource,
			queries: q("A", gauge("internal_rollupfwd", "spool_bytes", `"url"`), "$col")},
		panel{kind: "timeseries", title: "Spool to central: oldest unsent point's age", unit: "ns", source: dcSource,
			queries: q("A", gauge("internal_rollupfwd", "oldest_unsent_age_ns", `"url"`), "$col")},
		panel{kind: "timeseries", title: "Points sent central and retries per second", unit: "short", source: dcSource,
			queries: q("A", rate("internal_rollupfwd", "points_sent,retries"), "$col")},
		panel{kind: "timeseries", title: "Agent: metrics dropped and buffered by output", unit: "short", source: dcSource,
			queries: q("A", gauge("internal_write", "buffer_size,metrics_dropped", `"output"`), "$tag_output $col")})
	return b
}

// FluxQuantiles is the Flux query of a quantile table: measurement's
// histogram buckets in the range, summed per by and bucket, ranked, and
// the nearest-rank quantiles of `mailtick sla` with the count, as
// internal/latency computes them (what a bucket stands for: 2γ^i/(γ+1)).
// extra is more of the filter, in Flux.
func FluxQuantiles(measurement string, by []string, extra string) string {
	cols := `"` + strings.Join(by, `", "`) + `"`
	var keep, qs []string
	for _, c := range by {
		keep = append(keep, fmt.Sprintf("%s: r.%s", c, c))
	}
	for _, q := range sla.Quantiles {
		qs = append(qs, fmt.Sprintf("quantile(q: %v, name: %q)", q, sla.QuantileName(q)))
	}
	return fmt.Sprintf(`import "math"

h = from(bucket: v.defaultBucket)
  |> range(start: v.timeRangeStart, stop: v.timeRangeStop)
  |> filter(fn: (r) => r._measurement == %q and r._field == "count" and r.window == "${level}" and r.dc =~ /^${dc:regex}$/ and r.direction =~ /^${direction:regex}$/%s)
  |> group(columns: [%s, "bucket"])
  |> sum()
  |> map(fn: (r) => ({r with i: if r["bucket"] == %q then %d else int(v: r["bucket"])}))
  |> group(columns: [%s])
  |> sort(columns: ["i"])
  |> cumulativeSum()
n = h |> last()
quantile = (q, name) => join(tables: {h: h, n: n}, on: [%s])
  |> filter(fn: (r) => float(v: r._value_h) >= math.ceil(x: q * float(v: r._value_n)))
  |> limit(n: 1)
  |> map(fn: (r) => ({%s, _field: name, _value: if r.i_h == %d then 0.0 else 2.0 * math.pow(x: %v, y: float(v: r.i_h)) / %v}))
union(tables: [
    n |> map(fn: (r) => ({%s, _field: "count", _value: float(v: r._value)})),
    %s])
  |> group(columns: [%s])
  |> pivot(rowKey: [%s], columnKey: ["_field"], valueColumn: "_value")
  |> group()
`, measurement, extra, cols, latency.ZeroTag, zeroBucket, cols, cols, strings.Join(keep, ", "), zeroBucket,
		latency.Gamma, latency.Gamma+1, strings.Join(keep, ", "), strings.Join(qs, ", "), cols, cols)
}

// zeroBucket ranks the bucket "zero" below every other.
const zeroBucket = -2147483648

// ShortDuration names a threshold in the SLA panels: 1s, 5s, 1m.
func ShortDuration(d time.Duration) string {
	if d%time.Minute == 0 {
		return fmt.Sprintf("%dm", d/time.Minute)
	}
	return fmt.Sprintf("%ds", d/time.Second)
}
