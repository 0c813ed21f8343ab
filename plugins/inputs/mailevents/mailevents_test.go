package mailevents

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/influxdata/telegraf"
	telegrafconfig "github.com/influxdata/telegraf/config"
	"github.com/influxdata/telegraf/testutil"
	"github.com/nsqio/go-nsq"
	"github.com/stretchr/testify/require"

	"github.com/mailtick/mailtick/internal/gen"
	"github.com/mailtick/mailtick/internal/testutil/plugintest"
	"github.com/mailtick/mailtick/internal/testutil/providertest"
	"github.com/mailtick/mailtick/internal/testutil/stack"
	"github.com/mailtick/mailtick/internal/testutil/stacktest"
	"github.com/mailtick/mailtick/plugins/common/agentconf"
	"github.com/mailtick/mailtick/plugins/common/mailevent"
)

// fullEvent is one generated good event with every key of the schema.
var fullEvent = func() string {
	g, err := gen.New(gen.Config{Seed: 1})
	if err != nil {
		panic(err)
	}
	return string(g.Next().Body)
}()

// The unit tests size for Telegraf's default batch, whatever configuration
// the machine has; TestSizeWindow sets others.
var testBatch = agentconf.Batch{Size: agentconf.DefaultBatchSize, Where: "Telegraf's default"}

func init() {
	agentBatch = func(telegraf.Logger) agentconf.Batch { return testBatch }
}

// Unset, the windows are sized from the largest metric_batch_size; set
// below twice it, they are kept, with a warning that names the option, the
// value and the batch.
func TestSizeWindow(t *testing.T) {
	defer func(b agentconf.Batch) { testBatch = b }(testBatch)
	for _, tt := range []struct {
		batch                 int
		inFlight, undelivered int
		wantIn, wantUndeliv   int
		warning               string
	}{
		{1000, 0, 0, 10000, 10000, ""},
		{5000, 0, 0, 10000, 10000, ""},
		{20000, 0, 0, 40000, 40000, ""},
		{20000, 50000, 0, 50000, 40000, ""},
		{5000, 2500, 0, 2500, 10000, `max_in_flight = 2500 is below twice the largest metric_batch_size (5000, [[outputs.file]] of t.conf)`},
		{5000, 0, 3000, 3000, 3000, `max_undelivered_messages = 3000 is below twice the largest metric_batch_size (5000, [[outputs.file]] of t.conf)`},
	} {
		testBatch = agentconf.Batch{Size: tt.batch, Where: "[[outputs.file]] of t.conf"}
		m := newPlugin()
		log := &testutil.CaptureLogger{}
		m.Log = log
		m.MaxInFlight, m.MaxUndeliveredMessages = tt.inFlight, tt.undelivered
		require.NoError(t, m.Init())
		require.Equal(t, tt.wantIn, m.MaxInFlight, "max_in_flight for batch %d", tt.batch)
		require.Equal(t, tt.wantUndeliv, m.MaxUndeliveredMessages, "max_undelivered_messages for batch %d", tt.batch)
		warnings := strings.Join(log.Warnings(), "\n")
		if tt.warning == "" {
			require.Empty(t, warnings)
		} else {
			require.Contains(t, warnings, tt.warning)
		}
	}
}

func newPlugin() *MailEvents {
	m := newMailEvents()
	m.Nsqd = []string{"127.0.0.1:4150"}
	m.Log = testutil.Logger{}
	return m
}

