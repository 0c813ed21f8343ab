package mailevents

import (
	"context"
	_ "embed"
	"errors"
	"fmt"
	"os"
	"runtime"
	"sync"
	"time"

	"github.com/influxdata/telegraf"
	"github.com/influxdata/telegraf/config"
	"github.com/influxdata/telegraf/plugins/common/tls"
	"github.com/influxdata/telegraf/plugins/inputs"
	"github.com/nsqio/go-nsq"

	"github.com/mailtick/mailtick/plugins/common/agentconf"
	"github.com/mailtick/mailtick/plugins/common/mailevent"
	"github.com/mailtick/mailtick/plugins/inputs/mailevents/internal/nsqsub"
)

//go:embed sample.conf
var sampleConfig string

const (
	deadLetterTopic  = "topic"
	deadLetterFinish = "finish"
)

// MailEvents consumes mailer events from NSQ and emits one typed metric per
// event, acknowledging each message only once every output accepted it.
type MailEvents struct {
	Nsqd                   []string        `toml:"nsqd"`
	Nsqlookupd             []string        `toml:"nsqlookupd"`
	Topics                 []string        `toml:"topics"`
	Channel                string          `toml:"channel"`
	AuthSecret             config.Secret   `toml:"auth_secret"`
	MaxInFlight            int             `toml:"max_in_flight"`
	MaxUndeliveredMessages int             `toml:"max_undelivered_messages"`
	MessageTimeout         config.Duration `toml:"message_timeout"`
	RequeueDelay           config.Duration `toml:"requeue_delay"`
	ReconnectInterval      config.Duration `toml:"reconnect_interval"`
	Workers                int             `toml:"workers"`
	DeadLetter             string          `toml:"dead_letter"`
	DeadLetterTopic        string          `toml:"dead_letter_topic"`
	DeadLetterMaxAttempts  int             `toml:"dead_letter_max_attempts"`

	// The mapping of events into metrics (plugins/common/mailevent), shared
	// with the parser and inputs.mailwebhooks.
	mailevent.Mapping

	tls.ClientConfig
	Log telegraf.Logger `toml:"-"`

	dec       *mailevent.Decoder
	nsqConfig *nsq.Config // for the dead-letter producers
	subConfig nsqsub.Config
	scratch   sync.Pool // *mailevent.Scratch
	consumers []*consumer
	deadLet   *deadLetters
	acc       telegraf.TrackingAccumulator
	sem       chan struct{}

	mu   sync.Mutex
	sent *window // messages whose metrics are with the outputs

	cancel context.CancelFunc
	wg     sync.WaitGroup
}

func (*MailEvents) SampleConfig() string {
	return sampleConfig
}

