// Package mailwebhooks receives e-mail providers' event webhooks and turns
// them into mail_event metrics with the mailevents mapping: one path per
// provider, each request verified as its provider signs it, and answered
// 2xx only once the outputs accepted its events.
package mailwebhooks

import (
	"context"
	_ "embed"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/influxdata/telegraf"
	"github.com/influxdata/telegraf/config"
	"github.com/influxdata/telegraf/plugins/common/tls"
	"github.com/influxdata/telegraf/plugins/inputs"
	"github.com/influxdata/telegraf/selfstat"

	"github.com/mailtick/mailtick/plugins/common/tracking"

	"github.com/mailtick/mailtick/plugins/common/mailevent"
)

//go:embed sample.conf
var sampleConfig string

// MailWebhooks is the HTTP(S) receiver.
type MailWebhooks struct {
	ServiceAddress string          `toml:"service_address"`
	ReadTimeout    config.Duration `toml:"read_timeout"`
	WriteTimeout   config.Duration `toml:"write_timeout"`
	MaxBodySize    config.Size     `toml:"max_body_size"`
	MaxInFlight    int             `toml:"max_in_flight"`
	AckTimeout     config.Duration `toml:"ack_timeout"`
	Providers      []*Provider     `toml:"provider"`
	tls.ServerConfig
	Log telegraf.Logger `toml:"-"`

	groups *tracking.Window
	acks   acks
	slots  chan struct{}
	server *http.Server
	addr   net.Addr
	wg     sync.WaitGroup
	cancel context.CancelFunc
}

// Provider is one webhook: a path, how its requests are verified, and the
// mapping of its events (a preset, and mapping options beside it).
type Provider struct {
	Name                 string           `toml:"name"`
	Path                 string           `toml:"path"`
	Username             string           `toml:"username"`
	Password             config.Secret    `toml:"password"`
	SigningKey           config.Secret    `toml:"signing_key"`
	VerificationKey      string           `toml:"verification_key"`
	WebhookURL           string           `toml:"webhook_url"`
	ReplayWindow         *config.Duration `toml:"replay_window"` // nil: 10m; 0: off
	SNSCertificates      []string         `toml:"sns_certificates"`
	SNSCertificateURLs   []string         `toml:"sns_certificate_urls"`
	SNSTopicARNs         []string         `toml:"sns_topic_arns"`
	SNSSignatureVersions []string         `toml:"sns_signature_versions"`
	SNSSubscribe         string           `toml:"sns_subscribe"`
	SNSSubscribeURLs     []string         `toml:"sns_subscribe_urls"`
	AllowUnsigned        bool             `toml:"allow_unsigned"`
	mailevent.Mapping

	dec     *mailevent.Decoder
	scratch sync.Pool
	verify  verifier
	sns     *snsVerifier
	st      *stats
}

const (
	defaultReplayWindow = 10 * time.Minute
	maxHeaderBytes      = 64 << 10 // providers send a few hundred bytes of headers
)

func (*MailWebhooks) SampleConfig() string { return sampleConfig }

// Init checks every provider and builds its decoder and verifier; errors
// name the provider, the option and the bad value.
func (w *MailWebhooks) Init() error {
	if len(w.Providers) == 0 {
		return fmt.Errorf("no %q configured: add [[inputs.mailwebhooks.provider]] with a preset", "provider")
	}
	if w.ReadTimeout <= 0 {
		return fmt.Errorf("invalid %q value %q: must be positive (it bounds the headers and body of each request)", "read_timeout", time.Duration(w.ReadTimeout))
	}
	if w.MaxInFlight <= 0 {
		return fmt.Errorf("invalid %q value %d: must be positive", "max_in_flight", w.MaxInFlight)
	}
	if w.MaxBodySize <= 0 {
		return fmt.Errorf("invalid %q value %d: must be positive", "max_body_size", w.MaxBodySize)
	}
	if w.AckTimeout <= 0 {
		return fmt.Errorf("invalid %q value %s: must be positive", "ack_timeout", time.Duration(w.AckTimeout))
	}
	if w.WriteTimeout > 0 && w.WriteTimeout <= w.AckTimeout {
		return fmt.Errorf("invalid %q value %s: must exceed ack_timeout %s, or the answer cannot be written",
			"write_timeout", time.Duration(w.WriteTimeout), time.Duration(w.AckTimeout))
	}
	paths := make(map[string]bool)
	for i, p := range w.Providers {
		if err := p.init(w.Log); err != nil {
			return fmt.Errorf("provider %d (%s): %w", i+1, p.Name, err)
		}
		if paths[p.Path] {
			return fmt.Errorf("provider %d (%s): invalid %q value %q: another provider has it", i+1, p.Name, "path", p.Path)
		}
		paths[p.Path] = true
	}
	return nil
}

