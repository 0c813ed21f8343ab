// Package dc starts one data center of mailtick on loopback as deployed:
// nsqlookupd and nsqd, the DC InfluxDB, bin/telegraf running the
// repository's telegraf.conf, and Kapacitor running the repository's
// TICKscripts with their rollups sent through the agent to a central
// InfluxDB. The end-to-end tests and the demo use it.
package dc

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/mailtick/mailtick/internal/kapacitor/tasks"
	"github.com/mailtick/mailtick/internal/testutil/stack"
)

// DC is one running data center.
type DC struct {
	Name      string
	Lookupd   *stack.NSQLookupd
	NSQD      *stack.NSQD
	DB        *stack.InfluxDB // the DC database: raw events "mail", self-metrics "telegraf"
	Agent     *stack.Telegraf
	Kapacitor *stack.Kapacitor
	Listen    string // the agent's influxdb_listener
	SpamTopic string // where mail_spam.tick raises its alerts
	// Postfix, when set, is this DC's MTA: a real Postfix relaying to Sink,
	// whose maillog_file the agent follows (inputs.maillog).
	Postfix *stack.Postfix
	Sink    *stack.SMTPSink
	// TaskOverrides is all that the deployed tasks differ by from the
	// repository's tasks.toml.
	TaskOverrides []tasks.Override
	// Webhooks, when set, is the base URL of the agent's provider
	// webhooks (telegraf.d/mailwebhooks.conf), Mailgun's signed with
	// WebhookKey.
	Webhooks string

	servers []stopper // but the agent, in start order
	central *stack.InfluxDB
	conf    string // the repository's telegraf.conf
}

// stopper is a server of the DC: Stop stops its current process (it may
// have been restarted).
type stopper interface{ Stop(time.Duration) error }

// Overrides are what a local DC in dir sets over the shipped tasks.toml:
// log paths, and the schedule (every), nothing else: every period,
// threshold and query is the shipped one (TestOverridesOnlySchedule). The
// per-minute rollups run every minuteEvery, the levels above every two
// seconds; the agent's reconciler runs every two seconds too
// (AgentEnv), its check ages as shipped.
func Overrides(dir, minuteEvery string) []tasks.Override {
	logs := filepath.Join(dir, "kapacitor")
	var o []tasks.Override
	for _, rollup := range []string{"mail_counts", "mail_deliv", "mail_latency", "mail_latency_hist", "mail_stage_hist"} {
		o = append(o, tasks.Override{Task: rollup + "_1m", Var: "every", Value: minuteEvery})
	}
	for _, task := range []string{
		"mail_counts_1h", "mail_counts_1d", "mail_deliv_1h", "mail_deliv_1d",
		"mail_latency_hist_1h", "mail_latency_hist_1d", "mail_latency_hist_1w", "mail_latency_hist_1mo",
		"mail_stage_hist_1h", "mail_stage_hist_1d", "mail_stage_hist_1w", "mail_stage_hist_1mo",
		"mail_deliverability_sending", "mail_deliverability_gmail",
		"mail_abuse_brute_force", "mail_abuse_account_spread", "mail_abuse_account_volume",
	} {
		o = append(o, tasks.Override{Task: task, Var: "every", Value: "2s"})
	}
	for task, log := range map[string]string{
		"mail_volume_check": "mail_volume.log", "mail_spam": "mail_spam.log",
		"mail_deliverability_sending": "mail_deliverability.log", "mail_deliverability_gmail": "mail_deliverability.log",
		"mail_abuse_brute_force": "mail_abuse.log", "mail_abuse_account_spread": "mail_abuse.log", "mail_abuse_account_volume": "mail_abuse.log",
	} {
		o = append(o, tasks.Override{Task: task, Var: "log_path", Value: filepath.Join(logs, log)})
	}
	return o
}

// ReconcileInterval is the agent's reconciler schedule in a local DC
// (telegraf.conf's $MAILROLLUPS_INTERVAL; shipped: 1m).
const ReconcileInterval = "2s"

// ListenerPassword is what Kapacitor writes to the agents' listener with
// (telegraf.conf's $MAILTICK_LISTENER_PASSWORD, user "kapacitor").
const ListenerPassword = "local-listener-password"

// PIIKey is the pseudonym key of the local stacks; real DCs take theirs
// from a secret store.
const PIIKey = "0123456789abcdef-local-stack-key"

