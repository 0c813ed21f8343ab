package mailevents

import (
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/influxdata/telegraf"
	"github.com/influxdata/telegraf/plugins/parsers"
	"github.com/influxdata/telegraf/selfstat"

	"github.com/mailtick/mailtick/plugins/common/mailevent"
)

// Parser is the mapping as a Telegraf parser, data_format = "mailevents":
// every stock input that takes a data_format (http_listener_v2, tail,
// kafka_consumer, exec, ...) turns mail events into the same mail_event
// metrics as inputs.mailevents, with the same options.
//
// A body is one event, an array of events, or newline-delimited events.
// Events that cannot become metrics are logged with their reason and
// counted (internal_mailevents_parser, tag reason); the good events of the
// same body are returned. A body with no good event at all is an error,
// so that the input refuses it (http_listener_v2 answers 400). Events
// without a time take the time they are parsed, plus their index in the
// body in ns.
type Parser struct {
	mailevent.Mapping
	DefaultMetricName string          `toml:"-"`
	Log               telegraf.Logger `toml:"-"`

	dec         *mailevent.Decoder
	defaultTags map[string]string
	scratch     sync.Pool // *mailevent.Scratch
	mu          sync.Mutex
	refused     map[string]selfstat.Stat
}

// Init checks the mapping and builds the decoder.
func (p *Parser) Init() error {
	dec, err := p.Mapping.NewDecoder()
	if err != nil {
		return err
	}
	p.dec = dec
	p.scratch.New = func() any { return mailevent.NewScratch() }
	p.refused = make(map[string]selfstat.Stat)
	return nil
}

// Parse turns a body into metrics.
func (p *Parser) Parse(buf []byte) ([]telegraf.Metric, error) {
	sc := p.scratch.Get().(*mailevent.Scratch)
	out := p.dec.Decode(sc, buf, time.Now())
	p.scratch.Put(sc)
	for _, m := range out.Metrics {
		for k, v := range p.defaultTags {
			if !m.HasTag(k) {
				m.AddTag(k, v)
			}
		}
	}
	if len(out.Bad) == 0 {
		return out.Metrics, nil
	}
	p.count(out.Bad)
	first := out.Bad[0]
	if len(out.Metrics) == 0 {
		return nil, fmt.Errorf("no event could be read (%d refused; the first: %s: %w)", len(out.Bad), first.Reason(), first.Err())
	}
	if p.Log != nil {
		p.Log.Warnf("Refused %d of %d events of a body (the first: %s: %v)", len(out.Bad), len(out.Bad)+len(out.Metrics), first.Reason(), first.Err())
	}
	return out.Metrics, nil
}

func (p *Parser) count(bad []mailevent.BadEvent) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, b := range bad {
		st, ok := p.refused[b.Reason()]
		if !ok {
			st = selfstat.Register("mailevents_parser", "events_refused", map[string]string{"reason": b.Reason()})
			p.refused[b.Reason()] = st
		}
		st.Incr(1)
	}
}

// ParseLine parses one line holding one event.
func (p *Parser) ParseLine(line string) (telegraf.Metric, error) {
	ms, err := p.Parse([]byte(line))
	if err != nil {
		return nil, err
	}
	if len(ms) != 1 {
		return nil, errors.New("a line must hold exactly one event")
	}
	return ms[0], nil
}

// SetDefaultTags sets tags every metric gets unless its event has them.
func (p *Parser) SetDefaultTags(tags map[string]string) {
	p.defaultTags = tags
}

func init() {
	parsers.Add("mailevents", func(defaultMetricName string) telegraf.Parser {
		return &Parser{Mapping: mailevent.DefaultMapping(), DefaultMetricName: defaultMetricName}
	})
}
