package alert

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Options are the dispatcher's collaborators; every one is optional.
type Options struct {
	Clock  func() time.Time
	Client *http.Client
	Logger *slog.Logger
	// Getenv reads the channels' URLs and keys; os.Getenv when nil.
	Getenv func(string) string
	// RetryBase is the first retry's delay before jitter (default 1s);
	// each retry doubles it, up to RetryMax (default 1m).
	RetryBase, RetryMax time.Duration
}

// Dispatcher sends alerts to the channels their routes name: one queue
// and one sender per channel, so that a slow or dead channel delays no
// other. Run delivers; Send only enqueues, and never blocks.
type Dispatcher struct {
	cfg      Config
	clock    func() time.Time
	client   *http.Client
	log      *slog.Logger
	base     time.Duration
	max      time.Duration
	channels []*channel
	byName   map[string]*channel

	mu   sync.Mutex
	seen map[string]time.Time // dedupe key → when it was last sent

	delivered, failed, dropped *prometheus.CounterVec
	retries                    *prometheus.CounterVec
	up                         *prometheus.GaugeVec
}

type channel struct {
	cfg    Channel
	target target
	queue  chan Alert
	// tokens is the rate limit: a bucket of RatePerMinute, refilled
	// continuously.
	mu     sync.Mutex
	tokens float64
	last   time.Time
	down   bool
}

// queueSize bounds the alerts waiting for one channel.
const queueSize = 256

// New builds the dispatcher of cfg (filled and valid), reading each
// channel's URL and key from the environment now: a channel that could
// not deliver is refused at start.
func New(cfg Config, opt Options) (*Dispatcher, error) {
	d := &Dispatcher{
		cfg: cfg, clock: opt.Clock, client: opt.Client, log: opt.Logger,
		base: opt.RetryBase, max: opt.RetryMax,
		byName: map[string]*channel{}, seen: map[string]time.Time{},
		delivered: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "agentgov_alerts_delivered_total", Help: "Alerts a channel accepted, by channel and kind."}, []string{"channel", "kind"}),
		failed:    prometheus.NewCounterVec(prometheus.CounterOpts{Name: "agentgov_alerts_failed_total", Help: "Alerts a channel never accepted, retries exhausted or refused outright, by channel and kind."}, []string{"channel", "kind"}),
		dropped:   prometheus.NewCounterVec(prometheus.CounterOpts{Name: "agentgov_alerts_dropped_total", Help: "Alerts not sent, by channel and reason: deduplicated, rate_limited, queue_full."}, []string{"channel", "reason"}),
		retries:   prometheus.NewCounterVec(prometheus.CounterOpts{Name: "agentgov_alert_retries_total", Help: "Delivery attempts retried, by channel."}, []string{"channel"}),
		up:        prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "agentgov_alert_channel_up", Help: "1 while a channel's last delivery succeeded (or none was tried), 0 once one failed for good."}, []string{"channel"}),
	}
	if d.clock == nil {
		d.clock = time.Now
	}
	if d.client == nil {
		d.client = &http.Client{Timeout: 10 * time.Second}
	}
	if d.log == nil {
		d.log = slog.Default()
	}
	if d.base == 0 {
		d.base = time.Second
	}
	if d.max == 0 {
		d.max = time.Minute
	}
	getenv := opt.Getenv
	if getenv == nil {
		getenv = lookupEnv
	}
	for _, c := range cfg.Channels {
		t, err := resolve(c, getenv)
		if err != nil {
			return nil, err
		}
		ch := &channel{cfg: c, target: t, queue: make(chan Alert, queueSize), tokens: float64(c.RatePerMinute)}
		d.channels = append(d.channels, ch)
		d.byName[c.Name] = ch
		d.up.WithLabelValues(c.Name).Set(1)
	}
	return d, nil
}

// Describe implements prometheus.Collector.
func (d *Dispatcher) Describe(ch chan<- *prometheus.Desc) {
	for _, c := range d.collectors() {
		c.Describe(ch)
	}
}

// Collect implements prometheus.Collector.
func (d *Dispatcher) Collect(ch chan<- prometheus.Metric) {
	for _, c := range d.collectors() {
		c.Collect(ch)
	}
}

func (d *Dispatcher) collectors() []prometheus.Collector {
	return []prometheus.Collector{d.delivered, d.failed, d.dropped, d.retries, d.up}
}

// Send routes a to the channels its kind goes to: once per dedupe key
// within the dedupe window, within each channel's rate. It never blocks.
func (d *Dispatcher) Send(a Alert) {
	if a.At.IsZero() {
		a.At = d.clock()
	}
	if a.DedupeKey == "" {
		a.DedupeKey = a.Kind + ":" + a.Summary
	}
	targets := d.route(a.Kind)
	if len(targets) == 0 {
		return
	}
	if d.duplicate(a.DedupeKey, a.At) {
		for _, c := range targets {
			d.dropped.WithLabelValues(c.cfg.Name, "deduplicated").Inc()
		}
		return
	}
	for _, c := range targets {
		d.enqueue(c, a)
	}
}

func (d *Dispatcher) route(kind string) []*channel {
	var out []*channel
	for _, r := range d.cfg.Routes {
		if !slices.Contains(r.Kinds, kind) {
			continue
		}
		for _, n := range r.Channels {
			if c := d.byName[n]; c != nil && !slices.Contains(out, c) {
				out = append(out, c)
			}
		}
	}
	return out
}

// duplicate reports whether key was sent within the dedupe window, and
// remembers it if not.
func (d *Dispatcher) duplicate(key string, now time.Time) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	if at, ok := d.seen[key]; ok && now.Sub(at) < d.cfg.DedupeWindow {
		return true
	}
	d.seen[key] = now
	if len(d.seen) > 10000 {
		for k, at := range d.seen {
			if now.Sub(at) >= d.cfg.DedupeWindow {
				delete(d.seen, k)
			}
		}
	}
	return false
}

