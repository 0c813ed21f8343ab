// Package tracking bounds the metric groups an input has handed to
// Telegraf and not yet seen delivered by the capacity of the tracking
// accumulator's delivery channel.
//
// Telegraf's tracking accumulator (acc.WithTracking(n)) panics with
// "channel is full" when a delivery finds n deliveries unread. An input
// that counts what it waits for, not what Telegraf holds, gets there: a
// webhook whose request timed out frees its place while its group stays
// in Telegraf's buffer, and at the final flush (shutdown, SIGHUP) every
// group held is delivered after the input stopped reading. A Window
// takes a slot before each group and frees it only on the group's
// delivery, so Telegraf never holds more undelivered groups than its
// channel has room for, read or not.
package tracking

import (
	"context"

	"github.com/influxdata/telegraf"
)

// Window hands metric groups to Telegraf, at most size undelivered.
type Window struct {
	acc   telegraf.TrackingAccumulator
	slots chan struct{}
}

// New is a window of size groups over acc.
func New(acc telegraf.Accumulator, size int) *Window {
	return &Window{acc: acc.WithTracking(size), slots: make(chan struct{}, size)}
}

// Add hands ms to the outputs as one group once fewer than size groups
// are undelivered: it waits until then, or until ctx is done (ctx's error,
// nothing handed).
func (w *Window) Add(ctx context.Context, ms []telegraf.Metric) (telegraf.TrackingID, error) {
	select {
	case w.slots <- struct{}{}:
		return w.acc.AddTrackingMetricGroup(ms), nil
	case <-ctx.Done():
		return 0, ctx.Err()
	}
}

// TryAdd hands ms to the outputs if fewer than size groups are
// undelivered, and says whether it did.
func (w *Window) TryAdd(ms []telegraf.Metric) (telegraf.TrackingID, bool) {
	select {
	case w.slots <- struct{}{}:
		return w.acc.AddTrackingMetricGroup(ms), true
	default:
		return 0, false
	}
}

// Undelivered is the number of groups handed and not yet delivered.
func (w *Window) Undelivered() int { return len(w.slots) }

// Run reads the deliveries until ctx is done, frees a slot for each and
// hands it to f. What is delivered after Run returned waits in Telegraf's
// channel, which has room for it.
func (w *Window) Run(ctx context.Context, f func(telegraf.DeliveryInfo)) {
	for {
		select {
		case <-ctx.Done():
			return
		case info := <-w.acc.Delivered():
			<-w.slots
			f(info)
		}
	}
}
