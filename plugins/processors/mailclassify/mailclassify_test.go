package mailclassify

import (
	"fmt"
	"os"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/influxdata/telegraf"
	"github.com/influxdata/telegraf/metric"
	"github.com/influxdata/telegraf/testutil"
	"github.com/stretchr/testify/require"

	"github.com/mailtick/mailtick/internal/gen"
	"github.com/mailtick/mailtick/internal/testutil/plugintest"
	"github.com/mailtick/mailtick/internal/testutil/providertest"
	"github.com/mailtick/mailtick/plugins/common/mailevent"
)

func newClassify(t *testing.T, edit func(*MailClassify)) *MailClassify {
	t.Helper()
	c := New()
	c.Log = testutil.Logger{}
	if edit != nil {
		edit(c)
	}
	require.NoError(t, c.Init())
	return c
}

func TestSampleConfigLoads(t *testing.T) {
	plugintest.SampleConfigLoads(t, sampleConfig)
}

func TestInitErrorsNameTheOption(t *testing.T) {
	for _, tt := range []struct {
		edit func(*MailClassify)
		want string
	}{
		{func(c *MailClassify) { c.ReasonTag = "a b" }, `invalid "reason_tag" value "a b"`},
		{func(c *MailClassify) { c.ReasonEvents = []string{"delivered"} }, `invalid "reason_events" value "delivered"`},
		{func(c *MailClassify) { c.RecipientField = "" }, `invalid "recipient_field" value ""`},
		{func(c *MailClassify) { c.Domains = map[string]string{"corp.example": "Big Corp"} }, `invalid "domains" value "Big Corp" for "corp.example"`},
		{func(c *MailClassify) { c.Relays = map[string]string{"a b": "corp"} }, `invalid "relays" key "a b"`},
	} {
		c := New()
		tt.edit(c)
		require.ErrorContains(t, c.Init(), tt.want)
	}
}

func event(tags map[string]string, fields map[string]any) telegraf.Metric {
	fields["events"] = int64(1)
	return metric.New("mail_event", tags, fields, time.Unix(1795356000, 0))
}

// Postfix's own words for common failures (its smtp(8) and bounce(8)
// replies as real Postfix logs them; the remote replies are the
// providers' published ones), relayed to the providers' MX hosts.
func TestPostfixReplies(t *testing.T) {
	c := newClassify(t, nil)
	for _, tt := range []struct {
		event, recipient, relay, dsn, text string
		reason, provider                   string
	}{
		{"bounced", "nobody@gmail.com", "gmail-smtp-in.l.google.com[142.250.102.27]:25", "5.1.1",
			"host gmail-smtp-in.l.google.com[142.250.102.27] said: 550-5.1.1 The email account that you tried to reach does not exist. (in reply to RCPT TO command)",
			"userunknown", "gmail"},
		{"deferred", "someone@corp.example", "aspmx.l.google.com[142.250.102.26]:25", "4.2.2",
			"host aspmx.l.google.com[142.250.102.26] said: 452-4.2.2 The recipient's inbox is out of storage space. (in reply to RCPT TO command)",
			"mailboxfull", "gmail"},
		{"bounced", "user@contoso.example", "contoso-example.mail.protection.outlook.com[52.101.0.1]:25", "5.7.1",
			"host contoso-example.mail.protection.outlook.com[52.101.0.1] said: 550 5.7.1 Service unavailable, Client host [192.0.2.1] blocked using Spamhaus. (in reply to MAIL FROM command)",
			"blocked", "microsoft"},
		{"deferred", "x@yahoo.com", "mta6.am0.yahoodns.net[67.195.204.72]:25", "4.7.0",
			"host mta6.am0.yahoodns.net[67.195.204.72] said: 421 4.7.0 [TSS04] Messages from 192.0.2.1 temporarily deferred due to unexpected volume or user complaints - 4.16.55.1; see https://postmaster.yahooinc.com/error-codes (in reply to MAIL FROM command)",
			"rejected", "yahoo"},
		{"deferred", "x@nxdomain.example", "none", "4.4.3",
			"Host or domain name not found. Name service error for name=nxdomain.example type=MX: Host not found, try again",
			"hostunknown", "other"},
		{"bounced", "x@nxdomain.example", "none", "5.4.4",
			"Host or domain name not found. Name service error for name=nxdomain.example type=A: Host not found",
			"hostunknown", "other"},
		{"deferred", "x@example.net", "none", "4.4.1",
			"connect to mx.example.net[192.0.2.25]:25: Connection timed out",
			"expired", "other"},
		{"bounced", "x@icloud.com", "mx01.mail.icloud.com[17.57.154.6]:25", "5.3.4",
			"host mx01.mail.icloud.com[17.57.154.6] said: 552 5.3.4 Message size exceeds fixed maximum message size (in reply to end of DATA command)",
			"mesgtoobig", "icloud"},
		{"bounced", "x@gmx.de", "mx00.emig.gmx.net[212.227.15.9]:25", "",
			"host mx00.emig.gmx.net[212.227.15.9] said: 554-gmx.net (mxgmx017) Nemesis ESMTP Service not available 554-No SMTP service 554 Bad DNS PTR resource record. (in reply to initial greeting)",
			"requireptr", "gmx"},
	} {
		t.Run(tt.reason+"/"+tt.provider, func(t *testing.T) {
			m := event(map[string]string{"event": tt.event, "mailer": "mx1"},
				map[string]any{"recipient": tt.recipient, "relay": tt.relay, "smtp_status": tt.dsn, "smtp_response": tt.text, "sender": "news@Shop.Example.COM"})
			c.Apply(m)
			got, _ := m.GetTag("reason")
			require.Equal(t, tt.reason, got, tt.text)
			got, _ = m.GetTag("rcpt_provider")
			require.Equal(t, tt.provider, got)
			got, _ = m.GetTag("sender_domain")
			require.Equal(t, "shop.example.com", got)
		})
	}
}

