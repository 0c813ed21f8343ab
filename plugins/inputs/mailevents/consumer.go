package mailevents

import (
	"context"
	"sync"

	"github.com/mailtick/mailtick/plugins/inputs/mailevents/internal/nsqsub"
)

// consumer reads one topic of the configured channel with its own workers.
type consumer struct {
	topic string
	sub   *nsqsub.Subscriber
	stats *topicStats
	wg    sync.WaitGroup
}

func newConsumer(m *MailEvents, cfg nsqsub.Config, topic string) (*consumer, error) {
	stats := newTopicStats(topic, m.Channel)
	cfg.Topic = topic
	cfg.TimedOut = func(*nsqsub.Message) { stats.timedOut.Incr(1) }
	sub, err := nsqsub.New(cfg)
	if err != nil {
		return nil, err
	}
	return &consumer{topic: topic, sub: sub, stats: stats}, nil
}

// start connects and runs the workers that parse messages.
func (c *consumer) start(ctx context.Context, m *MailEvents) {
	c.sub.Start()
	for range m.Workers {
		c.wg.Add(1)
		go func() {
			defer c.wg.Done()
			var batch []*nsqsub.Message
			for ctx.Err() == nil {
				batch = c.sub.Next(ctx, batch, workerBatch)
				for i, msg := range batch {
					m.handle(ctx, c.stats, msg)
					batch[i] = nil
				}
			}
		}()
	}
}

// stop waits for the workers to see ctx end, then stops the subscriber,
// which requeues every message left unanswered.
func (c *consumer) stop() {
	c.wg.Wait()
	c.sub.Stop()
}

// workerBatch is how many queued messages a worker takes at once.
const workerBatch = 64
