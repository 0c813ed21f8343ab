package mailevents

import (
	"context"
	"sync"

	"github.com/mailtick/mailtick/internal/nsqsub"
)

// consumer reads one topic of the configured channel with its own workers.
type consumer struct {
	topic string
	sub   *nsqsub.Subscriber
	stats *topicStats
	wg    sync.WaitGroup
}

func newConsumer(m *MailEvents, cfg nsqsub.Config, topic string) (*consumer, error) {
	cfg.Topic = topic
	sub, err := nsqsub.New(cfg)
	if err != nil {
		return nil, err
	}
	return &consumer{topic: topic, sub: sub, stats: newTopicStats(topic, m.Channel)}, nil
}

// start connects and runs the workers that parse messages.
func (c *consumer) start(ctx context.Context, m *MailEvents) {
	c.sub.Start()
	for range m.Workers {
		c.wg.Add(1)
		go func() {
			defer c.wg.Done()
			for {
				select {
				case <-ctx.Done():
					return
				case msg := <-c.sub.Messages():
					m.handle(ctx, c.stats, msg)
				}
			}
		}()
	}
}

// waitWorkers returns once the workers saw ctx end.
func (c *consumer) waitWorkers() {
	c.wg.Wait()
}

// stop requeues what arrived but was never handled, then disconnects.
func (c *consumer) stop() {
	for {
		select {
		case msg := <-c.sub.Messages():
			msg.Requeue(0)
			continue
		default:
		}
		break
	}
	c.sub.Stop()
}