func TestInit(t *testing.T) {
	tests := []struct {
		name string
		edit func(*MailEvents)
		want string
	}{
		{"no address", func(m *MailEvents) { m.Nsqd = nil }, `either "nsqd" or "nsqlookupd"`},
		{"no topic", func(m *MailEvents) { m.Topics = nil }, `"topics" must name`},
		{"bad topic", func(m *MailEvents) { m.Topics = []string{"a b"} }, `invalid "topics" value "a b"`},
		{"bad channel", func(m *MailEvents) { m.Channel = "" }, `invalid "channel" value ""`},
		{"max_in_flight", func(m *MailEvents) { m.MaxInFlight = -1 }, `invalid "max_in_flight" value -1`},
		{"max_undelivered", func(m *MailEvents) { m.MaxUndeliveredMessages = -1 }, `invalid "max_undelivered_messages" value -1`},
		{"message_timeout", func(m *MailEvents) { m.MessageTimeout = 1 }, `invalid "message_timeout" value 1ns`},
		{"dead_letter", func(m *MailEvents) { m.DeadLetter = "drop" }, `invalid "dead_letter" value "drop"`},
		{"dead_letter_topic", func(m *MailEvents) { m.DeadLetterTopic = "x/y" }, `invalid "dead_letter_topic" value "x/y"`},
		{"field type", func(m *MailEvents) { m.FieldTypes = map[string]string{"a": "integer"} }, `invalid "field_types" value "integer" for key "a"`},
		{"time_format", func(m *MailEvents) { m.TimeFormat = "epoch" }, `invalid "time_format" value "epoch"`},
		{"missing_time", func(m *MailEvents) { m.MissingTime = "now" }, `invalid "missing_time" value "now"`},
		{"measurement", func(m *MailEvents) { m.Measurement = "" }, `invalid "measurement" value ""`},
		{"workers", func(m *MailEvents) { m.Workers = -2 }, `invalid "workers" value -2`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := newPlugin()
			tt.edit(m)
			require.ErrorContains(t, m.Init(), tt.want)
		})
	}
	require.NoError(t, newPlugin().Init(), "the defaults must be valid")
}

// startPlugin runs the plugin in-process against nsqd.
func startPlugin(t *testing.T, nsqd *stack.NSQD, edit func(*MailEvents)) (*MailEvents, *testutil.Accumulator) {
	t.Helper()
	m := newMailEvents()
	m.Nsqd = []string{nsqd.TCPAddr}
	m.Log = testutil.Logger{}
	m.RequeueDelay = telegrafconfig.Duration(10 * time.Millisecond)
	if edit != nil {
		edit(m)
	}
	require.NoError(t, m.Init())
	acc := &testutil.Accumulator{}
	require.NoError(t, m.Start(acc))
	t.Cleanup(m.Stop)
	return m, acc
}

func publish(t *testing.T, nsqd *stack.NSQD, topic string, bodies ...[]byte) {
	t.Helper()
	sink, err := gen.NewNSQSink(nsqd.TCPAddr, topic)
	require.NoError(t, err)
	defer sink.Close()
	require.NoError(t, sink.Write(bodies))
}

// numbered are n delivered events, each with its number in field a.
func numbered(n int) [][]byte {
	bodies := make([][]byte, n)
	for i := range bodies {
		bodies[i] = []byte(fmt.Sprintf(`{"time":%d,"event":"delivered","a":%d}`, 1700000000+i, i))
	}
	return bodies
}

// acceptUntilDrained accepts every metric the outputs are handed, as they
// come, until nsqd holds no message of topic's channel, queued or in
// flight; it returns how many were accepted.
func acceptUntilDrained(t *testing.T, acc *testutil.Accumulator, nsqd *stack.NSQD, topic string, within time.Duration) int {
	t.Helper()
	accepted := 0
	require.Eventually(t, func() bool {
		ms := acc.GetTelegrafMetrics()
		for _, m := range ms[accepted:] {
			m.Accept()
		}
		accepted = len(ms)
		ch := channelStats(t, nsqd, topic)
		return ch.Depth+ch.InFlight == 0
	}, within, 20*time.Millisecond, "every message finished")
	return accepted
}

func channelStats(t *testing.T, nsqd *stack.NSQD, topic string) stack.ChannelStats {
	t.Helper()
	st, err := nsqd.TopicStats(topic)
	require.NoError(t, err)
	ch, _ := st.Channel("mailtick")
	return ch
}

func TestAtLeastOnceIntegration(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test")
	}
	nsqd := stacktest.NSQD(t)
	publish(t, nsqd, "mail_events", []byte(fullEvent))
	_, acc := startPlugin(t, nsqd, nil)

	// An output refuses the metric: the message goes back to nsqd...
	acc.Wait(1)
	acc.GetTelegrafMetrics()[0].Reject()
	// ...and comes again; accepted now, it is finished.
	acc.Wait(2)
	second := acc.GetTelegrafMetrics()[1]
	var ev struct{ Sender string }
	require.NoError(t, json.Unmarshal([]byte(fullEvent), &ev))
	require.Equal(t, ev.Sender, second.Fields()["sender"], "the same event again")
	second.Accept()

	require.Eventually(t, func() bool {
		ch := channelStats(t, nsqd, "mail_events")
		return ch.MessageCount == 1 && ch.RequeueCount == 1 && ch.InFlight == 0 && ch.Depth == 0
	}, 10*time.Second, 20*time.Millisecond, "want the message requeued once, then finished")
}

