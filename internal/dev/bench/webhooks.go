package bench

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"github.com/mailtick/mailtick/internal/testutil/stack"
)

// WebhookResult is one receiver's figures for one request size.
type WebhookResult struct {
	Result
	PerRequest int
	Clients    int
}

// webhookAgent is the agent settings of the webhook scenarios, printed
// beside the figures. A request to inputs.mailwebhooks waits until its
// events are written: a batch is written as soon as it is full, so the
// batch size is kept below the events the clients have in flight.
const webhookAgent = `[agent]
  interval = "10s"
  flush_interval = "100ms"
  flush_jitter = "0s"
  metric_batch_size = 50
  metric_buffer_limit = 100000
  omit_hostname = true
[[outputs.discard]]
`

const webhookClients = 64

// sendgridJSONv2 is the stock parser's mapping of SendGrid's events, to
// the same keys as the preset.
const sendgridJSONv2 = `
  data_format = "json_v2"
  [[inputs.http_listener_v2.json_v2]]
    measurement_name = "mail_event"
    [[inputs.http_listener_v2.json_v2.object]]
      path = "@this"
      tags = ["event", "category"]
      timestamp_key = "timestamp"
      timestamp_format = "unix"
      included_keys = ["email", "sg_message_id", "response", "reason", "status", "event", "category", "timestamp"]
      [inputs.http_listener_v2.json_v2.object.renames]
        email = "recipient"
        sg_message_id = "message_id"
        response = "smtp_response"
`

// Webhooks POSTs n SendGrid events to bin/telegraf, 100 per request and
// one per request, through inputs.mailwebhooks (signed, answered once
// written), through the stock http_listener_v2 with the mailevents parser,
// and through http_listener_v2 with the stock json_v2 parser (neither
// verifies nor waits for the outputs). mailwebhooks runs once more with
// allow_unsigned, to show what the signature costs.
func Webhooks(ctx context.Context, n int, log io.Writer) ([]WebhookResult, error) {
	dir, err := os.MkdirTemp("", "mailtick-bench-webhooks-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	der, err := x509.MarshalPKIXPublicKey(&key.PublicKey)
	if err != nil {
		return nil, err
	}
	receivers := []struct {
		name, input string
		signed      bool
	}{
		{"mailwebhooks", webhooksInput(fmt.Sprintf("verification_key = %q", base64.StdEncoding.EncodeToString(der))), true},
		{"mailwebhooks unsigned", webhooksInput("allow_unsigned = true"), false},
		{"listener+mailevents", `[[inputs.http_listener_v2]]
  service_address = "127.0.0.1:%d"
  paths = ["/events"]
  data_format = "mailevents"
  preset = "sendgrid"
`, false},
		{"listener+json_v2", `[[inputs.http_listener_v2]]
  service_address = "127.0.0.1:%d"
  paths = ["/events"]` + sendgridJSONv2, false},
	}
	var out []WebhookResult
	for _, per := range []int{100, 1} {
		bodies, err := sendgridBodies(n, per)
		if err != nil {
			return nil, err
		}
		for _, r := range receivers {
			fmt.Fprintf(log, "webhooks: %s, %d events, %d per request\n", r.name, n, per)
			var sign *ecdsa.PrivateKey
			if r.signed {
				sign = key
			}
			res, err := postAll(ctx, filepath.Join(dir, fmt.Sprintf("%s-%d", r.name, per)), r.input, bodies, sign)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", r.name, err)
			}
			res.Name, res.Events = r.name, n
			out = append(out, WebhookResult{Result: res, PerRequest: per, Clients: webhookClients})
		}
	}
	return out, nil
}

// webhooksInput is inputs.mailwebhooks with the sendgrid preset, verified
// as verify says; %d is left for the port.
func webhooksInput(verify string) string {
	return fmt.Sprintf(`[[inputs.mailwebhooks]]
  service_address = "127.0.0.1:%%d"
  max_in_flight = %d
  [[inputs.mailwebhooks.provider]]
    preset = "sendgrid"
    path = "/events"
    %s
`, webhookClients, verify)
}

