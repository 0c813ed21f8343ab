package mailevents

import (
	"encoding/hex"
	"encoding/json"
	"fmt"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/influxdata/telegraf"
	"github.com/nsqio/go-nsq"

	"github.com/mailtick/mailtick/plugins/common/mailevent"
	"github.com/mailtick/mailtick/plugins/inputs/mailevents/internal/nsqsub"
)

// DeadLetter is what the plugin publishes to the dead-letter topic for each
// event it could not turn into a metric: the event as received and why.
type DeadLetter struct {
	Reason     string    `json:"reason"`
	Error      string    `json:"error"`
	Topic      string    `json:"topic"`
	Channel    string    `json:"channel"`
	MessageID  string    `json:"message_id"`
	Attempts   uint16    `json:"attempts"`
	ReceivedAt time.Time `json:"received_at"`
	// Body is the event's text when it is valid UTF-8; otherwise BodyHex
	// holds its bytes, so nothing is altered on the way to the operator.
	// Bodies over maxDeadLetterBody are cut there (the dead letter must fit
	// nsqd's message size limit); BodyBytes is always the full size.
	Body      string `json:"body,omitempty"`
	BodyHex   string `json:"body_hex,omitempty"`
	BodyBytes int    `json:"body_bytes"`
	Truncated bool   `json:"truncated,omitempty"`
}

const (
	maxDeadLetterBody = 64 * 1024
	// Past this many bad events in one message, the message is one dead
	// letter: a body of 174,762 "{}" lines must not become as many.
	maxDeadLettersPerMessage = 100
	// One MPUB stays well under nsqd's --max-body-size (5 MiB by default);
	// each dead letter (at most 64 KiB of body, hex-encoded 128 KiB) under
	// its --max-msg-size (1 MiB).
	maxPublishBytes = 1 << 20
)

// reasonTooManyBad is the reason of the one dead letter of a message with
// more than maxDeadLettersPerMessage bad events.
const reasonTooManyBad = "too_many_bad_events"

// deadLetters publishes to the nsqd a message came from, one producer per
// nsqd, created on first use.
type deadLetters struct {
	cfg   *nsq.Config
	topic string // empty: "<source topic>_dead"
	log   telegraf.Logger

	mu        sync.Mutex
	producers map[string]*nsq.Producer
}

func newDeadLetters(cfg *nsq.Config, topic string, log telegraf.Logger) *deadLetters {
	return &deadLetters{cfg: cfg, topic: topic, log: log, producers: make(map[string]*nsq.Producer)}
}

func (d *deadLetters) topicFor(source string) string {
	if d.topic != "" {
		return d.topic
	}
	return source + "_dead"
}

func (d *deadLetters) producer(addr string) (*nsq.Producer, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if p, ok := d.producers[addr]; ok {
		return p, nil
	}
	p, err := nsq.NewProducer(addr, d.cfg)
	if err != nil {
		return nil, err
	}
	p.SetLogger(nsqLogger{d.log}, nsq.LogLevelInfo)
	d.producers[addr] = p
	return p, nil
}

// publish sends one dead letter per bad event and returns once nsqd has
// them, so the source message is finished only when nothing can be lost.
func (d *deadLetters) publish(topic, channel string, msg *nsqsub.Message, bad []mailevent.BadEvent) error {
	now := time.Now().UTC()
	if len(bad) > maxDeadLettersPerMessage {
		bad = []mailevent.BadEvent{mailevent.NewBadEvent(reasonTooManyBad,
			fmt.Errorf("%d events of the message are bad (the first: %s: %v): the message is dead-lettered whole", len(bad), bad[0].Reason(), bad[0].Err()),
			msg.Body)}
	}
	bodies := make([][]byte, 0, len(bad))
	for _, b := range bad {
		dl := DeadLetter{
			Reason:     b.Reason(),
			Error:      b.Err().Error(),
			Topic:      topic,
			Channel:    channel,
			MessageID:  string(msg.ID[:]),
			Attempts:   msg.Attempts,
			ReceivedAt: now,
		}
		raw := b.Raw()
		dl.BodyBytes = len(raw)
		if len(raw) > maxDeadLetterBody {
			raw, dl.Truncated = raw[:maxDeadLetterBody], true
		}
		if utf8.Valid(raw) {
			dl.Body = string(raw)
		} else {
			dl.BodyHex = hex.EncodeToString(raw)
		}
		body, err := json.Marshal(dl)
		if err != nil {
			return fmt.Errorf("encoding dead letter: %w", err)
		}
		bodies = append(bodies, body)
	}
	p, err := d.producer(msg.NSQDAddr)
	if err != nil {
		return err
	}
	for len(bodies) > 0 {
		n, size := 0, 0
		for n < len(bodies) && (n == 0 || size+len(bodies[n]) <= maxPublishBytes) {
			size += len(bodies[n])
			n++
		}
		if err := p.MultiPublish(d.topicFor(topic), bodies[:n]); err != nil {
			return err
		}
		bodies = bodies[n:]
	}
	return nil
}

func (d *deadLetters) stop() {
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, p := range d.producers {
		p.Stop()
	}
}

// nsqLogger sends go-nsq's log lines to Telegraf's logger at debug level;
// what matters to operators is logged by the plugin itself.
type nsqLogger struct {
	log telegraf.Logger
}

func (l nsqLogger) Output(_ int, s string) error {
	l.log.Debug(s)
	return nil
}