func TestTouchWhileWaitingIntegration(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test")
	}
	nsqd := stacktest.NSQD(t)
	publish(t, nsqd, "mail_events", []byte(fullEvent))
	_, acc := startPlugin(t, nsqd, func(m *MailEvents) {
		m.MessageTimeout = telegrafconfig.Duration(time.Second)
	})
	acc.Wait(1)
	// The outputs take three message timeouts to write it: the plugin must
	// keep the message alive so nsqd does not hand it out again.
	require.Never(t, func() bool { return channelStats(t, nsqd, "mail_events").TimeoutCount > 0 },
		3*time.Second, 50*time.Millisecond, "nsqd timed the message out while it waited for the outputs")
	ch := channelStats(t, nsqd, "mail_events")
	require.Equal(t, int64(1), ch.InFlight)
	require.Equal(t, uint64(1), acc.NMetrics(), "the message must not be redelivered")
	acc.GetTelegrafMetrics()[0].Accept()
	require.Eventually(t, func() bool {
		return channelStats(t, nsqd, "mail_events").InFlight == 0
	}, 10*time.Second, 20*time.Millisecond)
}

// TestStopRequeuesIntegration: on a clean stop, every message not yet
// confirmed (with the outputs, waiting for room, or waiting to be read)
// is requeued at once, not left to nsqd's message timeout.
func TestStopRequeuesIntegration(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test")
	}
	nsqd := stacktest.NSQD(t)
	const n = 6
	bodies := numbered(n)
	publish(t, nsqd, "mail_events", bodies...)
	m, acc := startPlugin(t, nsqd, func(m *MailEvents) {
		m.MaxInFlight, m.MaxUndeliveredMessages = n, 2 // two with the outputs, four waiting
	})
	acc.Wait(2)
	acc.GetTelegrafMetrics()[0].Accept()
	require.Eventually(t, func() bool { return channelStats(t, nsqd, "mail_events").InFlight == n-1 },
		10*time.Second, 20*time.Millisecond, "one finished, the rest unanswered")
	m.Stop()
	// nsqd's message timeout is 60s: only the REQs bring them back sooner.
	require.Eventually(t, func() bool {
		ch := channelStats(t, nsqd, "mail_events")
		return ch.InFlight == 0 && ch.Depth == n-1
	}, 10*time.Second, 20*time.Millisecond, "every unanswered message back in the channel")
	ch := channelStats(t, nsqd, "mail_events")
	require.EqualValues(t, n-1, ch.RequeueCount, "requeued at stop")
	require.Zero(t, ch.TimeoutCount)
}

// TestQueuedMessagesTouchedIntegration: with max_undelivered_messages
// below max_in_flight, messages wait in the subscriber's queue while the
// outputs are slow; they are touched there, at half the timeout nsqd
// announced, and none times out and comes back.
func TestQueuedMessagesTouchedIntegration(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test")
	}
	nsqd := stacktest.NSQD(t)
	const n = 20
	bodies := numbered(n)
	publish(t, nsqd, "mail_events", bodies...)
	_, acc := startPlugin(t, nsqd, func(m *MailEvents) {
		m.MaxInFlight, m.MaxUndeliveredMessages = n, 2
		m.MessageTimeout = telegrafconfig.Duration(time.Second)
	})
	acc.Wait(2)
	require.Never(t, func() bool { return channelStats(t, nsqd, "mail_events").TimeoutCount > 0 },
		3*time.Second, 50*time.Millisecond, "a message timed out in nsqd while it waited")
	accepted := acceptUntilDrained(t, acc, nsqd, "mail_events", 20*time.Second)
	ch := channelStats(t, nsqd, "mail_events")
	require.Zero(t, ch.TimeoutCount)
	require.Zero(t, ch.RequeueCount)
	require.Equal(t, n, accepted, "each message delivered once")
}

