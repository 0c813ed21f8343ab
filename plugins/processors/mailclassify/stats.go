package mailclassify

import (
	"sync"

	"github.com/influxdata/telegraf/selfstat"

	"github.com/mailtick/mailtick/plugins/common/bounce"
)

// stats count the reasons given, published by inputs.internal as
// internal_mailclassify (tag reason), so that the share of events no rule
// classified (reason "undefined") is watched.
type stats struct {
	mu      *sync.Mutex
	reasons map[string]selfstat.Stat
}

func newStats() stats {
	return stats{mu: new(sync.Mutex), reasons: make(map[string]selfstat.Stat, len(bounce.Reasons))}
}

func (s stats) count(reason string) {
	s.mu.Lock()
	st, ok := s.reasons[reason]
	if !ok {
		st = selfstat.Register("mailclassify", "events", map[string]string{"reason": reason})
		s.reasons[reason] = st
	}
	s.mu.Unlock()
	st.Incr(1)
}