func (p *Provider) init(log telegraf.Logger) error {
	p.Mapping = withDefaults(p.Mapping)
	if p.Name == "" {
		p.Name = p.Preset
	}
	if p.Name == "" {
		return fmt.Errorf("set %q or %q", "preset", "name")
	}
	if p.Path == "" {
		p.Path = "/" + p.Name
	}
	if !strings.HasPrefix(p.Path, "/") {
		return fmt.Errorf("invalid %q value %q: must start with /", "path", p.Path)
	}
	// What was read (at most max_body_size) is decoded whole: one limit,
	// not a smaller one found only after the body was read and verified.
	if p.MaxMessageSize != 0 {
		return fmt.Errorf("invalid %q value %d: a body is decoded whole, set %q instead", "max_message_size", p.MaxMessageSize, "max_body_size")
	}
	p.RefuseDuplicateKeys = true
	dec, err := p.Mapping.NewDecoder()
	if err != nil {
		return err
	}
	p.dec = dec
	p.scratch.New = func() any { return mailevent.NewScratch() }
	if err := p.initVerify(log); err != nil {
		return err
	}
	p.st = newStats(p.Name, p.Path)
	return nil
}

// withDefaults fills what a provider table left out with the mapping's
// defaults (TOML builds the tables from zero values), all but
// max_message_size: a body is decoded whole, bounded by max_body_size, and
// init refuses the option.
func withDefaults(m mailevent.Mapping) mailevent.Mapping {
	size := m.MaxMessageSize
	m = m.WithDefaults()
	m.MaxMessageSize = size
	return m
}

// initVerify chooses what to check of each request: what the provider
// signs, plus basic auth when username is set. A provider with nothing to
// check is refused unless allow_unsigned says so.
func (p *Provider) initVerify(log telegraf.Logger) error {
	window := defaultReplayWindow
	if p.ReplayWindow != nil {
		window = time.Duration(*p.ReplayWindow)
	}
	if window < 0 {
		return fmt.Errorf("invalid %q value %q: must not be negative (0 turns the check off)", "replay_window", window)
	}
	rp := newReplay(window)
	var checks []verifier
	if p.Username != "" {
		pass, err := p.Password.Get()
		if err != nil {
			return fmt.Errorf("password: %w", err)
		}
		checks = append(checks, basicAuth(p.Username, []byte(pass.String())))
		pass.Destroy()
	}
	key := func(what string) ([]byte, error) {
		if p.SigningKey.Empty() {
			return nil, fmt.Errorf("preset %q: set %q, the provider's %s (or allow_unsigned = true)", p.Preset, "signing_key", what)
		}
		s, err := p.SigningKey.Get()
		if err != nil {
			return nil, fmt.Errorf("signing_key: %w", err)
		}
		defer s.Destroy()
		return []byte(s.String()), nil
	}
	signed := true
	switch {
	case p.Preset == "ses_sns": // envelopes are read even unsigned
		v, err := newSNSVerifier(p, rp, log)
		if err != nil {
			return err
		}
		p.sns = v
		checks = append(checks, v.verifier())
	case p.AllowUnsigned:
	case p.Preset == "mailgun":
		k, err := key("HTTP webhook signing key")
		if err != nil {
			return err
		}
		checks = append(checks, mailgun(k, rp))
	case p.Preset == "sendgrid":
		if p.VerificationKey == "" {
			return fmt.Errorf("preset %q: set %q, the signed event webhook's public key (or allow_unsigned = true)", p.Preset, "verification_key")
		}
		pub, err := parseECDSAKey(p.VerificationKey)
		if err != nil {
			return fmt.Errorf("invalid %q value: %w", "verification_key", err)
		}
		checks = append(checks, sendgrid(pub, rp))
	case p.Preset == "mandrill":
		k, err := key("webhook key")
		if err != nil {
			return err
		}
		if p.WebhookURL == "" {
			return fmt.Errorf("preset %q: set %q, the URL exactly as configured in Mandrill (it is signed)", p.Preset, "webhook_url")
		}
		checks = append(checks, mandrill(k, p.WebhookURL))
	default:
		signed = p.Username != ""
	}
	if !signed && !p.AllowUnsigned {
		return fmt.Errorf("preset %q is verified by basic auth: set %q and %q (or allow_unsigned = true)", p.Preset, "username", "password")
	}
	p.verify = all(checks...)
	return nil
}

