// version: 2
// mail_counts as an InfluxDB 2.x / 3.x task, for DCs whose database is
// InfluxDB 2 or 3: the number of mail events by dc, direction, event and
// customer per `window`, recomputed over the last `period` on every run so
// that late events are counted (a rollup point is overwritten in place).
// Written as `measurement`, field count, tagged window = `window_name`,
// to `out_bucket`. One task per window: copy this file with other
// parameters (1h: every 10m, period 2h; 1d: every 1h, period 2d).
// mail_deliv (tickscripts/mail_deliv.tick) is the same count by more
// tags: measurement = "mail_deliv", by = ["dc", "direction", "customer",
// "sender_domain", "event", "reason", "rcpt_provider"].
option task = {name: "mail_counts_1m", every: 1m, offset: 10s}

bucket = "mail"
out_bucket = "mail_rollups"
out_org = "mail"
window = 1m
window_name = "1m"
period = 5m
measurement = "mail_counts"
by = ["dc", "direction", "event", "customer"]

// BEGIN QUERY (run on InfluxDB 1.8's Flux engine by internal/kapacitor/tasks tests)
from(bucket: bucket)
    |> range(start: -period)
    |> filter(fn: (r) => r._measurement == "mail_event" and r._field == "events")
    |> group(columns: by)
    |> aggregateWindow(every: window, fn: count, timeSrc: "_start", createEmpty: false)
    |> set(key: "_measurement", value: measurement)
    |> set(key: "_field", value: "count")
    |> set(key: "window", value: window_name)
// END QUERY
    |> to(bucket: out_bucket, org: out_org)
