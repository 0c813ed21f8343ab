package mailevents

import (
	"encoding/binary"
	"encoding/json"
	"math/rand/v2"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/influxdata/telegraf"
	"github.com/influxdata/telegraf/config"
	"github.com/influxdata/telegraf/metric"
	"github.com/influxdata/telegraf/models"
	"github.com/influxdata/telegraf/plugins/inputs"
	"github.com/influxdata/telegraf/testutil"
	"github.com/stretchr/testify/require"

	// The stock plugins telegraf.conf names, so that it loads as it is.
	_ "github.com/influxdata/telegraf/plugins/inputs/influxdb_listener"
	_ "github.com/influxdata/telegraf/plugins/outputs/influxdb"

	"github.com/mailtick/mailtick/internal/pii/piitest"
	"github.com/mailtick/mailtick/internal/testutil/providertest"
	"github.com/mailtick/mailtick/plugins/common/mailevent"
	_ "github.com/mailtick/mailtick/plugins/inputs/maillog"
	_ "github.com/mailtick/mailtick/plugins/inputs/mailrollups"
	"github.com/mailtick/mailtick/plugins/outputs/rollupfwd"
	_ "github.com/mailtick/mailtick/plugins/processors/mailclassify"
	_ "github.com/mailtick/mailtick/plugins/processors/piiscrub"
)

// TestCentralPathProperty: random events full of addresses, in every form
// the public corpus has and more, and the providers' published samples,
// go through the mailevents decoder (the presets for the samples), then
// as rollups through the shipped telegraf.conf's piiscrub and rollupfwd
// (loaded from the file as it is). Nothing that reaches the spool, nor
// anything in the reject file, matches a broad reference scan written apart
// from internal/pii.
func TestCentralPathProperty(t *testing.T) {
	spool := t.TempDir()
	c := loadShipped(t, spool)
	var scrub *models.RunningProcessor
	for _, p := range c.Processors {
		if p.Config.Name == "piiscrub" {
			scrub = p
		}
	}
	var fwd *rollupfwd.RollupFwd
	for _, o := range c.Outputs {
		if r, ok := o.Output.(*rollupfwd.RollupFwd); ok {
			fwd = r
		}
	}
	require.NotNil(t, scrub, "telegraf.conf has processors.piiscrub")
	require.NotNil(t, fwd, "telegraf.conf has outputs.rollupfwd")
	require.NoError(t, scrub.Init())
	acc := &testutil.Accumulator{}
	require.NoError(t, scrub.Start(acc))
	defer scrub.Stop()
	fwd.Log = testutil.Logger{Quiet: true}
	require.NoError(t, fwd.Init())
	require.NoError(t, fwd.Connect()) // central is down: what passes stays spooled
	defer fwd.Close()

	dirty := addressPool()
	clean := []string{"dc1", "outbound", "inbound", "delivered", "bounced", "c10234", "mx1.dc1.example.net",
		"250 2.0.0 Ok: queued as 4F2A1C0D3B", "example.org", "5.1.1", "mail.example.com"}
	rng := rand.New(rand.NewPCG(9, 23))
	mapping := mailevent.DefaultMapping()
	dec, err := mapping.NewDecoder()
	require.NoError(t, err)
	pick := func() string { // mostly clean: rollups that pass are checked too
		if rng.IntN(4) > 0 {
			return clean[rng.IntN(len(clean))]
		}
		return dirty[rng.IntN(len(dirty))]
	}
	// Each event becomes the rollups Kapacitor would write, with all its
	// keys: what piiscrub and the guard must clean or refuse.
	feed := func(ms []telegraf.Metric) {
		for _, m := range ms {
			for _, name := range []string{"mail_counts", "mail_latency", "mail_spam"} {
				r := m.Copy()
				r.SetName(name)
				r.AddTag("sender_domain", pick())
				r.AddTag("window", "1m")
				r.AddField("count", int64(1))
				require.NoError(t, scrub.Add(r, acc))
			}
		}
	}
	for i := 0; i < 2000; i++ {
		ev := map[string]any{"time": 1700000000 + i, "latency_ms": rng.Float64() * 1000}
		for _, k := range []string{"dc", "direction", "event", "customer", "mailer", "sender", "recipient", "sender_ip", "helo", "smtp_response", "message_id"} {
			if rng.IntN(3) > 0 {
				ev[k] = pick()
			}
		}
		body, err := json.Marshal(ev)
		require.NoError(t, err)
		feed(dec.Decode(mailevent.NewScratch(), body, time.Unix(1795356000, 0)).Metrics)
	}
	// The providers' published samples, through their presets: keys the
	// mailer schema does not have (mx_host, reject_reason, bounce_type)
	// and reply texts holding the recipient.
	for _, name := range mailevent.PresetNames() {
		m := mailevent.DefaultMapping()
		m.Preset = name
		pdec, err := m.NewDecoder()
		require.NoError(t, err)
		bodies, err := providertest.Bodies(name)
		require.NoError(t, err)
		for _, b := range bodies {
			feed(pdec.Decode(mailevent.NewScratch(), b.Data, time.Unix(1795356000, 0)).Metrics)
		}
	}
	metrics := acc.GetTelegrafMetrics()
	require.NotEmpty(t, metrics)
	require.NoError(t, fwd.Write(metrics))

	lines := spooledLines(t, spool)
	require.NotEmpty(t, lines, "some rollups pass")
	for _, l := range lines {
		require.Empty(t, piitest.ReferenceScan(l), "passed the guard: %q", l)
	}
	rejected, err := os.ReadFile(filepath.Join(spool, "rejected.jsonl"))
	require.NoError(t, err, "some rollups are refused")
	require.Empty(t, piitest.ReferenceScan(string(rejected)), "the reject file holds no address")
	t.Logf("%d rollups in, %d spooled, %d refused", len(metrics), len(lines), strings.Count(string(rejected), "\n"))
}

