package mailevents

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/influxdata/telegraf"
	"github.com/nsqio/go-nsq"
)

// consumer reads one topic of the configured channel.
type consumer struct {
	topic string
	nsq   *nsq.Consumer
	stats *topicStats
	log   telegraf.Logger
	wg    sync.WaitGroup
}

func newConsumer(ctx context.Context, m *MailEvents, cfg *nsq.Config, topic string) (*consumer, error) {
	c, err := nsq.NewConsumer(topic, m.Channel, cfg)
	if err != nil {
		return nil, err
	}
	c.SetLogger(nsqLogger{m.Log}, nsq.LogLevelInfo)
	st := newTopicStats(topic, m.Channel)
	c.AddConcurrentHandlers(nsq.HandlerFunc(func(msg *nsq.Message) error {
		return m.handle(ctx, st, msg)
	}), m.Workers)
	return &consumer{topic: topic, nsq: c, stats: st, log: m.Log}, nil
}

// connect joins the nsqlookupd and nsqd addresses. An nsqd that cannot be
// reached is retried in the background: the agent starts anyway, as it must
// when a DC's nsqd starts later than the agent. After a first connection,
// go-nsq itself reconnects dropped connections.
func (c *consumer) connect(ctx context.Context, nsqds, lookupds []string, every time.Duration) {
	if len(lookupds) > 0 {
		if err := c.nsq.ConnectToNSQLookupds(lookupds); err != nil {
			c.log.Errorf("Connecting topic %q to nsqlookupd %q: %v", c.topic, lookupds, err)
		}
	}
	for _, addr := range nsqds {
		if err := c.nsq.ConnectToNSQD(addr); err == nil || errors.Is(err, nsq.ErrAlreadyConnected) {
			continue
		} else {
			c.log.Warnf("Cannot connect topic %q to nsqd %q, retrying every %s: %v", c.topic, addr, every, err)
		}
		c.wg.Add(1)
		go func(addr string) {
			defer c.wg.Done()
			tick := time.NewTicker(every)
			defer tick.Stop()
			for {
				select {
				case <-ctx.Done():
					return
				case <-tick.C:
				}
				err := c.nsq.ConnectToNSQD(addr)
				if err == nil || errors.Is(err, nsq.ErrAlreadyConnected) {
					c.log.Infof("Connected topic %q to nsqd %q", c.topic, addr)
					return
				}
				c.log.Debugf("Still cannot connect topic %q to nsqd %q: %v", c.topic, addr, err)
			}
		}(addr)
	}
}

func (c *consumer) stop() {
	c.nsq.Stop()
	<-c.nsq.StopChan
	c.wg.Wait()
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
