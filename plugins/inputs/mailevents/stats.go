package mailevents

import (
	"github.com/mailtick/mailtick/plugins/common/mailevent"
	"time"

	"github.com/influxdata/telegraf/selfstat"
)

// lagBuckets are the upper bounds of the end-to-end lag histogram (receive
// time minus event time), named by lagNames. Each event counts in one
// bucket only (one atomic add on the hot path); sum them for "at most".
var (
	lagBuckets = []time.Duration{100 * time.Millisecond, time.Second, 10 * time.Second, time.Minute, 10 * time.Minute, time.Hour}
	lagNames   = []string{"lt_100ms", "100ms_1s", "1s_10s", "10s_1m", "1m_10m", "10m_1h", "ge_1h"}
)

// topicStats are the self-metrics of one topic, published by inputs.internal
// as internal_mailevents, internal_mailevents_errors and internal_mailevents_lag.
type topicStats struct {
	topic string

	received         selfstat.Stat
	emitted          selfstat.Stat
	finished         selfstat.Stat
	requeued         selfstat.Stat
	timedOut         selfstat.Stat // messages given up at nsqd's max_msg_timeout
	deadLettered     selfstat.Stat
	deadLetterErrors selfstat.Stat
	deadLetterGaveUp selfstat.Stat
	finishedBad      selfstat.Stat
	missingTime      selfstat.Stat
	repairedUTF8     selfstat.Stat
	inFlight         selfstat.Stat // messages waiting for the outputs (a gauge)
	errors           map[string]selfstat.Stat
	lag              []selfstat.Stat // one per lagNames entry
}

func newTopicStats(topic, channel string) *topicStats {
	tags := map[string]string{"topic": topic, "channel": channel}
	st := &topicStats{
		topic:            topic,
		received:         selfstat.Register("mailevents", "messages_received", tags),
		emitted:          selfstat.Register("mailevents", "metrics_emitted", tags),
		finished:         selfstat.Register("mailevents", "messages_finished", tags),
		requeued:         selfstat.Register("mailevents", "messages_requeued", tags),
		timedOut:         selfstat.Register("mailevents", "messages_timed_out", tags),
		deadLettered:     selfstat.Register("mailevents", "events_dead_lettered", tags),
		deadLetterErrors: selfstat.Register("mailevents", "dead_letter_errors", tags),
		deadLetterGaveUp: selfstat.Register("mailevents", "dead_letters_given_up", tags),
		finishedBad:      selfstat.Register("mailevents", "events_dropped", tags),
		missingTime:      selfstat.Register("mailevents", "events_missing_time", tags),
		repairedUTF8:     selfstat.Register("mailevents", "strings_repaired_utf8", tags),
		inFlight:         selfstat.Register("mailevents", "messages_in_flight", tags),
		errors:           make(map[string]selfstat.Stat, len(mailevent.AllReasons)),
	}
	for _, r := range mailevent.AllReasons {
		st.errors[r] = selfstat.Register("mailevents_errors", "events",
			map[string]string{"topic": topic, "channel": channel, "reason": r})
	}
	for _, name := range lagNames {
		st.lag = append(st.lag, selfstat.Register("mailevents_lag", "events",
			map[string]string{"topic": topic, "channel": channel, "lag": name}))
	}
	return st
}

// observe counts what one message turned into.
func (st *topicStats) observe(out mailevent.Decoded, now time.Time) {
	for _, b := range out.Bad {
		st.errors[b.Reason()].Incr(1)
	}
	if out.MissingTime > 0 {
		st.missingTime.Incr(int64(out.MissingTime))
	}
	if out.RepairedUTF > 0 {
		st.repairedUTF8.Incr(int64(out.RepairedUTF))
	}
	for _, m := range out.Metrics {
		lag := now.Sub(m.Time())
		i := 0
		for i < len(lagBuckets) && lag >= lagBuckets[i] {
			i++
		}
		st.lag[i].Incr(1)
	}
}