// Start listens and serves.
func (w *MailWebhooks) Start(acc telegraf.Accumulator) error {
	w.groups = tracking.New(acc, w.MaxInFlight)
	w.acks = acks{waiting: make(map[telegraf.TrackingID]chan bool), early: make(map[telegraf.TrackingID]bool)}
	w.slots = make(chan struct{}, w.MaxInFlight)
	tlsConf, err := w.ServerConfig.TLSConfig()
	if err != nil {
		return err
	}
	mux := http.NewServeMux()
	for _, p := range w.Providers {
		mux.Handle(p.Path, w.handler(p))
	}
	ln, err := net.Listen("tcp", w.ServiceAddress)
	if err != nil {
		return fmt.Errorf("listening on service_address %q: %w", w.ServiceAddress, err)
	}
	w.addr = ln.Addr()
	// read_timeout bounds the headers, and the whole request from its
	// first byte, body included: a slow sender holds a slot no longer.
	w.server = &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: time.Duration(w.ReadTimeout),
		ReadTimeout:       time.Duration(w.ReadTimeout),
		WriteTimeout:      time.Duration(w.WriteTimeout),
		MaxHeaderBytes:    maxHeaderBytes,
		TLSConfig:         tlsConf,
	}
	ctx, cancel := context.WithCancel(context.Background())
	w.cancel = cancel
	w.wg.Add(2)
	go func() {
		defer w.wg.Done()
		var err error
		if tlsConf != nil {
			err = w.server.ServeTLS(ln, "", "")
		} else {
			err = w.server.Serve(ln)
		}
		if err != nil && !errors.Is(err, http.ErrServerClosed) {
			w.Log.Errorf("Serving %s: %v", w.ServiceAddress, err)
		}
	}()
	go func() {
		defer w.wg.Done()
		w.groups.Run(ctx, func(info telegraf.DeliveryInfo) { w.acks.done(info.ID(), info.Delivered()) })
	}()
	scheme := "http"
	if tlsConf != nil {
		scheme = "https"
	}
	for _, p := range w.Providers {
		w.Log.Infof("Receiving %s webhooks on %s://%s%s", p.Name, scheme, w.addr, p.Path)
	}
	return nil
}

// Gather does nothing: requests bring the events.
func (*MailWebhooks) Gather(telegraf.Accumulator) error { return nil }

// Stop answers the requests being served, then stops.
func (w *MailWebhooks) Stop() {
	ctx, cancel := context.WithTimeout(context.Background(), time.Duration(w.AckTimeout)+time.Second)
	defer cancel()
	if err := w.server.Shutdown(ctx); err != nil {
		w.Log.Errorf("Stopping: %v", err)
	}
	w.cancel()
	w.wg.Wait()
}

// handler serves one provider's path.
func (w *MailWebhooks) handler(p *Provider) http.HandlerFunc {
	return func(rw http.ResponseWriter, r *http.Request) {
		start := time.Now()
		p.st.requests.Incr(1)
		code, msg := w.serve(p, rw, r, start)
		p.st.latency.Set(time.Since(start).Nanoseconds())
		if code >= 500 {
			p.st.failed.Incr(1)
		}
		http.Error(rw, msg, code)
	}
}