// Options are how a local DC differs from the default one.
type Options struct {
	// Postfix: a real Postfix as the DC's MTA (Debian's package, root),
	// whose log is one of the DC's event sources.
	Postfix bool
	// MinuteEvery is the per-minute rollups' schedule, "1s" by default: a
	// test sees its minutes rolled up at once. A run that does not start
	// on a minute counts only the tail of its period's first minute and
	// writes that over the minute's count, which the reconciler repairs
	// at its first age (10m); a test that runs for longer than the tasks'
	// period and checks every minute before that age sets "1m", the
	// shipped schedule.
	MinuteEvery string
	// Webhooks: the agent takes provider webhooks too, with the shipped
	// telegraf.d/mailwebhooks.conf beside telegraf.conf.
	Webhooks bool
}

// WebhookKey is Mailgun's webhook signing key in a local DC.
const WebhookKey = "local-mailgun-signing-key"

// Start starts DC name with its data in dir, forwarding to central, with
// the repository's telegraf.conf and tasks.toml as they are, but for the
// addresses and Overrides.
func Start(dir, name string, central *stack.InfluxDB) (*DC, error) {
	return StartWith(dir, name, central, Options{})
}

// StartWithPostfix is Start with a real Postfix as the DC's MTA.
func StartWithPostfix(dir, name string, central *stack.InfluxDB) (*DC, error) {
	return StartWith(dir, name, central, Options{Postfix: true})
}

// agentEnv is what an agent of the DC is started with: the DC's
// addresses, its own spool, listener and maillog state in dir, the MTA log
// it follows, the reconciler's id ("": the host name) and schedule.
func (d *DC) agentEnv(dir, listen, maillog, id string) []string {
	return []string{"MAILTICK_DC=" + d.Name, "NSQLOOKUPD_HTTP=" + d.Lookupd.HTTPAddr, "DC_INFLUXDB_URL=" + d.DB.URL,
		"LISTEN_ADDRESS=" + listen, "MAILTICK_LISTENER_PASSWORD=" + ListenerPassword, "CENTRAL_INFLUXDB_URL=" + d.central.URL,
		"MAILTICK_PII_KEY=" + PIIKey, "MAILTICK_PII_KEY_ID=local", "SPOOL_DIR=" + filepath.Join(dir, "spool"),
		"MAILLOG_FILE=" + maillog, "MAILLOG_STATE_DIR=" + filepath.Join(dir, "maillog"),
		"MAILROLLUPS_ID=" + id, "MAILROLLUPS_INTERVAL=" + ReconcileInterval}
}

// StartAgent starts one more agent of the DC in dir, as a DC scales out:
// the shipped telegraf.conf on the same NSQ channel, with a spool and a
// listener of its own, following no MTA log, its reconciler named id.
// The caller stops it.
func (d *DC) StartAgent(dir, id string) (*stack.Telegraf, error) {
	port, err := stack.FreePort()
	if err != nil {
		return nil, err
	}
	return stack.StartTelegraf(filepath.Join(dir, "telegraf"), d.conf,
		d.agentEnv(dir, fmt.Sprintf("127.0.0.1:%d", port), filepath.Join(dir, "no-mail.log"), id)...)
}

// maillogFile is the log the agent follows: Postfix's, or a file that does
// not exist in a DC whose mailers publish to NSQ.
func (d *DC) maillogFile(dir string) string {
	if d.Postfix != nil {
		return d.Postfix.Maillog
	}
	return filepath.Join(dir, "mail.log")
}

