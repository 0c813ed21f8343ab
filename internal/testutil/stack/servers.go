package stack

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"
)

var httpClient = &http.Client{Timeout: 5 * time.Second}

// getOK checks that GET url answers with a 2xx status.
func getOK(url string) func() error {
	return func() error {
		resp, err := httpClient.Get(url)
		if err != nil {
			return err
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode/100 != 2 {
			return fmt.Errorf("GET %s: %s", url, resp.Status)
		}
		return nil
	}
}

// NSQD is a running nsqd.
type NSQD struct {
	*Process
	TCPAddr  string
	HTTPAddr string
}

// NSQDOptions change how StartNSQD runs nsqd.
type NSQDOptions struct {
	Lookupd []string // nsqlookupd TCP addresses to register with
	TCPAddr string   // fixed TCP address (default: a free port)
	Args    []string // more nsqd flags, e.g. "--max-msg-size=1024"
}

// StartNSQD starts nsqd with its data in dir.
func StartNSQD(dir string, opt NSQDOptions) (*NSQD, error) {
	bin, err := Binary("nsqd")
	if err != nil {
		return nil, err
	}
	p, addrs, err := startReady("nsqd", 2, dir, func(a []string) (*Process, func() error, error) {
		if opt.TCPAddr != "" {
			a[0] = opt.TCPAddr
		}
		args := []string{"--tcp-address=" + a[0], "--http-address=" + a[1],
			"--data-path=" + dir, "--broadcast-address=127.0.0.1", "--log-level=warn"}
		for _, l := range opt.Lookupd {
			args = append(args, "--lookupd-tcp-address="+l)
		}
		p, err := StartProcess("nsqd", bin, append(args, opt.Args...), dir)
		return p, getOK("http://" + a[1] + "/ping"), err
	})
	if err != nil {
		return nil, err
	}
	return &NSQD{Process: p, TCPAddr: addrs[0], HTTPAddr: addrs[1]}, nil
}

// NSQLookupd is a running nsqlookupd.
type NSQLookupd struct {
	*Process
	TCPAddr  string
	HTTPAddr string
}

// StartNSQLookupd starts nsqlookupd logging into dir.
func StartNSQLookupd(dir string) (*NSQLookupd, error) {
	bin, err := Binary("nsqlookupd")
	if err != nil {
		return nil, err
	}
	p, addrs, err := startReady("nsqlookupd", 2, dir, func(a []string) (*Process, func() error, error) {
		args := []string{"--tcp-address=" + a[0], "--http-address=" + a[1],
			"--broadcast-address=127.0.0.1", "--log-level=warn"}
		p, err := StartProcess("nsqlookupd", bin, args, dir)
		return p, getOK("http://" + a[1] + "/ping"), err
	})
	if err != nil {
		return nil, err
	}
	return &NSQLookupd{Process: p, TCPAddr: addrs[0], HTTPAddr: addrs[1]}, nil
}

// InfluxDB is a running influxd 1.8 with Flux enabled.
type InfluxDB struct {
	*Process
	URL      string
	confPath string
}

const influxConf = `reporting-disabled = true
bind-address = %q
[meta]
  dir = %q
  logging-enabled = false
[data]
  dir = %q
  wal-dir = %q
  query-log-enabled = false
[coordinator]
  log-queries-after = "0s"
[http]
  enabled = true
  bind-address = %q
  auth-enabled = false
  log-enabled = false
  flux-enabled = true
[logging]
  level = "warn"
[monitor]
  store-enabled = false
[continuous_queries]
  enabled = false
`

// StartInfluxDB starts influxd with its data in dir.
func StartInfluxDB(dir string, databases ...string) (*InfluxDB, error) {
	bin, err := Binary("influxd")
	if err != nil {
		return nil, err
	}
	conf := filepath.Join(dir, "influxdb.conf")
	p, addrs, err := startReady("influxd", 2, dir, func(a []string) (*Process, func() error, error) {
		text := fmt.Sprintf(influxConf, a[0], filepath.Join(dir, "meta"),
			filepath.Join(dir, "data"), filepath.Join(dir, "wal"), a[1])
		if err := writeFile(conf, text); err != nil {
			return nil, nil, err
		}
		p, err := StartProcess("influxd", bin, []string{"run", "-config", conf}, dir)
		return p, getOK("http://" + a[1] + "/ping"), err
	})
	if err != nil {
		return nil, err
	}
	db := &InfluxDB{Process: p, URL: "http://" + addrs[1], confPath: conf}
	for _, name := range databases {
		// Before anything that subscribes (Kapacitor) starts: it then
		// subscribes at once.
		if _, err := db.Query("", fmt.Sprintf("CREATE DATABASE %q", name)); err != nil {
			db.Stop(10 * time.Second)
			return nil, err
		}
	}
	return db, nil
}

// Restart starts a stopped influxd again on the same port and data, as an
// operator would after an outage.
func (db *InfluxDB) Restart() error {
	bin, err := Binary("influxd")
	if err != nil {
		return err
	}
	p, err := StartProcess("influxd", bin, []string{"run", "-config", db.confPath}, db.Dir)
	if err != nil {
		return err
	}
	if err := p.waitReady(30*time.Second, getOK(db.URL+"/ping")); err != nil {
		return err
	}
	db.Process = p
	return nil
}

// Kapacitor is a running kapacitord 1.5 subscribed to an InfluxDB.
type Kapacitor struct {
	*Process
	URL string
}

const kapacitorConf = `hostname = "127.0.0.1"
data_dir = %q
skip-config-overrides = true
[http]
  bind-address = %q
  log-enabled = false
[replay]
  dir = %q
[storage]
  boltdb = %q
[task]
  dir = %q
[load]
  enabled = false
[[influxdb]]
  enabled = true
  name = "default"
  default = true
  urls = [%q]
  subscription-protocol = "http"
  startup-timeout = "30s"
[logging]
  file = "STDERR"
  level = "ERROR"
[reporting]
  enabled = false
[stats]
  enabled = false
[udf]
[udf.functions.mail_latency_hist]
  prog = %[7]q
  args = ["udf", "mail_latency_hist"]
  timeout = "30s"
[udf.functions.mail_spam]
  prog = %[7]q
  args = ["udf", "mail_spam"]
  timeout = "30s"
`

// Cluster is a further [[influxdb]] of kapacitor.conf that tasks write to
// by name with influxDBOut().cluster(name), e.g. the agent's
// influxdb_listener; Kapacitor does not subscribe to it.
type Cluster struct {
	Name, URL          string
	Username, Password string // HTTP basic auth, if set
}

const clusterConf = `[[influxdb]]
  enabled = true
  name = %q
  default = false
  urls = [%q]
  username = %q
  password = %q
  disable-subscriptions = true
  startup-timeout = "30s"
`

// StartKapacitor starts kapacitord with its data in dir, reading influxURL
// (its default cluster, subscribed to) and writing also to extra.
func StartKapacitor(dir, influxURL string, extra ...Cluster) (*Kapacitor, error) {
	bin, err := Binary("kapacitord")
	if err != nil {
		return nil, err
	}
	// The UDF of tickscripts/mail_latency_hist.tick, declared as the
	// tickscripts README tells operators to.
	udf, err := Binary("mailtick")
	if err != nil {
		return nil, err
	}
	conf := filepath.Join(dir, "kapacitor.conf")
	p, addrs, err := startReady("kapacitord", 1, dir, func(a []string) (*Process, func() error, error) {
		text := fmt.Sprintf(kapacitorConf, dir, a[0], filepath.Join(dir, "replay"),
			filepath.Join(dir, "kapacitor.db"), filepath.Join(dir, "tasks"), influxURL, udf)
		for _, c := range extra {
			text += fmt.Sprintf(clusterConf, c.Name, c.URL, c.Username, c.Password)
		}
		if err := writeFile(conf, text); err != nil {
			return nil, nil, err
		}
		p, err := StartProcess("kapacitord", bin, []string{"-config", conf}, dir)
		return p, getOK("http://" + a[0] + "/kapacitor/v1/ping"), err
	})
	if err != nil {
		return nil, err
	}
	return &Kapacitor{Process: p, URL: "http://" + addrs[0]}, nil
}

// Restart starts a stopped kapacitord again with the same configuration,
// port and data (its tasks), as after an upgrade.
func (k *Kapacitor) Restart() error {
	bin, err := Binary("kapacitord")
	if err != nil {
		return err
	}
	p, err := StartProcess("kapacitord", bin, []string{"-config", filepath.Join(k.Dir, "kapacitor.conf")}, k.Dir)
	if err != nil {
		return err
	}
	if err := p.waitReady(30*time.Second, getOK(k.URL+"/kapacitor/v1/ping")); err != nil {
		return err
	}
	k.Process = p
	return nil
}

// Telegraf is a running bin/telegraf.
type Telegraf struct {
	*Process
	ConfigPath string
	Env        []string // given again on restart
	PprofAddr  string   // if set, Telegraf's --pprof-addr (host:port)
}

// StartTelegraf runs bin/telegraf with the given config text, written to
// dir/telegraf.conf. It is ready once the agent logs that it started its
// plugins (Telegraf has no health endpoint unless configured).
func StartTelegraf(dir, config string, env ...string) (*Telegraf, error) {
	return (&Telegraf{Env: env}).Start(dir, config)
}

// Start runs bin/telegraf as StartTelegraf does, with t's settings.
func (t *Telegraf) Start(dir, config string) (*Telegraf, error) {
	t.ConfigPath = filepath.Join(dir, "telegraf.conf")
	if err := writeFile(t.ConfigPath, config); err != nil {
		return nil, err
	}
	t.Process = &Process{Dir: dir}
	if err := t.Restart(); err != nil {
		return nil, err
	}
	return t, nil
}

// Restart starts the agent again with the same config and environment,
// e.g. after a kill; t then refers to the new process.
func (t *Telegraf) Restart() error {
	bin, err := Binary("telegraf")
	if err != nil {
		return err
	}
	var logged int64 // the log is appended to across restarts
	if fi, err := os.Stat(filepath.Join(t.Dir, "telegraf.log")); err == nil {
		logged = fi.Size()
	}
	args := []string{"--config", t.ConfigPath, "--strict-env-handling"}
	if t.PprofAddr != "" {
		args = append(args, "--pprof-addr", t.PprofAddr)
	}
	p, err := StartProcess("telegraf", bin, args, t.Dir, t.Env...)
	if err != nil {
		return err
	}
	started := func() error {
		b, err := os.ReadFile(p.LogPath)
		if err != nil {
			return err
		}
		if !strings.Contains(string(b[min(logged, int64(len(b))):]), "Starting Telegraf") {
			return fmt.Errorf("agent has not logged its start yet")
		}
		return nil
	}
	if err := p.waitReady(30*time.Second, started); err != nil {
		return err
	}
	t.Process = p
	return nil
}

func writeFile(path, text string) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	return os.WriteFile(path, []byte(text), 0o644)
}
