package mailclassify

import (
	"github.com/influxdata/telegraf/selfstat"

	"github.com/mailtick/mailtick/plugins/common/bounce"
)

// stats count the reasons given, published by inputs.internal as
// internal_mailclassify (tag reason), so that the share of events no rule
// classified (onhold, undefined) is watched. One stat per reason of
// bounce.Reasons, registered at start: the hot path only adds.
type stats map[string]selfstat.Stat

func newStats() stats {
	s := make(stats, len(bounce.Reasons))
	for _, r := range bounce.Reasons {
		s[r] = selfstat.Register("mailclassify", "events", map[string]string{"reason": r})
	}
	return s
}

func (s stats) count(reason string) { s[reason].Incr(1) }