func TestDeadLetterIntegration(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test")
	}
	nsqd := stacktest.NSQD(t)
	publish(t, nsqd, "mail_events",
		[]byte(`{"time":`),
		[]byte(fullEvent),
		[]byte(`[{"time":1700000000,"smtp_code":"x"},{"time":1700000001,"event":"delivered","a":1}]`),
		[]byte("\xff\xfe"),
	)
	_, acc := startPlugin(t, nsqd, nil)
	acc.Wait(2)
	for _, m := range acc.GetTelegrafMetrics() {
		m.Accept()
	}

	var letters []DeadLetter
	for _, body := range stacktest.Consume(t, nsqd, "mail_events_dead", 3) {
		var dl DeadLetter
		require.NoError(t, json.Unmarshal(body, &dl))
		letters = append(letters, dl)
	}
	reasons := map[string]DeadLetter{}
	for _, dl := range letters {
		require.Equal(t, "mail_events", dl.Topic)
		require.Equal(t, "mailtick", dl.Channel)
		require.NotEmpty(t, dl.Error)
		reasons[dl.Reason+":"+dl.Body+dl.BodyHex] = dl
	}
	require.Contains(t, reasons, `malformed_json:{"time":`)
	require.Contains(t, reasons, `wrong_type:{"time":1700000000,"smtp_code":"x"}`)
	require.Contains(t, reasons, `malformed_json:fffe`)
	require.Eventually(t, func() bool {
		ch := channelStats(t, nsqd, "mail_events")
		return ch.MessageCount == 4 && ch.InFlight == 0 && ch.Depth == 0 && ch.RequeueCount == 0
	}, 10*time.Second, 20*time.Millisecond, "every source message must be finished once: %+v", channelStats(t, nsqd, "mail_events"))
}

// TestDeadLetterFailureRequeuesIntegration: when nsqd refuses the dead
// letter (here: larger than its --max-msg-size), the source message is kept
// and retried, never finished.
func TestDeadLetterFailureRequeuesIntegration(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test")
	}
	nsqd := stacktest.NSQDWith(t, stack.NSQDOptions{Args: []string{"--max-msg-size=64"}})
	publish(t, nsqd, "mail_events", []byte(`not json`))
	startPlugin(t, nsqd, func(m *MailEvents) { m.DeadLetterMaxAttempts = 1000 })
	require.Eventually(t, func() bool {
		return channelStats(t, nsqd, "mail_events").RequeueCount >= 2
	}, 20*time.Second, 20*time.Millisecond, "the message must be requeued, again and again")
	ch := channelStats(t, nsqd, "mail_events")
	require.Equal(t, int64(1), ch.Depth+ch.InFlight+ch.Deferred, "the message must still be in nsqd")
	dead, err := nsqd.TopicStats("mail_events_dead")
	require.NoError(t, err)
	require.Zero(t, dead.MessageCount)
}

// TestDeadLetterGiveUpIntegration: a message whose dead letters nsqd keeps
// refusing is given up after dead_letter_max_attempts deliveries: finished,
// counted, logged with its id; its good events are delivered.
func TestDeadLetterGiveUpIntegration(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test")
	}
	nsqd := stacktest.NSQDWith(t, stack.NSQDOptions{Args: []string{"--max-msg-size=200"}})
	publish(t, nsqd, "mail_events", []byte(`[{"time":1700000000,"a":1},{"time":1700000000,"smtp_code":"not a number"}]`))
	log := &testutil.CaptureLogger{}
	_, acc := startPlugin(t, nsqd, func(m *MailEvents) { m.DeadLetterMaxAttempts = 3; m.Log = log })
	acc.Wait(1)
	for _, m := range acc.GetTelegrafMetrics() {
		m.Accept()
	}
	require.Eventually(t, func() bool {
		ch := channelStats(t, nsqd, "mail_events")
		return ch.Depth+ch.InFlight+ch.Deferred == 0
	}, 20*time.Second, 20*time.Millisecond, "the message must be finished")
	require.Equal(t, int64(2), channelStats(t, nsqd, "mail_events").RequeueCount, "requeued until its third delivery")
	require.Contains(t, strings.Join(log.Errors(), "\n"), "failed 3 times (dead_letter_max_attempts): dropping its 1 bad events")
}