// A delivery gets a provider, no reason; an event with neither recipient
// nor relay gets no provider; a table override places a company's domain.
func TestTagsWhereTheyApply(t *testing.T) {
	c := newClassify(t, func(c *MailClassify) {
		c.Domains = map[string]string{"Corp.Example": "microsoft"}
		c.Relays = map[string]string{"mx.isp.example": "isp"}
	})
	del := event(map[string]string{"event": "delivered"}, map[string]any{"recipient": "a@googlemail.com"})
	acc := event(map[string]string{"event": "accepted"}, map[string]any{"sender": "b@x.example"})
	own := event(map[string]string{"event": "bounced"}, map[string]any{"recipient": "c@sub.corp.example"})
	isp := event(map[string]string{"event": "deferred"}, map[string]any{"recipient": "d@hosted.example", "mx_host": "in1.mx.isp.example"})
	c.Apply(del, acc, own, isp)
	require.Equal(t, map[string]string{"event": "delivered", "rcpt_provider": "gmail"}, del.Tags())
	require.Equal(t, map[string]string{"event": "accepted", "sender_domain": "x.example"}, acc.Tags())
	require.Equal(t, map[string]string{"event": "bounced", "rcpt_provider": "microsoft", "reason": "undefined"}, own.Tags())
	require.Equal(t, map[string]string{"event": "deferred", "rcpt_provider": "isp", "reason": "undefined"}, isp.Tags())

	// An address at an IP address has no domain to count by: it is
	// personal data, and never a tag.
	ip := event(map[string]string{"event": "delivered"}, map[string]any{"recipient": "a@[192.0.2.7]", "sender": "Bob <b@192.0.2.8>"})
	named := event(map[string]string{"event": "delivered"}, map[string]any{"recipient": "Ann <ann@GMAIL.com>", "sender": "Sender Name <sender@Shop.Example>"})
	c.Apply(ip, named)
	require.Equal(t, map[string]string{"event": "delivered", "rcpt_provider": "other"}, ip.Tags())
	require.Equal(t, map[string]string{"event": "delivered", "rcpt_provider": "gmail", "sender_domain": "shop.example"}, named.Tags())

	off := newClassify(t, func(c *MailClassify) { c.SenderDomainTag, c.ProviderTag = "", "" })
	m := event(map[string]string{"event": "bounced"}, map[string]any{"recipient": "a@gmail.com", "sender": "b@x.example", "smtp_response": "550 5.1.1 user unknown"})
	off.Apply(m)
	require.Equal(t, map[string]string{"event": "bounced", "reason": "userunknown"}, m.Tags())
}