// StartWith is Start with opt.
func StartWith(dir, name string, central *stack.InfluxDB, opt Options) (*DC, error) {
	if opt.MinuteEvery == "" {
		opt.MinuteEvery = "1s"
	}
	d := &DC{Name: name, SpamTopic: "mail_spam"}
	var err error
	fail := func(err error) (*DC, error) {
		d.Stop()
		return nil, fmt.Errorf("starting %s: %w", name, err)
	}
	root, err := stack.Root()
	if err != nil {
		return nil, err
	}
	if d.Lookupd, err = stack.StartNSQLookupd(filepath.Join(dir, "nsqlookupd")); err != nil {
		return fail(err)
	}
	d.servers = append(d.servers, d.Lookupd)
	if d.NSQD, err = stack.StartNSQD(filepath.Join(dir, "nsqd"), stack.NSQDOptions{Lookupd: []string{d.Lookupd.TCPAddr}}); err != nil {
		return fail(err)
	}
	d.servers = append(d.servers, d.NSQD)
	if d.DB, err = stack.StartInfluxDB(filepath.Join(dir, "influxdb"), "mail"); err != nil {
		return fail(err)
	}
	d.servers = append(d.servers, d.DB)
	port, err := stack.FreePort()
	if err != nil {
		return fail(err)
	}
	d.Listen = fmt.Sprintf("127.0.0.1:%d", port)
	if opt.Postfix {
		if d.Sink, err = stack.StartSMTPSink(); err != nil {
			return fail(err)
		}
		smtpPort, err := stack.FreePort()
		if err != nil {
			return fail(err)
		}
		if d.Postfix, err = stack.StartPostfix(filepath.Join(dir, "postfix"), smtpPort, d.Sink.Port()); err != nil {
			return fail(err)
		}
	}
	conf, err := os.ReadFile(filepath.Join(root, "telegraf.conf"))
	if err != nil {
		return fail(err)
	}
	d.central, d.conf = central, string(conf)
	agentConf, env := d.conf, d.agentEnv(dir, d.Listen, d.maillogFile(dir), "")
	if opt.Webhooks {
		// As Telegraf reads a file of its --config-directory: after the
		// main one, its plugins added to those.
		hooks, err := os.ReadFile(filepath.Join(root, "telegraf.d", "mailwebhooks.conf"))
		if err != nil {
			return fail(err)
		}
		port, err := stack.FreePort()
		if err != nil {
			return fail(err)
		}
		agentConf += "\n" + string(hooks)
		d.Webhooks = fmt.Sprintf("http://127.0.0.1:%d", port)
		env = append(env, fmt.Sprintf("WEBHOOKS_ADDRESS=127.0.0.1:%d", port), "MAILGUN_WEBHOOK_SIGNING_KEY="+WebhookKey)
	}
	if d.Agent, err = stack.StartTelegraf(filepath.Join(dir, "telegraf"), agentConf, env...); err != nil {
		return fail(err)
	}
	if d.Kapacitor, err = stack.StartKapacitor(filepath.Join(dir, "kapacitor"), d.DB.URL,
		stack.Cluster{Name: "agent", URL: "http://" + d.Listen, Username: "kapacitor", Password: ListenerPassword}); err != nil {
		return fail(err)
	}
	d.servers = append(d.servers, d.Kapacitor)

	d.TaskOverrides = Overrides(dir, opt.MinuteEvery)
	if _, _, err := tasks.ApplyFile(filepath.Join(root, "tasks.toml"), false,
		tasks.Options{URL: d.Kapacitor.URL, Overrides: d.TaskOverrides}); err != nil {
		return fail(err)
	}
	return d, nil
}

// Stop stops every server of the DC, the agent first (it may have been
// restarted: its current process is stopped).
func (d *DC) Stop() error {
	var errs []error
	if d.Agent != nil {
		errs = append(errs, d.Agent.Stop(15*time.Second))
	}
	if d.Postfix != nil {
		errs = append(errs, d.Postfix.Stop())
	}
	if d.Sink != nil {
		d.Sink.Close()
	}
	for i := len(d.servers) - 1; i >= 0; i-- {
		errs = append(errs, d.servers[i].Stop(15*time.Second))
	}
	return errors.Join(errs...)
}

// System is a central InfluxDB and the DCs that forward to it: what the
// demo, `mailtick-dev stack` and the end-to-end tests run.
type System struct {
	Central *stack.InfluxDB
	DCs     []*DC
	opt     Options
}

// StartSystem starts a central InfluxDB and DCs dc1..dcN in dir, as opt
// says; started, if set, is told each DC's name as it starts.
func StartSystem(dir string, n int, opt Options, started func(name string)) (*System, error) {
	central, err := stack.StartInfluxDB(filepath.Join(dir, "central"))
	if err != nil {
		return nil, err
	}
	s := &System{Central: central, opt: opt}
	for i := 1; i <= n; i++ {
		name := fmt.Sprintf("dc%d", i)
		if started != nil {
			started(name)
		}
		d, err := StartWith(filepath.Join(dir, name), name, central, opt)
		if err != nil {
			s.Stop()
			return nil, err
		}
		s.DCs = append(s.DCs, d)
	}
	return s, nil
}

// AddPostfixDC starts one more DC, whose events come from a real
// Postfix's log instead of NSQ.
func (s *System) AddPostfixDC(dir, name string) (*DC, error) {
	opt := s.opt
	opt.Postfix = true
	d, err := StartWith(filepath.Join(dir, name), name, s.Central, opt)
	if err != nil {
		return nil, err
	}
	s.DCs = append(s.DCs, d)
	return d, nil
}

// Stop stops every DC, then the central InfluxDB.
func (s *System) Stop() error {
	var errs []error
	for _, d := range s.DCs {
		errs = append(errs, d.Stop())
	}
	errs = append(errs, s.Central.Stop(15*time.Second))
	return errors.Join(errs...)
}