// TestPoisonMessageIntegration: a 512 KiB message of "{}" lines (174,762
// bad events) against nsqd with its default limits becomes one dead letter
// and is finished, not requeued forever.
func TestPoisonMessageIntegration(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test")
	}
	nsqd := stacktest.NSQD(t)
	poison := []byte(strings.Repeat("{}\n", 512*1024/3))
	publish(t, nsqd, "mail_events", poison, []byte(fullEvent))
	_, acc := startPlugin(t, nsqd, nil)
	acc.Wait(1)
	for _, m := range acc.GetTelegrafMetrics() {
		m.Accept()
	}
	letters := stacktest.Consume(t, nsqd, "mail_events_dead", 1)
	var dl DeadLetter
	require.NoError(t, json.Unmarshal(letters[0], &dl))
	require.Equal(t, reasonTooManyBad, dl.Reason)
	require.Contains(t, dl.Error, "174762 events of the message are bad")
	require.Equal(t, len(poison), dl.BodyBytes)
	require.True(t, dl.Truncated)
	require.Eventually(t, func() bool {
		ch := channelStats(t, nsqd, "mail_events")
		return ch.MessageCount == 2 && ch.Depth+ch.InFlight+ch.Deferred == 0 && ch.RequeueCount == 0
	}, 20*time.Second, 20*time.Millisecond, "both messages finished once: %+v", channelStats(t, nsqd, "mail_events"))
	dead, err := nsqd.TopicStats("mail_events_dead")
	require.NoError(t, err)
	require.Equal(t, int64(1), dead.MessageCount)
}

// TestReconnectIntegration: the agent starts before its nsqd, as happens
// when a DC boots; it must connect once nsqd is up and consume.
func TestReconnectIntegration(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test")
	}
	port, err := stack.FreePort()
	require.NoError(t, err)
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	log := &testutil.CaptureLogger{}
	m := newMailEvents()
	m.Nsqd = []string{addr}
	m.ReconnectInterval = telegrafconfig.Duration(50 * time.Millisecond)
	m.Log = log
	require.NoError(t, m.Init())
	acc := &testutil.Accumulator{}
	require.NoError(t, m.Start(acc), "the agent must start while nsqd is down")
	t.Cleanup(m.Stop)
	require.Eventually(t, func() bool { return len(log.Warnings()) > 0 }, 10*time.Second, 10*time.Millisecond,
		"the failed connection must be logged")

	nsqd := stacktest.NSQDWith(t, stack.NSQDOptions{TCPAddr: addr})
	publish(t, nsqd, "mail_events", []byte(fullEvent))
	acc.Wait(1)
	acc.GetTelegrafMetrics()[0].Accept()
	require.Eventually(t, func() bool {
		return channelStats(t, nsqd, "mail_events").MessageCount == 1 && channelStats(t, nsqd, "mail_events").InFlight == 0
	}, 10*time.Second, 20*time.Millisecond)
}

// TestLookupdIntegration finds the nsqd through nsqlookupd only.
func TestLookupdIntegration(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test")
	}
	lookupd := stacktest.NSQLookupd(t)
	nsqd := stacktest.NSQDWith(t, stack.NSQDOptions{Lookupd: []string{lookupd.TCPAddr}})
	publish(t, nsqd, "mail_events", []byte(fullEvent)) // creates the topic, registered with nsqlookupd
	_, acc := startPlugin(t, nsqd, func(m *MailEvents) {
		m.Nsqd = nil
		m.Nsqlookupd = []string{lookupd.HTTPAddr}
		m.ReconnectInterval = telegrafconfig.Duration(100 * time.Millisecond)
	})
	acc.Wait(1)
	acc.GetTelegrafMetrics()[0].Accept()
	require.Eventually(t, func() bool {
		ch := channelStats(t, nsqd, "mail_events")
		return ch.MessageCount == 1 && ch.InFlight == 0 && ch.Depth == 0
	}, 10*time.Second, 20*time.Millisecond)
}

