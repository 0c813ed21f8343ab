package bench

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/mailtick/mailtick/internal/testutil/stack"
)

// OutageResult is what one agent did in the outage scenario.
type OutageResult struct {
	Name    string
	Sent    int           // points the agent accepted during the outage
	Arrived int64         // points central after catching up
	CatchUp time.Duration // central back up to the last point arriving
	PeakRSS int64         // of the restarted agent, while catching up
}

// Outage runs the central-path scenario for stock outputs.influxdb with
// Telegraf's disk buffer and for outputs.rollupfwd: the central InfluxDB
// goes down, n points reach each agent, each agent is killed (SIGKILL) and
// restarted while central is still down, then central comes back. It
// reports points lost and time to catch up.
func Outage(ctx context.Context, n int, log io.Writer) ([]OutageResult, error) {
	dir, err := os.MkdirTemp("", "mailtick-outage-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	central, err := stack.StartInfluxDB(filepath.Join(dir, "central"), "stock", "fwd")
	if err != nil {
		return nil, err
	}
	defer central.Stop(10 * time.Second)

	type agent struct {
		name, db string
		conf     func(listen string) string
		proc     *stack.Telegraf
		listen   string
		res      OutageResult
	}
	head := `[agent]
  flush_interval = "1s"
  metric_batch_size = 1000
  metric_buffer_limit = %d
  omit_hostname = true
%s
[[inputs.influxdb_listener]]
  service_address = %q
`
	agents := []*agent{
		{name: "stock influxdb + disk buffer", db: "stock", conf: func(listen string) string {
			return fmt.Sprintf(head, 2*n, fmt.Sprintf("  buffer_strategy = \"disk\"\n  buffer_directory = %q\n", filepath.Join(dir, "stock-buffer")), listen) +
				fmt.Sprintf("[[outputs.influxdb]]\n  urls = [%q]\n  database = \"stock\"\n  skip_database_creation = true\n", central.URL)
		}},
		{name: "rollupfwd", db: "fwd", conf: func(listen string) string {
			return fmt.Sprintf(head, 2*n, "", listen) + fmt.Sprintf(`[[outputs.rollupfwd]]
  urls = [%q]
  database = "fwd"
  spool_dir = %q
  retry_min = "100ms"
  retry_max = "1s"
  allow_tags = ["dc", "direction"]
  allow_fields = ["count"]
`, central.URL, filepath.Join(dir, "fwd-spool"))
		}},
	}
	for _, a := range agents {
		port, err := stack.FreePort()
		if err != nil {
			return nil, err
		}
		a.listen = fmt.Sprintf("127.0.0.1:%d", port)
		a.res.Name = a.name
		if a.proc, err = stack.StartTelegraf(filepath.Join(dir, a.db), a.conf(a.listen)); err != nil {
			return nil, err
		}
		defer func(a *agent) { a.proc.Stop(10 * time.Second) }(a)
	}

	fmt.Fprintf(log, "outage: central down; %d points to each agent\n", n)
	if err := central.Stop(10 * time.Second); err != nil {
		return nil, err
	}
	for _, a := range agents {
		for i := 0; i < n; i += 5000 {
			var body strings.Builder
			for j := i; j < min(i+5000, n); j++ {
				fmt.Fprintf(&body, "mail_counts,dc=dc1,direction=outbound count=%di %d\n", j, int64(1795356000000000000)+int64(j)*1000)
			}
			resp, err := http.Post("http://"+a.listen+"/write?precision=ns", "text/plain", strings.NewReader(body.String()))
			if err != nil {
				return nil, err
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusNoContent {
				return nil, fmt.Errorf("%s refused points during the outage: %s", a.name, resp.Status)
			}
			a.res.Sent = min(i+5000, n)
		}
	}
	time.Sleep(3 * time.Second) // both agents flush (and fail) a few times

	fmt.Fprintf(log, "outage: SIGKILL both agents, restart them, central still down\n")
	for _, a := range agents {
		if err := a.proc.Kill(); err != nil {
			return nil, err
		}
		if err := a.proc.Restart(); err != nil {
			return nil, err
		}
	}
	time.Sleep(2 * time.Second)

	fmt.Fprintf(log, "outage: central back\n")
	if err := central.Restart(); err != nil {
		return nil, err
	}
	start := time.Now()
	lastChange := start
	for time.Since(lastChange) < 10*time.Second {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		done := true
		for _, a := range agents {
			c, _ := central.Count(a.db, "SELECT count(count) FROM mail_counts")
			if c != a.res.Arrived {
				a.res.Arrived, a.res.CatchUp, lastChange = c, time.Since(start), time.Now()
			}
			if rss, err := procStatus(a.proc.Pid(), "VmHWM"); err == nil {
				a.res.PeakRSS = rss
			}
			done = done && c >= int64(n)
		}
		if done {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	results := make([]OutageResult, len(agents))
	for i, a := range agents {
		results[i] = a.res
	}
	return results, nil
}

// PrintOutage writes the scenario's table.
func PrintOutage(w io.Writer, results []OutageResult) {
	fmt.Fprintf(w, "\n%-30s %9s %9s %9s %12s %10s\n", "central path (outage + kill)", "sent", "arrived", "lost", "catch-up s", "peak RSS")
	for _, r := range results {
		fmt.Fprintf(w, "%-30s %9d %9d %9d %12.2f %7d MB\n", r.Name, r.Sent, r.Arrived, int64(r.Sent)-r.Arrived, r.CatchUp.Seconds(), r.PeakRSS>>20)
	}
}
