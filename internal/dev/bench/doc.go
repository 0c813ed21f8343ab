// Package bench is `mailtick-dev bench` (make bench): the project's
// measured figures, each against the stock Telegraf path where there is
// one, on the same input in the same run, on real servers on loopback:
//
//   - inputs.mailevents against nsq_consumer + json_v2, draining the same
//     NSQ events into discard (alternating pairs, at several
//     metric_batch_size values) and through the whole shipped
//     telegraf.conf into InfluxDB, and the memory of events held in
//     flight (Run);
//   - outputs.rollupfwd against outputs.influxdb with its disk buffer
//     through a central outage and a SIGKILL (Outage);
//   - inputs.mailwebhooks against http_listener_v2 on provider-shaped
//     webhook requests (Webhooks);
//   - kapacitord's memory under mail_spam.tick, version 2 beside version
//     1, which counted with Kapacitor's own nodes (SpamMemory);
//   - the latency rollups' queries and storage, percentiles from raw
//     events against the histogram levels and mailtick sla (SLACost);
//   - the reconciler's (inputs.mailrollups) queries and time per cycle at
//     given event rates (ReconcileCost).
//
// The Go benchmarks of the parser, piiscrub, rollupfwd, internal/pii and
// plugins/common/maillog run beside it in make bench. Where each figure is
// published: the Performance section of its plugin's README, or of
// tickscripts/README.md for the Kapacitor tasks and their UDFs.
package bench