// TestTLSAndAuthIntegration runs against an nsqd that requires TLS and an
// auth secret, for the consumer and for the dead-letter producer.
func TestTLSAndAuthIntegration(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test")
	}
	dir := t.TempDir()
	certPath, keyPath := writeSelfSignedCert(t, dir)
	const secret = "s3cret"
	authd := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Get("secret") != secret {
			http.Error(w, "bad secret", http.StatusForbidden)
			return
		}
		fmt.Fprint(w, `{"ttl":3600,"identity":"agent","authorizations":[{"topic":".*","channels":[".*"],"permissions":["subscribe","publish"]}]}`)
	}))
	defer authd.Close()
	nsqd := stacktest.NSQDWith(t, stack.NSQDOptions{Args: []string{
		"--tls-cert=" + certPath, "--tls-key=" + keyPath,
		"--auth-http-address=" + strings.TrimPrefix(authd.URL, "http://"),
	}})

	// Publish over TLS with the secret.
	pool := x509.NewCertPool()
	certPEM, err := os.ReadFile(certPath)
	require.NoError(t, err)
	require.True(t, pool.AppendCertsFromPEM(certPEM))
	cfg := nsq.NewConfig()
	cfg.TlsV1 = true
	cfg.TlsConfig = &tls.Config{RootCAs: pool, ServerName: "127.0.0.1", MinVersion: tls.VersionTLS12}
	cfg.AuthSecret = secret
	producer, err := nsq.NewProducer(nsqd.TCPAddr, cfg)
	require.NoError(t, err)
	producer.SetLogger(nil, nsq.LogLevelError)
	defer producer.Stop()
	require.NoError(t, producer.MultiPublish("mail_events", [][]byte{[]byte(fullEvent), []byte("not json")}))

	_, acc := startPlugin(t, nsqd, func(m *MailEvents) {
		m.TLSCA = certPath
		m.AuthSecret = telegrafconfig.NewSecret([]byte(secret))
	})
	acc.Wait(1)
	acc.GetTelegrafMetrics()[0].Accept()
	require.Eventually(t, func() bool {
		ch := channelStats(t, nsqd, "mail_events")
		dead, err := nsqd.TopicStats("mail_events_dead")
		return err == nil && ch.MessageCount == 2 && ch.InFlight == 0 && ch.Depth == 0 && dead.MessageCount == 1
	}, 10*time.Second, 20*time.Millisecond, "both messages finished, the bad one dead-lettered over TLS")
	ch := channelStats(t, nsqd, "mail_events")
	// max_in_flight 10000 against nsqd's max_rdy_count 2500: four connections.
	require.Len(t, ch.Clients, 4)
	for _, c := range ch.Clients {
		require.True(t, c.TLS, "every connection of the agent must use TLS")
		require.True(t, c.Authed, "every connection of the agent must be authenticated")
	}
}

// TestAuthRefusedIntegration: a wrong secret is logged and retried, never
// a crash.
func TestAuthRefusedIntegration(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test")
	}
	authd := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		http.Error(w, "bad secret", http.StatusForbidden)
	}))
	defer authd.Close()
	nsqd := stacktest.NSQDWith(t, stack.NSQDOptions{Args: []string{
		"--auth-http-address=" + strings.TrimPrefix(authd.URL, "http://")}})
	log := &testutil.CaptureLogger{}
	m := newMailEvents()
	m.Nsqd = []string{nsqd.TCPAddr}
	m.AuthSecret = telegrafconfig.NewSecret([]byte("wrong"))
	m.ReconnectInterval = telegrafconfig.Duration(50 * time.Millisecond)
	m.Log = log
	require.NoError(t, m.Init())
	require.NoError(t, m.Start(&testutil.Accumulator{}))
	t.Cleanup(m.Stop)
	require.Eventually(t, func() bool {
		for _, w := range log.Warnings() {
			if strings.Contains(w, "AUTH") {
				return true
			}
		}
		return false
	}, 10*time.Second, 10*time.Millisecond, "the refused AUTH must be logged")
}

func writeSelfSignedCert(t *testing.T, dir string) (certPath, keyPath string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	certPath, keyPath, err = providertest.WriteCertificate(dir, key)
	require.NoError(t, err)
	return certPath, keyPath
}

func TestSampleConfigLoads(t *testing.T) {
	plugintest.SampleConfigLoads(t, sampleConfig)
}

