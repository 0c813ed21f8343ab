// version: 1
// mail_latency_hist as InfluxDB tasks: the mergeable latency summary of
// tickscripts/mail_latency_hist.tick, the same buckets (bucket
// ceil(log_1.02 latency_ms), "zero" for 0 or less; internal/latency) and
// the same levels, so `mailtick sla` reads either. level "1m" counts the
// raw events' latency_ms per minute; every other level adds up the counts
// of the level `below` (1m -> 1h -> 1d -> 1w, 1d -> 1mo), never raw
// events. One task per level: copy this file and set level, below, span,
// offset (4d for weeks, which then start on Monday) and period. Windows
// are UTC: InfluxDB 1.8's Flux (0.65) has no time zones; with Flux >= 0.134
// (InfluxDB 2.x) add `import "timezone"` and `option location =
// timezone.location(name: "Europe/Berlin")` and set tz to the same name.
// Every run recomputes the last `period`; the first window, which the
// range cuts, is left out. Written as measurement mail_latency_hist
// (field count; tags bucket, window, tz) to `out_bucket`.
import "math"
import "experimental"

option task = {name: "mail_latency_hist_1m", every: 1m, offset: 10s}

bucket = "mail"
out_bucket = "mail_rollups"
out_org = "mail"
level = "1m"
below = ""
span = 1m
offset = 0s
period = 5m
tz = "UTC"

// BEGIN QUERY (run on InfluxDB 1.8's Flux engine by flux_test.go)
lnGamma = math.log(x: 1.02)
start = experimental.subDuration(d: period, from: now())

raw = () => from(bucket: bucket)
    |> range(start: start)
    |> filter(fn: (r) => r._measurement == "mail_event" and r._field == "latency_ms")
    |> map(fn: (r) => ({r with
        bucket: if r._value > 0.0 then string(v: int(v: math.ceil(x: math.log(x: r._value) / lnGamma))) else "zero",
        _value: 1}))

lower = () => from(bucket: out_bucket)
    |> range(start: start)
    |> filter(fn: (r) => r._measurement == "mail_latency_hist" and r._field == "count" and r.window == below and r.tz == tz)

counts = if below == "" then raw() else lower()

counts
    |> group(columns: ["dc", "direction", "bucket"])
    |> window(every: span, offset: offset)
    |> sum()
    |> filter(fn: (r) => r._start > start)
    |> duplicate(column: "_start", as: "_time")
    |> window(every: inf)
    |> set(key: "_measurement", value: "mail_latency_hist")
    |> set(key: "_field", value: "count")
    |> set(key: "window", value: level)
    |> set(key: "tz", value: tz)
// END QUERY
    |> to(bucket: out_bucket, org: out_org)
