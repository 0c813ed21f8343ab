// version: 1
// mail_spam as an InfluxDB 2.x / 3.x task: per `span` (a minute),
// distinct recipients and HELO names per sender, distinct sending IPs per
// sender domain, and the reject + bounce ratio (bad_ratio) with its volume
// per sender domain. sender, recipient, helo and sender_ip are string
// fields; Flux can pivot them into columns and group by their values, so
// no tag is needed. Written as measurement mail_spam (tags dc and sender or
// sender_domain) to `out_bucket`, in the DC: senders are in clear here. The
// thresholds and alerts are Kapacitor's (tickscripts/mail_spam.tick);
// with InfluxDB 2.x, add a check on these fields.
import "regexp"

option task = {name: "mail_spam", every: 1m, offset: 10s}

bucket = "mail"
out_bucket = "mail_spam"
out_org = "mail"
span = 1m
period = 1m

// BEGIN QUERY (run on InfluxDB 1.8's Flux engine by flux_test.go)
events = from(bucket: bucket)
    |> range(start: -period)
    |> filter(fn: (r) => r._measurement == "mail_event" and
        (r._field == "sender" or r._field == "recipient" or r._field == "helo" or r._field == "sender_ip"))
    |> pivot(rowKey: ["_time"], columnKey: ["_field"], valueColumn: "_value")
    |> map(fn: (r) => ({
        _time: r._time, dc: r.dc, event: r.event,
        sender: r.sender, recipient: r.recipient, helo: r.helo, sender_ip: r.sender_ip,
        sender_domain: regexp.replaceAllString(r: /^.*@/, v: r.sender, t: ""),
        // 1 for a rejected or bounced mail: its mean is the ratio
        _value: if r.event == "rejected" or r.event == "bounced" then 1.0 else 0.0,
    }))

signal = (tables=<-, by, name, fn) => tables
    |> group(columns: ["dc", by])
    |> window(every: span)
    |> fn()
    |> toFloat()
    |> duplicate(column: "_start", as: "_time")
    |> window(every: inf)
    |> set(key: "_field", value: name)
    |> set(key: "_measurement", value: "mail_spam")

distinctCount = (column) => (tables=<-) => tables |> distinct(column: column) |> count()

union(tables: [
    events |> signal(by: "sender", name: "distinct_recipients", fn: distinctCount(column: "recipient")),
    events |> signal(by: "sender", name: "distinct_helos", fn: distinctCount(column: "helo")),
    events |> signal(by: "sender_domain", name: "distinct_ips", fn: distinctCount(column: "sender_ip")),
    events |> signal(by: "sender_domain", name: "bad_ratio", fn: (tables=<-) => tables |> mean()),
    events |> signal(by: "sender_domain", name: "volume", fn: (tables=<-) => tables |> count()),
])
    |> drop(columns: ["_start", "_stop"])
// END QUERY
    |> to(bucket: out_bucket, org: out_org)