// sendgridBodies makes n distinct events shaped as SendGrid's delivered
// sample, per to a request.
func sendgridBodies(n, per int) ([][]byte, error) {
	var bodies [][]byte
	start := time.Now().Add(-time.Hour).Unix()
	for i := 0; i < n; i += per {
		var evs []map[string]any
		for j := i; j < i+per && j < n; j++ {
			evs = append(evs, map[string]any{
				"email": fmt.Sprintf("user%d@example.com", j), "timestamp": start + int64(j/100),
				"smtp-id": "<14c5d75ce93.dfd.64b469@ismtpd-555>", "event": "delivered", "category": "cat facts",
				"sg_event_id": "ev" + strconv.Itoa(j), "sg_message_id": "14c5d75ce93.dfd.64b469.filter0001.16648.5515E0B88." + strconv.Itoa(j),
				"response": "250 OK",
			})
		}
		b, err := json.Marshal(evs)
		if err != nil {
			return nil, err
		}
		bodies = append(bodies, b)
	}
	return bodies, nil
}

// postAll runs an agent with input and outputs.discard, POSTs every body
// with webhookClients clients, and measures the agent from the first
// request to the last answer.
func postAll(ctx context.Context, dir, input string, bodies [][]byte, key *ecdsa.PrivateKey) (Result, error) {
	var res Result
	port, err := stack.FreePort()
	if err != nil {
		return res, err
	}
	agent, err := stack.StartTelegraf(dir, webhookAgent+fmt.Sprintf(input, port))
	if err != nil {
		return res, err
	}
	defer agent.Stop(10 * time.Second)
	url := fmt.Sprintf("http://127.0.0.1:%d/events", port)
	reqs := make([]*http.Request, len(bodies))
	for i, b := range bodies {
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, nil)
		if err != nil {
			return res, err
		}
		req.Header.Set("Content-Type", "application/json")
		if key != nil { // signed before the clock starts: the agent's cost is measured
			ts := strconv.FormatInt(time.Now().Unix(), 10)
			digest := sha256.Sum256(append([]byte(ts), b...))
			sig, err := ecdsa.SignASN1(rand.Reader, key, digest[:])
			if err != nil {
				return res, err
			}
			req.Header.Set("X-Twilio-Email-Event-Webhook-Signature", base64.StdEncoding.EncodeToString(sig))
			req.Header.Set("X-Twilio-Email-Event-Webhook-Timestamp", ts)
		}
		reqs[i] = req
	}
	if err := waitListening(ctx, agent, port); err != nil {
		return res, err
	}
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: webhookClients}}
	cpu0, err := cpuTime(agent.Pid())
	if err != nil {
		return res, err
	}
	start := time.Now()
	work := make(chan int)
	errs := make(chan error, webhookClients)
	var wg sync.WaitGroup
	for range webhookClients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range work {
				req := reqs[i].Clone(ctx)
				req.Body = io.NopCloser(bytes.NewReader(bodies[i]))
				req.ContentLength = int64(len(bodies[i]))
				resp, err := client.Do(req)
				if err != nil {
					errs <- err
					return
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode/100 != 2 {
					errs <- fmt.Errorf("request %d answered %s", i, resp.Status)
					return
				}
			}
		}()
	}
	go func() {
		defer close(work)
		for i := range reqs {
			select {
			case work <- i:
			case <-ctx.Done():
				return
			}
		}
	}()
	wg.Wait()
	res.Wall = time.Since(start)
	select {
	case err := <-errs:
		return res, fmt.Errorf("%w; the agent's log ends:\n%s", err, agent.LogTail(10))
	default:
	}
	return res, res.finish(agent.Pid(), cpu0)
}

func waitListening(ctx context.Context, agent *stack.Telegraf, port int) error {
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/events", port))
		if err == nil {
			resp.Body.Close()
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-agent.Exited():
			return fmt.Errorf("agent exited; its log ends:\n%s", agent.LogTail(20))
		case <-time.After(20 * time.Millisecond):
		}
	}
	return fmt.Errorf("agent did not listen on %d in 30s", port)
}

// PrintWebhooks writes the webhook figures with their settings.
func PrintWebhooks(w io.Writer, results []WebhookResult) {
	fmt.Fprintf(w, "\nWebhooks: SendGrid-shaped events POSTed on loopback by %d clients into outputs.discard\n", webhookClients)
	fmt.Fprintf(w, "(agent: flush_interval 100ms, metric_batch_size 50; mailwebhooks verifies ECDSA and answers once written)\n")
	fmt.Fprintf(w, "%-22s %8s %9s %8s %8s %14s %14s %8s\n", "receiver", "per req", "events", "wall s", "CPU s", "events/CPU-s", "events/wall-s", "RSS MB")
	for _, r := range results {
		fmt.Fprintf(w, "%-22s %8d %9d %8.2f %8.2f %14.0f %14.0f %8d\n", r.Name, r.PerRequest, r.Events,
			r.Wall.Seconds(), r.CPU.Seconds(), r.PerCPUSecond(), r.PerWallSecond(), r.PeakRSS>>20)
	}
}
