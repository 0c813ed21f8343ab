package mailevents

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/mailtick/mailtick/plugins/common/mailevent"

	"github.com/stretchr/testify/require"

	"github.com/mailtick/mailtick/internal/gen"
	"github.com/mailtick/mailtick/internal/testutil/stack"
	"github.com/mailtick/mailtick/internal/testutil/stacktest"
)

// These tests run the real agent (bin/telegraf) between a real nsqd and a
// real influxd.

// generate sends cfg's messages to nsqd and returns them.
func generate(nsqd *stack.NSQD, cfg gen.Config, rate float64) ([]gen.Message, gen.Summary, error) {
	var msgs []gen.Message
	sum, err := gen.Publish(context.Background(), nsqd.TCPAddr, "mail_events", cfg, rate, 200, func(m gen.Message) { msgs = append(msgs, m) })
	return msgs, sum, err
}

func publishGenerated(t *testing.T, nsqd *stack.NSQD, cfg gen.Config) ([]gen.Message, gen.Summary) {
	t.Helper()
	msgs, sum, err := generate(nsqd, cfg, 0)
	require.NoError(t, err)
	return msgs, sum
}

func countEvents(t *testing.T, db *stack.InfluxDB) int64 {
	t.Helper()
	n, err := db.Count("mail", "SELECT count(queue_id) FROM mail_event")
	if err != nil && !errors.Is(err, stack.ErrNoDatabase) {
		require.NoError(t, err)
	}
	return n
}

func TestPipelineIntegration(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test")
	}
	nsqd := stacktest.NSQD(t)
	influx := stacktest.InfluxDB(t)
	stacktest.Telegraf(t, ingestConfig(nsqd.TCPAddr, influx.URL, "dc1"))

	const n = 20000
	msgs, sum := publishGenerated(t, nsqd, gen.Config{Seed: 42, Count: n, Bad: 0.02})
	stored := int64(sum.ByKind[gen.Good] + sum.ByKind[gen.MissingTime])
	dead := int64(sum.ByKind[gen.Malformed] + sum.ByKind[gen.WrongType] + sum.ByKind[gen.Oversized])
	require.Positive(t, dead)

	require.Eventually(t, func() bool { return countEvents(t, influx) >= stored },
		60*time.Second, 250*time.Millisecond, "want %d points in InfluxDB", stored)
	require.Equal(t, stored, countEvents(t, influx), "every good event exactly once")

	// Types: strings stay strings, declared ints are integers.
	series, err := influx.Query("mail", "SHOW FIELD KEYS FROM mail_event")
	require.NoError(t, err)
	types := map[string]string{}
	for _, v := range series[0].Values {
		types[v[0].(string)] = v[1].(string)
	}
	require.Equal(t, map[string]string{
		"events": "integer", "message_id": "string", "queue_id": "string", "sender": "string", "recipient": "string",
		"sender_ip": "string", "helo": "string", "smtp_code": "integer", "smtp_status": "string",
		"smtp_response": "string", "latency_ms": "float", "size_bytes": "integer",
		"spam_score": "float", "attempt": "integer",
	}, types)

	// One event, read back: every value and the nanosecond timestamp.
	var probe gen.Message
	for _, m := range msgs {
		if m.Kind == gen.Good && m.Time.Nanosecond()%1000 != 0 {
			probe = m
			break
		}
	}
	series, err = influx.Query("mail", fmt.Sprintf(
		"SELECT dc, event, direction, mailer, customer, sender, recipient, sender_ip, smtp_response, smtp_code, latency_ms FROM mail_event WHERE queue_id = '%s'", probe.Event.QueueID))
	require.NoError(t, err)
	require.Len(t, series, 1)
	require.Len(t, series[0].Values, 1)
	row := series[0].Values[0]
	ev := probe.Event
	require.Equal(t, json.Number(fmt.Sprint(probe.Time.UnixNano())), row[0], "nanosecond timestamp")
	require.Equal(t, []any{"dc1", ev.Event, ev.Direction, ev.Mailer, ev.Customer, ev.Sender, ev.Recipient,
		ev.SenderIP, ev.SMTPResponse, json.Number(fmt.Sprint(ev.SMTPCode)), json.Number(fmt.Sprint(ev.LatencyMs))}, row[1:])

	// Bad messages are in the dead-letter topic, each with its reason.
	letters := stacktest.Consume(t, nsqd, "mail_events_dead", int(dead))
	require.Len(t, letters, int(dead))
	byReason := map[string]int{}
	for _, b := range letters {
		var dl DeadLetter
		require.NoError(t, json.Unmarshal(b, &dl))
		byReason[dl.Reason]++
	}
	require.Equal(t, map[string]int{
		mailevent.ReasonMalformed: sum.ByKind[gen.Malformed],
		mailevent.ReasonWrongType: sum.ByKind[gen.WrongType],
		mailevent.ReasonOversized: sum.ByKind[gen.Oversized],
	}, byReason)

	// The agent's self-metrics say the same.
	require.Eventually(t, func() bool {
		n, err := influx.Count("telegraf", "SELECT last(events_missing_time) FROM internal_mailevents")
		return err == nil && n == int64(sum.ByKind[gen.MissingTime])
	}, 20*time.Second, 250*time.Millisecond, "internal_mailevents.events_missing_time")
}

// TestKillRestartIntegration kills the agent mid-stream with SIGKILL and
// starts it again: every event must be in InfluxDB, and the only duplicates
// are redeliveries that overwrite the same point.
func TestKillRestartIntegration(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test")
	}
	nsqd := stacktest.NSQD(t)
	influx := stacktest.InfluxDB(t)
	agent := stacktest.Telegraf(t, ingestConfig(nsqd.TCPAddr, influx.URL, "dc1"))

	const n = 30000
	type result struct {
		sum gen.Summary
		err error
	}
	done := make(chan result, 1)
	go func() {
		_, sum, err := generate(nsqd, gen.Config{Seed: 9, Count: n}, 6000)
		done <- result{sum, err}
	}()
	require.Eventually(t, func() bool { return countEvents(t, influx) > 2000 },
		30*time.Second, 50*time.Millisecond, "the agent must be writing before the kill")
	require.NoError(t, agent.Kill())
	before := countEvents(t, influx)
	require.Less(t, before, int64(n), "the kill must land mid-stream")

	require.NoError(t, agent.Restart()) // the test's cleanup stops the live process
	res := <-done
	require.NoError(t, res.err)
	require.Equal(t, n, res.sum.ByKind[gen.Good])

	require.Eventually(t, func() bool { return countEvents(t, influx) >= n },
		90*time.Second, 250*time.Millisecond, "every event after the restart")
	require.Equal(t, int64(n), countEvents(t, influx), "exactly n distinct points")
	t.Logf("killed with %d of %d events written; all %d there after restart", before, n, n)
}

// ingestConfig is this plugin's own test config: inputs.mailevents from
// nsqd into the raw database of an InfluxDB, with the agent's
// self-metrics beside them, and a short message_timeout so that a killed
// agent's messages come back within the test. The demo, e2e and the soak
// run the shipped telegraf.conf (internal/dev/dc).
func ingestConfig(nsqdTCP, influxURL, dc string) string {
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
