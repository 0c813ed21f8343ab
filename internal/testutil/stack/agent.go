package stack

import "fmt"

// IngestConfig is the agent config of the ingest path on a local stack:
// inputs.mailevents from nsqd into the raw database of an InfluxDB, with
// the agent's self-metrics beside them. Only the mailevents pipeline tests
// (plugins/inputs/mailevents/pipeline_test.go) run it; the demo, e2e and
// the soak run telegraf.conf at the repository root, the production
// config (internal/dev/dc).
func IngestConfig(nsqdTCP, influxURL, dc string) string {
	return fmt.Sprintf(`[agent]
  interval = "1s"
  flush_interval = "250ms"
  flush_jitter = "0s"
  metric_batch_size = 5000
  metric_buffer_limit = 200000
  omit_hostname = true

[[inputs.mailevents]]
  nsqd = [%q]
  topics = ["mail_events"]
  channel = "mailtick"
  ## What a killed agent held in flight comes back after this timeout.
  message_timeout = "5s"
  [inputs.mailevents.tags]
    dc = %q

[[inputs.internal]]
  collect_memstats = false
  [inputs.internal.tags]
    dc = %q

[[outputs.influxdb]]
  urls = [%q]
  database = "mail"
  namepass = ["mail_event"]

[[outputs.influxdb]]
  urls = [%q]
  database = "telegraf"
  namedrop = ["mail_event"]
`, nsqdTCP, dc, dc, influxURL, influxURL)
}
