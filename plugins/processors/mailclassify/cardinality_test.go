package mailclassify

import (
	"math/rand/v2"
	"testing"
	"time"

	"github.com/influxdata/telegraf/testutil"
	"github.com/stretchr/testify/require"

	"github.com/mailtick/mailtick/internal/gen"
	"github.com/mailtick/mailtick/plugins/common/mailevent"
)

// BenchmarkDelivSeries estimates what the deliverability rollups
// (mail_deliv, tickscripts/mail_deliv.tick) cost central per DC per day:
// the series (distinct tag sets: direction, customer, sender_domain,
// event, reason, rcpt_provider) and the points of each level, beside
// mail_counts' (direction, customer, event). A day of events at
// deliv_rate events/s from 20,000 customers, whose volumes follow a Zipf
// law (a few large senders, a long tail), sending from 5,000 domains (the
// first 5,000 customers one each, the others sharing them). Event,
// direction, recipient and reply come from the generator (its mix of
// outcomes and mailbox providers), reason and rcpt_provider from this
// processor as shipped. One op takes longer than the default benchtime,
// so `make bench` (-bench .) runs it once: `go test -run XXX -bench
// DelivSeries ./plugins/processors/mailclassify/`.
func BenchmarkDelivSeries(b *testing.B) {
	const (
		customers = 20000
		domains   = 5000
		rate      = 100 // events/s
	)
	c := newMailClassify()
	c.Log = testutil.Logger{}
	require.NoError(b, c.Init())
	g, err := gen.New(gen.Config{Seed: 1})
	require.NoError(b, err)
	mapping := mailevent.DefaultMapping()
	dec, err := mapping.NewDecoder()
	require.NoError(b, err)
	// A pool of classified events to draw from.
	type shape struct{ direction, event, reason, provider string }
	var pool []shape
	for len(pool) < 100000 {
		for _, m := range dec.Decode(mailevent.NewScratch(), g.Next().Body, time.Now()).Metrics {
			c.classify(m)
			direction, _ := m.GetTag("direction")
			event, _ := m.GetTag("event")
			reason, _ := m.GetTag("reason")
			provider, _ := m.GetTag("rcpt_provider")
			pool = append(pool, shape{direction, event, reason, provider})
		}
	}
	type deliv struct {
		shape
		customer, domain int
	}
	type counts struct {
		direction, event string
		customer         int
	}
	for b.Loop() {
		r := rand.New(rand.NewPCG(1, 2))
		zipf := rand.NewZipf(r, 1.1, 1, customers-1)
		series := map[deliv]bool{}
		countSeries := map[counts]bool{}
		var points [3]int // 1m, 1h, 1d
		minute, hour := map[deliv]bool{}, map[deliv]bool{}
		for s := 0; s < 86400; s++ {
			if s%60 == 0 {
				points[0] += len(minute)
				clear(minute)
			}
			if s%3600 == 0 {
				points[1] += len(hour)
				clear(hour)
			}
			for range rate {
				cust := int(zipf.Uint64())
				d := deliv{shape: pool[r.IntN(len(pool))], customer: cust, domain: cust % domains}
				minute[d], hour[d], series[d] = true, true, true
				countSeries[counts{d.direction, d.event, cust}] = true
			}
		}
		points[0] += len(minute)
		points[1] += len(hour)
		points[2] = len(series)
		b.ReportMetric(float64(len(series)), "mail_deliv-series/level")
		b.ReportMetric(float64(points[0]), "mail_deliv-1m-points/day")
		b.ReportMetric(float64(points[1]), "mail_deliv-1h-points/day")
		b.ReportMetric(float64(points[2]), "mail_deliv-1d-points/day")
		b.ReportMetric(float64(len(countSeries)), "mail_counts-series/level")
		b.ReportMetric(rate, "events/s")
	}
}
