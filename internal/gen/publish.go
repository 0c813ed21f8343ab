package gen

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/nsqio/go-nsq"
)

// Sink takes batches of messages.
type Sink interface {
	Write(batch [][]byte) error
	Close() error
}

// NSQSink publishes each batch with one MPUB to an nsqd over TCP.
type NSQSink struct {
	producer *nsq.Producer
	topic    string
}

// NewNSQSink connects to the nsqd TCP address addr.
func NewNSQSink(addr, topic string) (*NSQSink, error) {
	cfg := nsq.NewConfig()
	p, err := nsq.NewProducer(addr, cfg)
	if err != nil {
		return nil, err
	}
	p.SetLogger(nil, nsq.LogLevelError)
	if err := p.Ping(); err != nil {
		p.Stop()
		return nil, fmt.Errorf("nsqd %s: %w", addr, err)
	}
	return &NSQSink{producer: p, topic: topic}, nil
}

func (s *NSQSink) Write(batch [][]byte) error {
	return s.producer.MultiPublish(s.topic, batch)
}

func (s *NSQSink) Close() error {
	s.producer.Stop()
	return nil
}

// FileSink writes newline-delimited JSON.
type FileSink struct {
	w *bufio.Writer
	c io.Closer
}

// NewFileSink writes to path ("-" is standard output).
func NewFileSink(path string) (*FileSink, error) {
	if path == "-" {
		return &FileSink{w: bufio.NewWriter(os.Stdout)}, nil
	}
	f, err := os.Create(path)
	if err != nil {
		return nil, err
	}
	return &FileSink{w: bufio.NewWriter(f), c: f}, nil
}

func (s *FileSink) Write(batch [][]byte) error {
	for _, b := range batch {
		s.w.Write(b)
		if err := s.w.WriteByte('\n'); err != nil {
			return err
		}
	}
	return nil
}

func (s *FileSink) Close() error {
	err := s.w.Flush()
	if s.c != nil {
		if cerr := s.c.Close(); err == nil {
			err = cerr
		}
	}
	return err
}

// Summary tells what a run produced.
type Summary struct {
	Messages int          `json:"messages"`
	ByKind   map[Kind]int `json:"by_kind"`
	Seconds  float64      `json:"seconds"`
}

// Run draws count messages (until ctx ends if count is 0) and writes them to
// sink in batches, at most rate messages per second (0: as fast as it can).
// onMessage, if set, sees every message before it is written.
func Run(ctx context.Context, g *Generator, sink Sink, rate float64, batchSize int, onMessage func(Message)) (Summary, error) {
	if batchSize <= 0 {
		batchSize = 100
	}
	if rate > 0 && float64(batchSize) > rate/10 {
		batchSize = max(1, int(rate/10)) // keep a paced stream smooth
	}
	sum := Summary{ByKind: make(map[Kind]int)}
	start := time.Now()
	batch := make([][]byte, 0, batchSize)
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		err := sink.Write(batch)
		batch = batch[:0]
		return err
	}
	count := g.cfg.Count
	for i := 0; count == 0 || i < count; i++ {
		if ctx.Err() != nil {
			break
		}
		msg := g.Next()
		if onMessage != nil {
			onMessage(msg)
		}
		batch = append(batch, msg.Body)
		sum.Messages++
		sum.ByKind[msg.Kind]++
		if len(batch) == batchSize {
			if err := flush(); err != nil {
				return sum, err
			}
			if rate > 0 {
				due := start.Add(time.Duration(float64(sum.Messages) / rate * float64(time.Second)))
				select {
				case <-ctx.Done():
				case <-time.After(time.Until(due)):
				}
			}
		}
	}
	err := flush()
	sum.Seconds = time.Since(start).Seconds()
	return sum, err
}

// Publish generates cfg's messages and publishes them to topic on the nsqd
// at addr, in batches of batchSize, at most rate per second (0: as fast as
// it can); onMessage, if set, sees each one.
func Publish(ctx context.Context, addr, topic string, cfg Config, rate float64, batchSize int, onMessage func(Message)) (Summary, error) {
	g, err := New(cfg)
	if err != nil {
		return Summary{}, err
	}
	sink, err := NewNSQSink(addr, topic)
	if err != nil {
		return Summary{}, err
	}
	defer sink.Close()
	return Run(ctx, g, sink, rate, batchSize, onMessage)
}