func (m *MailEvents) Init() error {
	if len(m.Nsqd) == 0 && len(m.Nsqlookupd) == 0 {
		return errors.New("either \"nsqd\" or \"nsqlookupd\" must list at least one address")
	}
	if len(m.Topics) == 0 {
		return errors.New("\"topics\" must name at least one NSQ topic")
	}
	for _, t := range m.Topics {
		if !nsq.IsValidTopicName(t) {
			return fmt.Errorf("invalid %q value %q", "topics", t)
		}
	}
	if !nsq.IsValidChannelName(m.Channel) {
		return fmt.Errorf("invalid %q value %q", "channel", m.Channel)
	}
	if m.MaxInFlight < 0 {
		return fmt.Errorf("invalid %q value %d: must be > 0, or 0 to size it from metric_batch_size", "max_in_flight", m.MaxInFlight)
	}
	if m.MaxUndeliveredMessages < 0 {
		return fmt.Errorf("invalid %q value %d: must be > 0, or 0 to size it from metric_batch_size", "max_undelivered_messages", m.MaxUndeliveredMessages)
	}
	m.sizeWindow(agentBatch(m.Log))
	if m.MessageTimeout != 0 && time.Duration(m.MessageTimeout) < time.Second {
		return fmt.Errorf("invalid %q value %s: must be at least 1s", "message_timeout", time.Duration(m.MessageTimeout))
	}
	if m.RequeueDelay < 0 {
		return fmt.Errorf("invalid %q value %s: must not be negative", "requeue_delay", time.Duration(m.RequeueDelay))
	}
	if m.ReconnectInterval <= 0 {
		return fmt.Errorf("invalid %q value %s: must be > 0", "reconnect_interval", time.Duration(m.ReconnectInterval))
	}
	if m.Workers < 0 {
		return fmt.Errorf("invalid %q value %d: must not be negative", "workers", m.Workers)
	}
	if m.Workers == 0 {
		m.Workers = runtime.GOMAXPROCS(0)
	}
	switch m.DeadLetter {
	case deadLetterTopic:
		if m.DeadLetterTopic != "" && !nsq.IsValidTopicName(m.DeadLetterTopic) {
			return fmt.Errorf("invalid %q value %q", "dead_letter_topic", m.DeadLetterTopic)
		}
		if m.DeadLetterMaxAttempts <= 0 {
			return fmt.Errorf("invalid %q value %d: must be > 0", "dead_letter_max_attempts", m.DeadLetterMaxAttempts)
		}
	case deadLetterFinish:
	default:
		return fmt.Errorf("invalid %q value %q: want %q or %q", "dead_letter", m.DeadLetter, deadLetterTopic, deadLetterFinish)
	}
	dec, err := m.Mapping.NewDecoder()
	if err != nil {
		return err
	}
	m.dec = dec

	tlsCfg, err := m.ClientConfig.TLSConfig()
	if err != nil {
		return fmt.Errorf("invalid TLS options: %w", err)
	}
	cfg := nsq.NewConfig()
	if tlsCfg != nil {
		cfg.TlsV1 = true
		cfg.TlsConfig = tlsCfg
	}
	m.nsqConfig = cfg
	m.subConfig = nsqsub.Config{
		Channel:           m.Channel,
		Nsqd:              m.Nsqd,
		Lookupd:           m.Nsqlookupd,
		MaxInFlight:       m.MaxInFlight,
		MsgTimeout:        time.Duration(m.MessageTimeout),
		ReconnectInterval: time.Duration(m.ReconnectInterval),
		TLS:               tlsCfg,
		UserAgent:         "telegraf-mailevents",
		Log:               m.Log,
	}
	m.scratch.New = func() any { return mailevent.NewScratch() }
	return nil
}

func (m *MailEvents) Start(acc telegraf.Accumulator) error {
	ctx, cancel := context.WithCancel(context.Background())
	m.cancel = cancel
	m.acc = acc.WithTracking(m.MaxUndeliveredMessages)
	m.sem = make(chan struct{}, m.MaxUndeliveredMessages)
	m.sent = newWindow()

	subCfg := m.subConfig
	nsqCfg := *m.nsqConfig
	if !m.AuthSecret.Empty() {
		secret, err := m.AuthSecret.Get()
		if err != nil {
			return fmt.Errorf("reading %q: %w", "auth_secret", err)
		}
		subCfg.AuthSecret = secret.String()
		nsqCfg.AuthSecret = subCfg.AuthSecret
		secret.Destroy()
	}
	if m.DeadLetter == deadLetterTopic {
		m.deadLet = newDeadLetters(&nsqCfg, m.DeadLetterTopic, m.Log)
	}
	for _, topic := range m.Topics {
		c, err := newConsumer(m, subCfg, topic)
		if err != nil {
			return err
		}
		m.consumers = append(m.consumers, c)
	}

	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		m.onDelivery(ctx)
	}()
	for _, c := range m.consumers {
		c.start(ctx, m)
	}
	return nil
}

func (*MailEvents) Gather(telegraf.Accumulator) error {
	return nil
}

