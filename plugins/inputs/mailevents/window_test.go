package mailevents

import (
	"testing"

	"github.com/influxdata/telegraf"
	"github.com/stretchr/testify/require"

	"github.com/mailtick/mailtick/plugins/inputs/mailevents/internal/nsqsub"
)

// inFlight lists the IDs the window holds, in its order.
func inFlight(w *window) []telegraf.TrackingID {
	var ids []telegraf.TrackingID
	w.each(func(p *pending) { ids = append(ids, p.id) })
	return ids
}

func TestWindow(t *testing.T) {
	w := newWindow()
	msgs := map[telegraf.TrackingID]*nsqsub.Message{}
	add := func(ids ...telegraf.TrackingID) {
		for _, id := range ids {
			msgs[id] = &nsqsub.Message{}
			w.add(id, msgs[id], nil)
		}
	}
	take := func(id telegraf.TrackingID) bool {
		p, ok := w.take(id)
		if ok {
			require.Same(t, msgs[id], p.msg, "id %d", id)
		}
		return ok
	}

	add(3, 5, 8, 13) // other plugins take the IDs between
	require.True(t, take(8), "out of order")
	require.False(t, take(8), "twice")
	require.False(t, take(4), "never added")
	require.False(t, take(100), "past the end")
	require.Equal(t, []telegraf.TrackingID{3, 5, 13}, inFlight(w))
	require.True(t, take(3))
	require.True(t, take(5))
	require.Equal(t, []telegraf.TrackingID{13}, inFlight(w))

	add(10) // lower than the last: put in its place
	require.Equal(t, []telegraf.TrackingID{10, 13}, inFlight(w))
	require.True(t, take(13))
	require.True(t, take(10))
	require.Empty(t, inFlight(w))
	require.Zero(t, len(w.items), "an empty window starts over")

	// Many in flight, answered mostly in order with a straggler: the
	// slice slides instead of growing, and nothing is lost.
	next := telegraf.TrackingID(100)
	var straggler telegraf.TrackingID
	for round := range 50 {
		var batch []telegraf.TrackingID
		for range 100 {
			next += 2
			batch = append(batch, next)
		}
		add(batch...)
		if round == 0 {
			straggler = batch[0]
			batch = batch[1:]
		}
		for _, id := range batch {
			require.True(t, take(id), "id %d", id)
		}
	}
	require.Equal(t, []telegraf.TrackingID{straggler}, inFlight(w))
	require.LessOrEqual(t, cap(w.items), 256, "grew instead of sliding")
	require.True(t, take(straggler))

	add(next + 1)
	w.clear()
	require.Empty(t, inFlight(w))
	require.False(t, take(next+1))
}