// addressPool is what the random events' dirty values are: the corpus's
// texts and addresses, and the same written otherwise.
func addressPool() []string {
	var pool []string
	for _, c := range piitest.Corpus() {
		pool = append(pool, c.Text)
		for _, s := range c.Secrets {
			pool = append(pool, s, strings.ToUpper(s), "<"+s+">", "to="+s, url.QueryEscape(s), s+"|"+s,
				strings.ReplaceAll(s, "@", "%2540"), strings.ReplaceAll(s, "@", "＠"))
		}
	}
	return pool
}

// spooledLines reads the line protocol in rollupfwd's segment files, by
// the format its README gives: magic, length, CRC, two times, payload.
func spooledLines(t *testing.T, dir string) []string {
	t.Helper()
	segs, err := filepath.Glob(filepath.Join(dir, "seg-*.log"))
	require.NoError(t, err)
	var lines []string
	for _, seg := range segs {
		b, err := os.ReadFile(seg)
		require.NoError(t, err)
		for len(b) >= 28 {
			n := int(binary.BigEndian.Uint32(b[4:]))
			lines = append(lines, strings.Split(strings.TrimSuffix(string(b[28:28+n]), "\n"), "\n")...)
			b = b[28+n:]
		}
	}
	return lines
}

type placeholderInput struct {
	CollectMemstats bool `toml:"collect_memstats"`
}

func (*placeholderInput) SampleConfig() string              { return "" }
func (*placeholderInput) Gather(telegraf.Accumulator) error { return nil }

// loadShipped loads the repository's telegraf.conf as it is, its
// variables set for a test (spool: a folder for its files).
func loadShipped(t *testing.T, spool string) *config.Config {
	t.Helper()
	for k, v := range map[string]string{
		"MAILTICK_DC": "dc1", "NSQLOOKUPD_HTTP": "127.0.0.1:1", "DC_INFLUXDB_URL": "http://127.0.0.1:1",
		"LISTEN_ADDRESS": "127.0.0.1:0", "MAILTICK_LISTENER_PASSWORD": "test", "CENTRAL_INFLUXDB_URL": "http://127.0.0.1:1",
		"MAILTICK_PII_KEY": "0123456789abcdef-property", "MAILTICK_PII_KEY_ID": "test", "SPOOL_DIR": spool,
		"MAILLOG_FILE": filepath.Join(spool, "mail.log"), "MAILLOG_STATE_DIR": spool,
	} {
		t.Setenv(k, v)
	}
	// inputs.internal is an internal package of Telegraf, which a test out
	// of its module cannot import: a placeholder of that name lets the
	// file load.
	if _, ok := inputs.Inputs["internal"]; !ok {
		inputs.Add("internal", func() telegraf.Input { return &placeholderInput{} })
	}
	c := config.NewConfig()
	data, err := os.ReadFile(filepath.Join("..", "..", "..", "telegraf.conf"))
	require.NoError(t, err)
	require.NoError(t, c.LoadConfigData(data, "telegraf.conf"))
	return c
}

// TestShippedRawOutputLast: Telegraf hands a metric as it is to its last
// output and copies it for every other output that accepts it. It keeps
// the file's order among the outputs of one plugin, not between plugins
// (it visits them as a Go map iterates); the raw events' output is the
// last influxdb output of the shipped telegraf.conf, so that no event is
// copied in the starts that put the influxdb outputs last.
func TestShippedRawOutputLast(t *testing.T) {
	c := loadShipped(t, t.TempDir())
	event := metric.New("mail_event", nil, map[string]any{"v": 1}, time.Now())
	var raw []int
	last := -1
	for i, o := range c.Outputs {
		if o.Config.Name != "influxdb" {
			continue
		}
		last = i
		if ok, err := o.Config.Filter.Select(event); err == nil && ok {
			raw = append(raw, i)
		}
	}
	require.Equal(t, []int{last}, raw, "one influxdb output takes the raw events, the last of them")
}
