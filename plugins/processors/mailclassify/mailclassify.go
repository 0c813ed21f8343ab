// Package mailclassify tags mail events with why mail did not arrive and
// where it was going: reason (a fixed set, Sisimai's taxonomy, see
// plugins/common/bounce), rcpt_provider (the recipient's mailbox
// provider, a bounded set) and sender_domain. It runs in the DC on the
// raw events of every source (inputs.mailevents, inputs.maillog,
// inputs.mailwebhooks, the data format), before anything leaves the DC:
// the rollups count by these tags, and none of them holds personal data.
package mailclassify

import (
	_ "embed"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/influxdata/telegraf"
	"github.com/influxdata/telegraf/plugins/processors"

	"github.com/mailtick/mailtick/plugins/common/bounce"
)

//go:embed sample.conf
var sampleConfig string

// MailClassify adds reason, rcpt_provider and sender_domain tags.
type MailClassify struct {
	ReasonEvents    []string          `toml:"reason_events"`
	ReasonTag       string            `toml:"reason_tag"`
	ProviderTag     string            `toml:"rcpt_provider_tag"`
	SenderDomainTag string            `toml:"sender_domain_tag"`
	RecipientField  string            `toml:"recipient_field"`
	SenderField     string            `toml:"sender_field"`
	RelayFields     []string          `toml:"relay_fields"`
	Domains         map[string]string `toml:"domains"`
	Relays          map[string]string `toml:"relays"`
	Log             telegraf.Logger   `toml:"-"`

	providers *providerTable
	stats     stats
}

func (*MailClassify) SampleConfig() string { return sampleConfig }

func (c *MailClassify) Init() error {
	for _, o := range []struct{ name, v string }{
		{"reason_tag", c.ReasonTag}, {"rcpt_provider_tag", c.ProviderTag}, {"sender_domain_tag", c.SenderDomainTag},
	} {
		if strings.ContainsAny(o.v, " ,=\\\"") {
			return fmt.Errorf("invalid %q value %q: a tag key (empty: not set)", o.name, o.v)
		}
	}
	for _, e := range c.ReasonEvents {
		if e == "" || e == "delivered" || e == "accepted" {
			return fmt.Errorf("invalid %q value %q: name the events that did not deliver", "reason_events", e)
		}
	}
	if c.RecipientField == "" {
		return fmt.Errorf("invalid %q value %q: name the recipient's field", "recipient_field", c.RecipientField)
	}
	t, err := newProviderTable(c.Domains, c.Relays)
	if err != nil {
		return err
	}
	c.providers = t
	c.stats = newStats()
	return nil
}

func (c *MailClassify) Apply(in ...telegraf.Metric) []telegraf.Metric {
	for _, m := range in {
		c.classify(m)
	}
	return in
}

// tag adds a tag; a field of the same key (a mailer's own "reason") is
// kept, renamed <key>_field, so that the key names one thing in InfluxDB.
func tag(m telegraf.Metric, key, value string) {
	if v, ok := m.GetField(key); ok {
		m.RemoveField(key)
		m.AddField(key+"_field", v)
	}
	m.AddTag(key, value)
}

func (c *MailClassify) classify(m telegraf.Metric) {
	recipient := str(m, c.RecipientField)
	relay := ""
	for _, f := range c.RelayFields {
		if relay = str(m, f); relay != "" {
			break
		}
	}
	if c.ProviderTag != "" {
		if p := c.providers.provider(recipient, relay); p != "" {
			tag(m, c.ProviderTag, p)
		}
	}
	if c.SenderDomainTag != "" {
		if d := domainOf(str(m, c.SenderField)); d != "" {
			tag(m, c.SenderDomainTag, d)
		}
	}
	if c.ReasonTag == "" {
		return
	}
	event, _ := m.GetTag("event")
	if !slices.Contains(c.ReasonEvents, event) {
		return
	}
	mailer, _ := m.GetTag("mailer")
	r := bounce.Classify(bounce.Input{
		Event:         event,
		Provider:      mailer,
		Code:          integer(m, "smtp_code"),
		Status:        str(m, "smtp_status"),
		Text:          str(m, "smtp_response"),
		RemoteHost:    relayHost(relay),
		BounceType:    str(m, "bounce_type"),
		BounceSubType: str(m, "bounce_subtype"),
		BounceClass:   integer(m, "bounce_class"),
		Reason:        firstOf(m, "reject_reason", "provider_reason"),
	})
	tag(m, c.ReasonTag, r)
	c.stats.count(r)
}

// str is a field's (or else a tag's) string value.
func str(m telegraf.Metric, key string) string {
	if v, ok := m.GetField(key); ok {
		if s, ok := v.(string); ok {
			return s
		}
		return fmt.Sprint(v)
	}
	v, _ := m.GetTag(key)
	return v
}

func firstOf(m telegraf.Metric, keys ...string) string {
	for _, k := range keys {
		if v := str(m, k); v != "" {
			return v
		}
	}
	return ""
}

// integer is a field's integer value (0: absent or not a number).
func integer(m telegraf.Metric, key string) int {
	v, ok := m.GetField(key)
	if !ok {
		return 0
	}
	switch n := v.(type) {
	case int64:
		return int(n)
	case uint64:
		return int(n)
	case float64:
		return int(n)
	case string:
		i, _ := strconv.Atoi(n)
		return i
	}
	return 0
}

func init() {
	processors.Add("mailclassify", func() telegraf.Processor { return New() })
}

// New is the processor with every default set, as the registry gives it.
func New() *MailClassify {
	return &MailClassify{
		ReasonEvents:    []string{"bounced", "deferred", "rejected", "failed", "expired", "complained"},
		ReasonTag:       "reason",
		ProviderTag:     "rcpt_provider",
		SenderDomainTag: "sender_domain",
		RecipientField:  "recipient",
		SenderField:     "sender",
		RelayFields:     []string{"relay", "mx_host"},
	}
}