// serve handles one request and returns the status and text to answer.
// What the headers tell is checked before a max_in_flight slot is taken
// and the body read: a sender without credentials never holds a slot.
func (w *MailWebhooks) serve(p *Provider, rw http.ResponseWriter, r *http.Request, now time.Time) (code int, msg string) {
	switch r.Method {
	case http.MethodPost:
	case http.MethodHead, http.MethodGet: // Mandrill checks the URL before saving it
		return http.StatusOK, "ok"
	default:
		rw.Header().Set("Allow", "POST, HEAD, GET")
		return http.StatusMethodNotAllowed, "POST events here"
	}
	// Refused before its body is read, a request's connection is closed:
	// net/http would otherwise read up to 256 KiB of that body first,
	// however slowly it comes.
	if err := p.verify.head(r, now); err != nil {
		rw.Header().Set("Connection", "close")
		return w.refuse(p, rw, r, err)
	}
	select {
	case w.slots <- struct{}{}:
		defer func() { <-w.slots }()
	default:
		rw.Header().Set("Connection", "close")
		rw.Header().Set("Retry-After", "1")
		return http.StatusServiceUnavailable, "busy: max_in_flight requests are being served"
	}
	body, err := readBody(rw, r, int64(w.MaxBodySize))
	if err != nil {
		p.st.bodiesRejected.Incr(1)
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return http.StatusRequestEntityTooLarge, fmt.Sprintf("body exceeds max_body_size %d", w.MaxBodySize)
		}
		return http.StatusBadRequest, "reading the body: " + err.Error()
	}
	body, release, err := p.verify.body(r, body, now)
	if err != nil {
		return w.refuse(p, rw, r, err)
	}
	defer func() {
		if code/100 != 2 && release != nil {
			release() // the provider's retry is not a replay
		}
	}()
	if body == nil { // an SNS subscription message, handled
		return http.StatusOK, "ok"
	}

	sc := p.scratch.Get().(*mailevent.Scratch)
	out := p.dec.Decode(sc, body, now)
	p.scratch.Put(sc)
	pings := 0
	for _, b := range out.Bad {
		p.st.refused(b.Reason())
		if b.Reason() == mailevent.ReasonNoEvents {
			pings++
		}
	}
	if len(out.Bad) > 0 && pings < len(out.Bad) {
		first := out.Bad[0]
		w.Log.Warnf("%s: refused %d of %d events of a request (the first: %s: %v)", p.Name, len(out.Bad), out.Events, first.Reason(), first.Err())
	}
	if len(out.Metrics) == 0 {
		if pings == len(out.Bad) { // SparkPost's test batch: [{"msys":{}}]
			return http.StatusOK, "no events"
		}
		p.st.bodiesRejected.Incr(1)
		return http.StatusBadRequest, fmt.Sprintf("no event could be read: %s: %v", out.Bad[0].Reason(), out.Bad[0].Err())
	}
	p.st.events.Incr(int64(len(out.Metrics)))
	// A group stays in Telegraf's buffer until the outputs take it, even
	// once its request gave up: max_in_flight bounds those groups too, or
	// Telegraf would panic when they are all delivered at once.
	id, ok := w.groups.TryAdd(out.Metrics)
	if !ok {
		rw.Header().Set("Retry-After", "1")
		return http.StatusServiceUnavailable, "busy: max_in_flight event groups of earlier requests still wait for the outputs"
	}
	ack := w.acks.wait(id)
	timer := time.NewTimer(time.Duration(w.AckTimeout))
	defer timer.Stop()
	select {
	case ok := <-ack:
		if !ok {
			return http.StatusServiceUnavailable, "the outputs refused the events: send them again"
		}
	case <-timer.C:
		w.acks.abandon(id)
		return http.StatusServiceUnavailable, "the outputs did not accept the events within ack_timeout: send them again"
	case <-r.Context().Done():
		w.acks.abandon(id)
		return http.StatusServiceUnavailable, "request canceled"
	}
	return http.StatusOK, fmt.Sprintf("ok: %d events", len(out.Metrics))
}