// TestPresetsIntegration: each provider's published samples, published to
// nsqd as a relay would, come out of the input with one preset line as
// the same metrics the mailevents parser makes of them.
func TestPresetsIntegration(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test")
	}
	nsqd := stacktest.NSQD(t)
	for _, name := range mailevent.PresetNames() {
		t.Run(name, func(t *testing.T) {
			bodies, err := providertest.Bodies(name)
			require.NoError(t, err)
			var data [][]byte
			m := mailevent.DefaultMapping()
			m.Preset = name
			dec, err := m.NewDecoder()
			require.NoError(t, err)
			want := 0
			for _, b := range bodies {
				data = append(data, b.Data)
				want += len(dec.Decode(mailevent.NewScratch(), b.Data, time.Now()).Metrics)
			}
			topic := "provider_" + name
			publish(t, nsqd, topic, data...)
			_, acc := startPlugin(t, nsqd, func(m *MailEvents) {
				m.Topics = []string{topic}
				m.Preset = name
			})
			acc.Wait(want)
			got := acc.GetTelegrafMetrics()
			require.Len(t, got, want)
			for _, m := range got {
				mailer, _ := m.GetTag("mailer")
				require.Equal(t, strings.TrimSuffix(strings.TrimSuffix(name, "_sns"), "_events_api"), mailer)
				m.Accept()
			}
			require.Eventually(t, func() bool {
				ch := channelStats(t, nsqd, topic)
				return ch.MessageCount == int64(len(data)) && ch.InFlight == 0 && ch.Depth == 0
			}, 10*time.Second, 20*time.Millisecond, "every message finished")
		})
	}
}

// TestMaxMsgTimeoutIntegration: an output outage longer than nsqd's
// --max-msg-timeout. nsqd caps TOUCH there, times the messages out and
// sends them again. The plugin gives the old copies up shortly before
// nsqd does (messages_timed_out), wherever they wait (the subscriber's
// queue, for room, or for the outputs), and handles the new copies as
// any message. Once the outputs accept, every message is finished once,
// by a live copy, nsqd's channel is empty, and nothing stale is left.
func TestMaxMsgTimeoutIntegration(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test")
	}
	nsqd := stacktest.NSQDWith(t, stack.NSQDOptions{Args: []string{"--msg-timeout=1s", "--max-msg-timeout=3s"}})
	const topic, n = "mail_events_max_msg_timeout", 20
	bodies := numbered(n)
	publish(t, nsqd, topic, bodies...)
	log := &testutil.CaptureLogger{}
	m, acc := startPlugin(t, nsqd, func(m *MailEvents) {
		m.Topics = []string{topic}
		m.Log = log
		// 30 slots for 20 messages: the first copies all wait for the
		// outputs, then some of the second ones too, the rest for room.
		m.MaxInFlight, m.MaxUndeliveredMessages = n, 30
	})
	st := m.consumers[0].stats

	// The outputs hold every metric for more than twice max-msg-timeout.
	time.Sleep(8 * time.Second)
	require.Positive(t, st.timedOut.Get(), "messages given up")
	require.Positive(t, channelStats(t, nsqd, topic).TimeoutCount, "nsqd sent them again")
	require.Greater(t, acc.NMetrics(), uint64(n), "the new copies' metrics went to the outputs too")

	// The outputs are back.
	acceptUntilDrained(t, acc, nsqd, topic, 30*time.Second)

	ch := channelStats(t, nsqd, topic)
	require.EqualValues(t, n, ch.MessageCount)
	require.Positive(t, ch.TimeoutCount)
	require.EqualValues(t, n, st.finished.Get(), "each message finished once")
	require.Zero(t, st.requeued.Get())
	for _, e := range log.Messages() {
		require.NotContains(t, e.String(), "E_FIN_FAILED", "a FIN for a copy nsqd took back")
		require.NotContains(t, e.String(), "E_TOUCH_FAILED", "a TOUCH for a copy nsqd took back")
	}
	seen := map[any]bool{}
	for _, metric := range acc.GetTelegrafMetrics() {
		seen[metric.Fields()["a"]] = true
	}
	require.Len(t, seen, n, "every event reached the outputs")

	// Nothing stale is left: every tracked metric was reported, and the
	// window and the subscriber's queue are empty.
	require.Eventually(t, func() bool {
		m.mu.Lock()
		defer m.mu.Unlock()
		return m.sent.live == 0 && len(m.sem) == 0 &&
			m.consumers[0].sub.Queued() == 0 && st.inFlight.Get() == 0
	}, 10*time.Second, 20*time.Millisecond, "nothing stale left in the plugin")
}