func (d *Dispatcher) enqueue(c *channel, a Alert) {
	if !c.take(a.At) {
		d.dropped.WithLabelValues(c.cfg.Name, "rate_limited").Inc()
		return
	}
	select {
	case c.queue <- a:
	default:
		d.dropped.WithLabelValues(c.cfg.Name, "queue_full").Inc()
	}
}

// take spends one token of the channel's rate, if it has one.
func (c *channel) take(now time.Time) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	rate := float64(c.cfg.RatePerMinute)
	if !c.last.IsZero() {
		c.tokens = min(rate, c.tokens+now.Sub(c.last).Minutes()*rate)
	}
	c.last = now
	if c.tokens < 1 {
		return false
	}
	c.tokens--
	return true
}

// Run delivers until ctx ends: a sender per channel, and its heartbeat.
func (d *Dispatcher) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	for _, c := range d.channels {
		wg.Add(1)
		go func() {
			defer wg.Done()
			d.sender(ctx, c)
		}()
		if c.cfg.Heartbeat > 0 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				d.heartbeat(ctx, c)
			}()
		}
	}
	wg.Wait()
	return nil
}

func (d *Dispatcher) heartbeat(ctx context.Context, c *channel) {
	t := time.NewTicker(c.cfg.Heartbeat)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			now := d.clock()
			// A heartbeat is neither deduplicated nor counted against the
			// rate: it is what tells the receiver the channel is alive.
			select {
			case c.queue <- Alert{Kind: "heartbeat", Severity: "info", Summary: "agentgov is alive and its alerts reach " + c.cfg.Name,
				DedupeKey: "heartbeat:" + c.cfg.Name, At: now}:
			default:
			}
		}
	}
}

func (d *Dispatcher) sender(ctx context.Context, c *channel) {
	for {
		select {
		case <-ctx.Done():
			return
		case a := <-c.queue:
			err := d.deliver(ctx, c, a)
			switch {
			case err == nil:
				d.delivered.WithLabelValues(c.cfg.Name, a.Kind).Inc()
				d.setUp(c, true)
			case ctx.Err() != nil:
				return
			default:
				d.failed.WithLabelValues(c.cfg.Name, a.Kind).Inc()
				d.log.Error("alert not delivered", "channel", c.cfg.Name, "kind", a.Kind, "err", err)
				if d.setUp(c, false) {
					d.channelDown(c, a, err)
				}
			}
		}
	}
}

// setUp records whether c delivers; it reports whether c just went down.
func (d *Dispatcher) setUp(c *channel, up bool) bool {
	c.mu.Lock()
	wasDown := c.down
	c.down = !up
	c.mu.Unlock()
	if up {
		d.up.WithLabelValues(c.cfg.Name).Set(1)
		return false
	}
	d.up.WithLabelValues(c.cfg.Name).Set(0)
	return !wasDown
}

// channelDown tells the other channels that c cannot deliver: a silent
// channel is itself an alert. It goes to the routes of channel_down, or,
// when none names it, to every other channel.
func (d *Dispatcher) channelDown(c *channel, lost Alert, err error) {
	a := Alert{Kind: "channel_down", Severity: "high",
		Summary:   fmt.Sprintf("alert channel %s (%s) cannot deliver: %v; lost a %s alert: %s", c.cfg.Name, c.cfg.Type, err, lost.Kind, lost.Summary),
		Details:   map[string]any{"channel": c.cfg.Name, "type": c.cfg.Type, "lost_kind": lost.Kind},
		DedupeKey: "channel_down:" + c.cfg.Name, At: d.clock()}
	targets := d.route("channel_down")
	if len(targets) == 0 {
		targets = d.channels
	}
	if d.duplicate(a.DedupeKey, a.At) {
		return
	}
	for _, o := range targets {
		if o != c {
			d.enqueue(o, a)
		}
	}
}

// errPermanent marks an answer retrying will not change.
var errPermanent = errors.New("refused")

// deliver posts a to c, retrying network errors, 429 and 5xx with
// exponential backoff and jitter, for at most GiveUpAfter.
func (d *Dispatcher) deliver(ctx context.Context, c *channel, a Alert) error {
	b, err := body(c.cfg.Type, c.target, a)
	if err != nil {
		return fmt.Errorf("encode: %w", err)
	}
	deadline := time.Now().Add(d.cfg.GiveUpAfter)
	delay := d.base
	for attempt := 1; ; attempt++ {
		err = d.post(ctx, c, b)
		if err == nil || errors.Is(err, errPermanent) {
			return err
		}
		// Jitter: half the delay and a random part of the other half, so
		// that replicas do not retry in step and the first retry still
		// comes within a second.
		wait := delay/2 + rand.N(delay/2+1)
		if time.Now().Add(wait).After(deadline) {
			return fmt.Errorf("gave up after %d attempts: %w", attempt, err)
		}
		d.retries.WithLabelValues(c.cfg.Name).Inc()
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(wait):
		}
		delay = min(2*delay, d.max)
	}
}

func (d *Dispatcher) post(ctx context.Context, c *channel, b []byte) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.target.url, bytes.NewReader(b))
	if err != nil {
		return fmt.Errorf("%w: %v", errPermanent, err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "agentgov-alerts")
	resp, err := d.client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	switch {
	case resp.StatusCode/100 == 2:
		return nil
	case resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode >= 500:
		return fmt.Errorf("answered %d", resp.StatusCode)
	}
	return fmt.Errorf("%w: answered %d", errPermanent, resp.StatusCode)
}
