// version: 1
// mail_latency as an InfluxDB 2.x / 3.x task: latency_ms quantiles (p50,
// p90, p95, p99; Flux's exact_selector: the value at rank ceil(q * n)),
// max, mean and count (as floats: a union needs one type) by dc and direction per `window`, recomputed over the
// last `period` on every run. Percentiles do not compose: every window is
// computed from raw points, one task per window. Written as measurement
// mail_latency, tagged window = `window_name`, to `out_bucket`.
option task = {name: "mail_latency_1m", every: 1m, offset: 10s}

bucket = "mail"
out_bucket = "mail_rollups"
out_org = "mail"
window = 1m
window_name = "1m"
period = 5m

// BEGIN QUERY (run on InfluxDB 1.8's Flux engine by internal/kapacitor/tasks tests)
latency = from(bucket: bucket)
    |> range(start: -period)
    |> filter(fn: (r) => r._measurement == "mail_event" and r._field == "latency_ms")
    |> group(columns: ["dc", "direction"])

stat = (name, fn) => latency
    |> aggregateWindow(every: window, fn: fn, timeSrc: "_start", createEmpty: false)
    |> toFloat()
    |> set(key: "_field", value: name)

q = (q) => (tables=<-, column) => tables |> quantile(q: q, method: "exact_selector", column: column)

union(tables: [
    stat(name: "p50", fn: q(q: 0.50)),
    stat(name: "p90", fn: q(q: 0.90)),
    stat(name: "p95", fn: q(q: 0.95)),
    stat(name: "p99", fn: q(q: 0.99)),
    stat(name: "max", fn: max),
    stat(name: "mean", fn: mean),
    stat(name: "count", fn: count),
])
    |> set(key: "_measurement", value: "mail_latency")
    |> set(key: "window", value: window_name)
// END QUERY
    |> to(bucket: out_bucket, org: out_org)