// Stop stops consuming. Messages whose metrics are not yet confirmed by the
// outputs are requeued at once by their subscriber, so another agent on the
// channel (or this one after a restart) gets them without waiting for the
// message timeout; if their metrics were written meanwhile, the redelivery
// overwrites the same points.
func (m *MailEvents) Stop() {
	m.cancel()
	m.wg.Wait()
	for _, c := range m.consumers {
		c.stop()
	}
	m.mu.Lock()
	m.sent.each(func(p *pending) { p.st.inFlight.Incr(-1) })
	m.sent.clear()
	m.mu.Unlock()
	if m.deadLet != nil {
		m.deadLet.stop()
	}
}

// handle turns one message into metrics; several workers run it at once.
// Its subscriber keeps it alive in nsqd until it is answered, however long
// it waits for room or for the outputs.
func (m *MailEvents) handle(ctx context.Context, st *topicStats, msg *nsqsub.Message) {
	now := time.Now()
	if msg.Expired(now) {
		// Given up while it waited its turn (nsqd's max_msg_timeout):
		// nsqd sends it again, and that copy is handled.
		msg.ReleaseBody()
		return
	}
	st.received.Incr(1)
	sc := m.scratch.Get().(*mailevent.Scratch)
	out := m.dec.Decode(sc, msg.Body, time.Unix(0, msg.Timestamp))
	m.scratch.Put(sc)

	st.observe(out, now)
	var deadErr error
	if len(out.Bad) > 0 {
		deadErr = m.deadLetter(st, msg, out.Bad) // publishes copies, at once
	}
	// The metrics hold copies of what they need: the body's buffer goes on
	// to a later message.
	msg.ReleaseBody()
	if deadErr != nil {
		if int(msg.Attempts) < m.DeadLetterMaxAttempts {
			// Keep the message: requeued, it is tried again later.
			m.Log.Errorf("Dead-lettering message %s from %q failed (attempt %d of %d), requeueing it: %v",
				msg.ID[:], st.topic, msg.Attempts, m.DeadLetterMaxAttempts, deadErr)
			m.answer(msg, false, st)
			return
		}
		// Requeueing forever would keep a poison message in the channel:
		// give its bad events up, counted and logged, and deliver its good
		// ones.
		st.deadLetterGaveUp.Incr(int64(len(out.Bad)))
		m.Log.Errorf("Dead-lettering message %s from %q failed %d times (dead_letter_max_attempts): dropping its %d bad events (the first: %s): %v",
			msg.ID[:], st.topic, msg.Attempts, len(out.Bad), out.Bad[0].Reason(), deadErr)
	}
	if len(out.Metrics) == 0 {
		m.answer(msg, true, st)
		return
	}

	select {
	case m.sem <- struct{}{}:
	default:
		// max_undelivered_messages reached: wait.
		select {
		case <-ctx.Done():
			return // stopping: the subscriber requeues it
		case m.sem <- struct{}{}:
		}
		if msg.Expired(time.Now()) {
			<-m.sem // given up while it waited: its new copy comes
			return
		}
	}
	m.mu.Lock()
	if ctx.Err() != nil { // stopping: the subscriber requeues it
		m.mu.Unlock()
		<-m.sem
		return
	}
	id := m.acc.AddTrackingMetricGroup(out.Metrics)
	m.sent.add(id, msg, st)
	m.mu.Unlock()
	st.inFlight.Incr(1)
	st.emitted.Incr(int64(len(out.Metrics)))
}

// agentBatch is the largest metric_batch_size of the agent's outputs, read
// from the configuration the agent was started with (a variable for tests).
var agentBatch = func(log telegraf.Logger) agentconf.Batch {
	files, err := agentconf.Sources(os.Args[1:])
	if err != nil {
		log.Warnf("Cannot tell the agent's configuration files (%v): sizing for metric_batch_size %d", err, agentconf.DefaultBatchSize)
		return agentconf.Batch{Size: agentconf.DefaultBatchSize, Where: "Telegraf's default"}
	}
	b, err := agentconf.LargestBatch(files)
	if err != nil {
		log.Warnf("Reading metric_batch_size from the agent's configuration: %v; sizing for %d (%s)", err, b.Size, b.Where)
	}
	return b
}