// refuse answers a request its verifier refused, counted; the answer says
// no more than the status (the log at debug level says why).
func (w *MailWebhooks) refuse(p *Provider, rw http.ResponseWriter, r *http.Request, err error) (int, string) {
	w.Log.Debugf("%s: refused a request from %s: %v", p.Name, r.RemoteAddr, err)
	switch {
	case errors.Is(err, errMalformed):
		p.st.bodiesRejected.Incr(1)
		return http.StatusBadRequest, err.Error()
	case errors.Is(err, errFetchBusy):
		rw.Header().Set("Retry-After", "1")
		return http.StatusServiceUnavailable, errFetchBusy.Error()
	}
	p.st.signatureFailures.Incr(1)
	switch {
	case errors.Is(err, errNoCredentials):
		if p.Username != "" {
			rw.Header().Set("WWW-Authenticate", `Basic realm="mailtick"`)
		}
		return http.StatusUnauthorized, "unauthorized"
	case errors.Is(err, errCertificate):
		return http.StatusBadGateway, errCertificate.Error()
	}
	return http.StatusForbidden, "forbidden"
}

func readBody(rw http.ResponseWriter, r *http.Request, limit int64) ([]byte, error) {
	body := http.MaxBytesReader(rw, r.Body, limit)
	defer body.Close()
	return io.ReadAll(body)
}

// acks hands each request the outputs' verdict on its events.
type acks struct {
	mu      sync.Mutex
	waiting map[telegraf.TrackingID]chan bool // nil: the request gave up
	early   map[telegraf.TrackingID]bool      // verdicts that came before their request waited
}

func (a *acks) wait(id telegraf.TrackingID) <-chan bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	ch := make(chan bool, 1)
	if ok, found := a.early[id]; found {
		delete(a.early, id)
		ch <- ok
		return ch
	}
	a.waiting[id] = ch
	return ch
}

func (a *acks) done(id telegraf.TrackingID, ok bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	ch, found := a.waiting[id]
	if !found {
		a.early[id] = ok
		return
	}
	delete(a.waiting, id)
	if ch != nil {
		ch <- ok
	}
}

func (a *acks) abandon(id telegraf.TrackingID) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if _, found := a.waiting[id]; found {
		a.waiting[id] = nil
	}
}

// stats are one provider's self-metrics, published by inputs.internal as
// internal_mailwebhooks (tags provider and path).
type stats struct {
	requests          selfstat.Stat
	events            selfstat.Stat
	signatureFailures selfstat.Stat
	bodiesRejected    selfstat.Stat
	failed            selfstat.Stat
	latency           selfstat.Stat
	mu                sync.Mutex
	tags              map[string]string
	eventsRefused     map[string]selfstat.Stat
}

func newStats(name, path string) *stats {
	tags := map[string]string{"provider": name, "path": path}
	return &stats{
		requests:          selfstat.Register("mailwebhooks", "requests_received", tags),
		events:            selfstat.Register("mailwebhooks", "events_received", tags),
		signatureFailures: selfstat.Register("mailwebhooks", "signature_failures", tags),
		bodiesRejected:    selfstat.Register("mailwebhooks", "bodies_rejected", tags),
		failed:            selfstat.Register("mailwebhooks", "responses_5xx", tags),
		latency:           selfstat.RegisterTiming("mailwebhooks", "request_time_ns", tags),
		tags:              tags,
		eventsRefused:     make(map[string]selfstat.Stat),
	}
}

// refused counts an event that could not become a metric, by reason
// (internal_mailwebhooks_refused).
func (s *stats) refused(reason string) {
	s.mu.Lock()
	st, ok := s.eventsRefused[reason]
	if !ok {
		tags := map[string]string{"reason": reason}
		for k, v := range s.tags {
			tags[k] = v
		}
		st = selfstat.Register("mailwebhooks_refused", "events", tags)
		s.eventsRefused[reason] = st
	}
	s.mu.Unlock()
	st.Incr(1)
}

func init() {
	inputs.Add("mailwebhooks", func() telegraf.Input {
		return &MailWebhooks{
			ServiceAddress: ":8095",
			ReadTimeout:    config.Duration(10 * time.Second),
			WriteTimeout:   config.Duration(30 * time.Second),
			MaxBodySize:    config.Size(8 << 20),
			MaxInFlight:    64,
			AckTimeout:     config.Duration(10 * time.Second),
		}
	})
}
