package bench

import "strings"

// StockJSONv2 configures Telegraf's json_v2 parser to keep all 13 keys of
// the docs/DESIGN.md event that are not tags, with their types, plus the four
// tags and the nanosecond time: what mailevents does with zero config.
// Headers are relative ([[json_v2]]); StockJSONv2For places them.
const StockJSONv2 = `
[[json_v2]]
  measurement_name = "mail_event"
  timestamp_path = "time"
  timestamp_format = "rfc3339nano"
  [[json_v2.tag]]
    path = "event"
  [[json_v2.tag]]
    path = "direction"
  [[json_v2.tag]]
    path = "mailer"
  [[json_v2.tag]]
    path = "customer"
  [[json_v2.field]]
    path = "message_id"
    type = "string"
  [[json_v2.field]]
    path = "queue_id"
    type = "string"
  [[json_v2.field]]
    path = "sender"
    type = "string"
  [[json_v2.field]]
    path = "recipient"
    type = "string"
  [[json_v2.field]]
    path = "sender_ip"
    type = "string"
  [[json_v2.field]]
    path = "helo"
    type = "string"
  [[json_v2.field]]
    path = "smtp_code"
    type = "int"
  [[json_v2.field]]
    path = "smtp_status"
    type = "string"
  [[json_v2.field]]
    path = "smtp_response"
    type = "string"
  [[json_v2.field]]
    path = "latency_ms"
    type = "float"
  [[json_v2.field]]
    path = "size_bytes"
    type = "int"
  [[json_v2.field]]
    path = "spam_score"
    type = "float"
  [[json_v2.field]]
    path = "attempt"
    type = "int"
`

// StockJSONv2For returns StockJSONv2 with its tables under plugin, e.g.
// "inputs.nsq_consumer".
func StockJSONv2For(plugin string) string {
	return strings.ReplaceAll(StockJSONv2, "[[json_v2", "[["+plugin+".json_v2")
}