// The providers' published samples, decoded through their presets: every
// event of a failed delivery gets a reason, and the reasons are those
// the providers' own classifications and replies say.
func TestProviderSamples(t *testing.T) {
	c := newClassify(t, nil)
	got := map[string]int{}
	for _, name := range mailevent.PresetNames() {
		bodies, err := providertest.Bodies(name)
		require.NoError(t, err)
		m := mailevent.DefaultMapping()
		m.Preset = name
		dec, err := m.NewDecoder()
		require.NoError(t, err)
		for _, b := range bodies {
			for _, ev := range dec.Decode(mailevent.NewScratch(), b.Data, time.Now()).Metrics {
				c.Apply(ev)
				event, _ := ev.GetTag("event")
				if !strings.Contains("bounced deferred rejected failed expired complained", event) {
					require.False(t, ev.HasTag("reason"), "%s: a %s has no reason", b.Name, event)
					continue
				}
				r, ok := ev.GetTag("reason")
				require.True(t, ok, "%s: %s", b.Name, event)
				got[fmt.Sprintf("%s %s %s", name, event, r)]++
			}
		}
	}
	keys := make([]string, 0, len(got))
	for k := range got {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	// Reviewed against each sample: the provider's own classification
	// where it gives one (SES NoEmail and Bad content, Mailgun
	// suppress-bounce, SendGrid's dropped "Bounced Address", SparkPost's
	// bounce_class, Postmark's Type), else the reply (Microsoft's 4.7.652
	// "exceeded the maximum number of connections", SES's "421 4.4.1
	// Unable to connect"); "undefined" where the sample carries no reply
	// (SES's General bounces without a diagnostic, Mailgun's sandbox
	// rejection), "onhold" where the reply matches no rule ("No MX for",
	// "400 try again later").
	require.Equal(t, []string{
		"mailgun bounced suppressed", "mailgun bounced userunknown", "mailgun complained feedback",
		"mailgun deferred toomanyconn", "mailgun rejected undefined", "mailgun_events_api deferred onhold",
		"mandrill bounced userunknown", "postmark bounced userunknown", "postmark complained feedback",
		"sendgrid bounced userunknown", "sendgrid complained feedback", "sendgrid deferred onhold",
		"sendgrid rejected suppressed", "ses bounced undefined", "ses bounced userunknown",
		"ses complained feedback", "ses deferred expired", "ses failed contenterror", "ses rejected virusdetected",
		"ses_sns bounced undefined", "ses_sns bounced userunknown", "ses_sns complained feedback",
		"ses_sns deferred expired", "ses_sns failed contenterror", "ses_sns rejected virusdetected",
		"sparkpost bounced userunknown", "sparkpost deferred hostunknown", "sparkpost failed systemerror",
		"sparkpost rejected securityerror",
	}, keys)
}

// TestProviderTableInREADME: the README's table of providers is the
// shipped one.
func TestProviderTableInREADME(t *testing.T) {
	readme, err := os.ReadFile("README.md")
	require.NoError(t, err)
	for _, p := range shippedProviders {
		relays := strings.Join(p.relays, ", ")
		if relays == "" {
			relays = "(none: its MX hosts are Yahoo's)"
		}
		require.Contains(t, string(readme), fmt.Sprintf("| %s | %s | %s |\n", p.name, strings.Join(p.domains, ", "), relays))
	}
}

// BenchmarkMailClassify tags generated events (their mix: two thirds
// delivered, a fifth failed with a reply) as the agent does, one per op.
func BenchmarkMailClassify(b *testing.B) {
	c := New()
	c.Log = testutil.Logger{}
	require.NoError(b, c.Init())
	g, err := gen.New(gen.Config{Seed: 1})
	require.NoError(b, err)
	m := mailevent.DefaultMapping()
	dec, err := m.NewDecoder()
	require.NoError(b, err)
	var events []telegraf.Metric
	for range 1000 {
		events = append(events, dec.Decode(mailevent.NewScratch(), g.Next().Body, time.Now()).Metrics...)
	}
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		c.Apply(events[i%len(events)].Copy())
	}
}