// defaultUndelivered is max_undelivered_messages when unset, unless the
// outputs' batches need more.
const defaultUndelivered = 10000

// sizeWindow sets max_undelivered_messages and max_in_flight where they
// are unset, and warns where they are set below what the outputs' largest
// batch needs. Messages are acknowledged only once written, and an output
// writes when it holds a full batch, else only every flush_interval: with
// fewer than two batches' worth unacknowledged, reading stalls until the
// next flush_interval, or while a batch is being written.
func (m *MailEvents) sizeWindow(b agentconf.Batch) {
	need := 2 * b.Size
	m.sizeOption("max_undelivered_messages", &m.MaxUndeliveredMessages, max(defaultUndelivered, need), b)
	m.sizeOption("max_in_flight", &m.MaxInFlight, m.MaxUndeliveredMessages, b)
	m.Log.Debugf("max_undelivered_messages %d, max_in_flight %d (largest metric_batch_size %d, %s)",
		m.MaxUndeliveredMessages, m.MaxInFlight, b.Size, b.Where)
}

// sizeOption sets an unset option to def, or warns if it is set below
// twice the batch.
func (m *MailEvents) sizeOption(name string, v *int, def int, b agentconf.Batch) {
	need := 2 * b.Size
	switch {
	case *v == 0:
		*v = def
	case *v < need:
		m.Log.Warnf("%s = %d is below twice the largest metric_batch_size (%d, %s): outputs will wait for "+
			"flush_interval with less than a batch in hand, and throughput falls to %d events per flush_interval. "+
			"Set it to at least %d, or leave it unset to size it so.", name, *v, b.Size, b.Where, *v, need)
	}
}

func (m *MailEvents) deadLetter(st *topicStats, msg *nsqsub.Message, bad []mailevent.BadEvent) error {
	if m.deadLet == nil {
		st.finishedBad.Incr(int64(len(bad)))
		return nil
	}
	if err := m.deadLet.publish(st.topic, m.Channel, msg, bad); err != nil {
		st.deadLetterErrors.Incr(1)
		return err
	}
	st.deadLettered.Incr(int64(len(bad)))
	return nil
}

// answer FINs or REQs a message (counted if it went to nsqd: not if the
// message was given up, see nsqsub.Message.Expired).
func (m *MailEvents) answer(msg *nsqsub.Message, ok bool, st *topicStats) {
	if ok {
		if msg.Finish() {
			st.finished.Incr(1)
		}
		return
	}
	if msg.Requeue(m.requeueDelay(msg.Attempts)) {
		st.requeued.Incr(1)
	}
}

func (m *MailEvents) onDelivery(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case info := <-m.acc.Delivered():
			m.mu.Lock()
			p, ok := m.sent.take(info.ID())
			m.mu.Unlock()
			if !ok {
				continue
			}
			<-m.sem
			p.st.inFlight.Incr(-1)
			m.answer(p.msg, info.Delivered(), p.st) // nothing, if it was given up
		}
	}
}

func init() {
	inputs.Add("mailevents", func() telegraf.Input { return newMailEvents() })
}

func newMailEvents() *MailEvents {
	return &MailEvents{
		Channel:               "mailtick",
		Topics:                []string{"mail_events"},
		RequeueDelay:          config.Duration(5 * time.Second),
		ReconnectInterval:     config.Duration(5 * time.Second),
		DeadLetter:            deadLetterTopic,
		DeadLetterMaxAttempts: 10,
		Mapping:               mailevent.DefaultMapping(),
	}
}

// requeueDelay grows with the attempts, as go-nsq's does, up to 15 minutes.
func (m *MailEvents) requeueDelay(attempts uint16) time.Duration {
	return min(time.Duration(m.RequeueDelay)*time.Duration(max(attempts, 1)), 15*time.Minute)
}
