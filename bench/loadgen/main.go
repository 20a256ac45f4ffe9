// Command loadgen measures `agentgov serve` under load against the ceiling
// of the machine it runs on. In one run it drives POST /v1/decide over
// loopback with N concurrent agents (each its own token and keep-alive
// connection), first against a bare net/http handler that only decodes the
// same JSON and answers a fixed decision, then against the real server with
// its durable audit log, and reports throughput and latency percentiles of
// both and their ratios. Both servers run in their own process, so the
// generator competes with each of them for the CPUs in the same way.
//
// With -postgres, the same run also drives agentgov on PostgreSQL: one
// replica, and -replicas replicas sharing one database with the agents
// spread over them (agent i speaks to replica i mod N), each on a fresh
// schema dropped afterwards. Beside throughput and latency it reports the
// CPU per decision of the agentgov processes, of the PostgreSQL backends
// serving them (found by application_name in pg_stat_activity) and of the
// whole PostgreSQL server (every process named postgres on this host,
// which includes whatever else the server is doing).
//
//	go build -o /tmp/agentgov ./cmd/agentgov
//	cd bench && go run ./loadgen -agentgov /tmp/agentgov -duration 10s -concurrency 50
//	cd bench && go run ./loadgen -agentgov /tmp/agentgov -postgres postgres://postgres@127.0.0.1:5432/test
package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/agentgov/agentgov/action"
	"github.com/agentgov/agentgov/client"
)

type options struct {
	agentgov    string
	policies    string
	duration    time.Duration
	warmup      time.Duration
	concurrency int
	rounds      int
	out         string
	postgres    string
	replicas    int
	watched     bool
}

func main() {
	var o options
	baseline := flag.Bool("baseline-server", false, "internal: serve the bare baseline handler on a loopback port and print its address")
	flag.StringVar(&o.agentgov, "agentgov", "", "path to the agentgov binary (go build -o /tmp/agentgov ./cmd/agentgov); empty measures the baseline alone")
	flag.StringVar(&o.policies, "policies", "", "policy directory for agentgov serve (default: its built-in baseline pack)")
	flag.DurationVar(&o.duration, "duration", 10*time.Second, "measured time per server")
	flag.DurationVar(&o.warmup, "warmup", 2*time.Second, "load before measuring, per server; not counted")
	flag.IntVar(&o.concurrency, "concurrency", 50, "concurrent agents, each with its own token and connection")
	flag.IntVar(&o.rounds, "rounds", 1, "measure each server this many times, alternating which goes first")
	flag.StringVar(&o.out, "out", "", "also write the results as Markdown to this file")
	flag.StringVar(&o.postgres, "postgres", "", "also drive agentgov on this PostgreSQL database (a URL; each run gets a fresh schema in it): one replica, and -replicas replicas")
	flag.IntVar(&o.replicas, "replicas", 3, "replicas sharing the database in the -postgres run")
	flag.BoolVar(&o.watched, "watched", false, "drive agentgov twice: with SLOs, circuit breakers and anomaly detection off (agentgov), and on (agentgov-watched)")
	flag.Parse()
	if *baseline {
		if err := serveBaseline(); err != nil {
			fmt.Fprintln(os.Stderr, "loadgen baseline:", err)
			os.Exit(1)
		}
		return
	}
	if err := run(o); err != nil {
		fmt.Fprintln(os.Stderr, "loadgen:", err)
		os.Exit(1)
	}
}

func run(o options) error {
	if o.concurrency < 1 || o.concurrency > 1000 {
		return fmt.Errorf("-concurrency %d: want 1 to 1000", o.concurrency)
	}
	if o.rounds < 1 || o.rounds > 20 {
		return fmt.Errorf("-rounds %d: want 1 to 20", o.rounds)
	}
	if o.duration <= 0 || o.duration > 10*time.Minute || o.warmup < 0 || o.warmup > time.Minute {
		return fmt.Errorf("-duration %s, -warmup %s: want 0 < duration <= 10m and 0 <= warmup <= 1m", o.duration, o.warmup)
	}
	tmp, err := os.MkdirTemp("", "agentgov-loadgen")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	tokens := make([]string, o.concurrency)
	for i := range tokens {
		tokens[i] = randomToken()
	}

	if o.postgres != "" && (o.agentgov == "" || o.replicas < 2 || o.replicas > 16) {
		return fmt.Errorf("-postgres needs -agentgov, and -replicas %d: want 2 to 16", o.replicas)
	}
	loadBefore := loadAverage()
	base, err := startBaseline()
	if err != nil {
		return err
	}
	defer base.stop()
	targets := []*target{{name: "baseline", procs: []*process{base}}}
	if o.agentgov != "" {
		off := ""
		if o.watched {
			off = "anomaly: {disabled: true}\n"
		}
		gov, admin, err := startAgentgov(o, filepath.Join(tmp, "sqlite"), tokens, off, "")
		if err != nil {
			return err
		}
		defer gov.stop()
		targets = append(targets, &target{name: "agentgov", procs: []*process{gov}, admin: admin})
		if o.watched {
			w, admin, err := startAgentgov(o, filepath.Join(tmp, "watched"), tokens, watchedConfig, "")
			if err != nil {
				return err
			}
			defer w.stop()
			targets = append(targets, &target{name: "agentgov-watched", procs: []*process{w}, admin: admin})
		}
	} else {
		fmt.Println("no -agentgov binary given: measuring the baseline alone")
	}
	if o.postgres != "" {
		pg, err := openPostgres(o.postgres)
		if err != nil {
			return err
		}
		defer pg.close()
		for _, n := range []int{1, o.replicas} {
			t, err := pg.start(o, tmp, tokens, n)
			if err != nil {
				return err
			}
			defer t.stop()
			targets = append(targets, t)
		}
	}

	// Rounds rotate which server goes first, so that a change in what else
	// the machine is doing weighs on all alike.
	var rounds [][]result
	for i := range o.rounds {
		var round []result
		for j := range targets {
			tg := targets[(i+j)%len(targets)]
			before, err := tg.auditSize()
			if err != nil {
				return fmt.Errorf("read the audit log: %w\n%s", err, tg.output())
			}
			r, err := drive(tg, tokens, o)
			if err != nil {
				return fmt.Errorf("%w\n%s", err, tg.output())
			}
			after, err := tg.auditSize()
			if err != nil {
				return fmt.Errorf("read the audit log after the run: %w\n%s", err, tg.output())
			}
			r.audited = after - before
			r.round = i + 1
			printResult(r)
			round = append(round, r)
		}
		order := func(name string) int {
			return slices.IndexFunc(targets, func(t *target) bool { return t.name == name })
		}
		slices.SortFunc(round, func(a, b result) int { return order(a.name) - order(b.name) }) // as started
		rounds = append(rounds, round)
	}
	results := mergeRounds(rounds)
	if o.rounds > 1 {
		fmt.Println("all rounds:")
		for _, r := range results {
			printResult(r)
		}
	}
	summary := summarize(results)
	fmt.Print(summary)
	if o.out != "" {
		if err := os.WriteFile(o.out, []byte(markdown(o, rounds, results, summary, loadBefore)), 0o644); err != nil {
			return err
		}
	}
	return nil
}

func randomToken() string {
	var b [24]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(err)
	}
	return "lg_" + hex.EncodeToString(b[:])
}

func sha(s string) string {
	h := sha256.Sum256([]byte(s))
	return hex.EncodeToString(h[:])
}

// --- the servers under test ---

type process struct {
	url  string
	cmd  *exec.Cmd
	logs *lockedBuffer
}

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.b.Len() > 1<<20 {
		return len(p), nil
	}
	return l.b.Write(p)
}

func (p *process) output() string {
	p.logs.mu.Lock()
	defer p.logs.mu.Unlock()
	return p.logs.b.String()
}

// stop ends the process with SIGTERM, and with SIGKILL if it has not
// exited after a grace period.
func (p *process) stop() {
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { p.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(15 * time.Second):
		_ = p.cmd.Process.Kill()
		<-done
	}
}

// startBaseline re-executes this binary as the baseline server and reads
// the address it prints.
func startBaseline() (*process, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(self, "-baseline-server")
	logs := &lockedBuffer{}
	cmd.Stderr = logs
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	p := &process{cmd: cmd, logs: logs}
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil {
		p.stop()
		return nil, fmt.Errorf("baseline server did not start: %v\n%s", err, p.output())
	}
	go io.Copy(io.Discard, stdout)
	p.url = "http://" + strings.TrimSpace(line)
	if err := waitHealthy(p); err != nil {
		return nil, err
	}
	return p, nil
}

// serveBaseline is the ceiling: the same HTTP stack and JSON decoding of
// the same Action as agentgov, and a fixed decision, with nothing else.
func serveBaseline() error {
	idx := uint64(1042)
	fixed, err := json.Marshal(action.Decision{
		ID:         action.NewID(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).UnixMilli(), 1, 1),
		Effect:     action.Allow,
		Rules:      []string{"read-tools"},
		AuditIndex: &idx,
	})
	if err != nil {
		return err
	}
	fixed = append(fixed, '\n')
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/decide", func(w http.ResponseWriter, r *http.Request) {
		var a action.Action
		if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<20)).Decode(&a); err != nil {
			http.Error(w, `{"error":{"code":"bad_request","message":"malformed JSON"}}`, http.StatusBadRequest)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.Write(fixed)
	})
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"status":"ok"}`+"\n")
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	fmt.Println(ln.Addr().String())
	hs := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 120 * time.Second}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	go func() { <-ctx.Done(); hs.Close() }()
	if err := hs.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// watchedConfig turns on what -watched compares: two SLOs (a success SLI
// awaiting outcomes the generator never reports, so that its table of
// awaited calls is full, and a policy-violation SLI), a breaker per tool,
// and anomaly detection with a one-second interval and warm-up, so that
// every agent is warm within the warm-up of the run.
const watchedConfig = `slos:
  - {id: tools, sli: success, target: 0.99, match: {tools: ["*"]}}
  - {id: clean, sli: policy_violation, target: 0.99}
breakers:
  - {id: tools, match: {tools: ["*"]}}
anomaly: {interval: 1s, warmup_intervals: 1}
`

// startAgentgov writes a configuration with one agent token per worker,
// the admin token (a new one if empty) and extra, and starts `agentgov serve` on a free loopback port.
func startAgentgov(o options, tmp string, tokens []string, extra, admin string) (*process, string, error) {
	if err := os.MkdirAll(tmp, 0o700); err != nil {
		return nil, "", err
	}
	if admin == "" {
		admin = randomToken()
	}
	var cfg strings.Builder
	fmt.Fprintf(&cfg, "tokens:\n  - {name: loadgen-admin, role: admin, sha256: %s}\n", sha(admin))
	for i, t := range tokens {
		fmt.Fprintf(&cfg, "  - {name: agent-%03d, role: agent, agent: agent-%03d, agent_type: assistant, sha256: %s,\n     principal: {user: user-%03d, team: research, org: acme}, labels: {env: production}}\n", i, i, sha(t), i%10)
	}
	// The defaults, written out: every decision is durable in the audit log
	// before it is answered, with a signed checkpoint every 1000 entries or
	// every second.
	cfg.WriteString("audit: {checkpoint_every: 1000, checkpoint_interval: 1s}\n")
	cfg.WriteString(extra)
	cfgPath := filepath.Join(tmp, "agentgov.yaml")
	if err := os.WriteFile(cfgPath, []byte(cfg.String()), 0o600); err != nil {
		return nil, "", err
	}
	addr, err := freeLoopbackAddr()
	if err != nil {
		return nil, "", err
	}
	args := []string{"serve", "--config", cfgPath, "--data", filepath.Join(tmp, "data"), "--addr", addr}
	if o.policies != "" {
		args = append(args, "--policies", o.policies)
	}
	cmd := exec.Command(o.agentgov, args...)
	cmd.Dir = tmp
	logs := &lockedBuffer{}
	cmd.Stdout, cmd.Stderr = logs, logs
	if err := cmd.Start(); err != nil {
		return nil, "", fmt.Errorf("start %s: %w", o.agentgov, err)
	}
	p := &process{url: "http://" + addr, cmd: cmd, logs: logs}
	if err := waitHealthy(p); err != nil {
		return nil, "", err
	}
	return p, admin, nil
}

func freeLoopbackAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

// waitHealthy polls /healthz for up to 30 seconds.
func waitHealthy(p *process) error {
	c, err := client.New(p.url, "")
	if err != nil {
		return err
	}
	for range 300 {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		err = c.Health(ctx)
		cancel()
		if err == nil {
			return nil
		}
		if p.cmd.ProcessState != nil {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	p.stop()
	return fmt.Errorf("%s did not become healthy: %v\n%s", p.url, err, p.output())
}

// target is one server under load: the baseline, or agentgov as one
// process or several replicas.
type target struct {
	name  string
	procs []*process
	admin string // admin token; "" for the baseline
	// pgApp is the application_name prefix of its PostgreSQL connections,
	// "" when it is not on PostgreSQL.
	pgApp string
	pg    *pgState
}

func (t *target) pids() []int {
	var ps []int
	for _, p := range t.procs {
		ps = append(ps, p.cmd.Process.Pid)
	}
	return ps
}

func (t *target) output() string {
	var b strings.Builder
	for _, p := range t.procs {
		b.WriteString(p.output())
	}
	return b.String()
}

func (t *target) stop() {
	for _, p := range t.procs {
		p.stop()
	}
}

// auditSize is the size of every replica's audit log, added up; 0 for the
// baseline.
func (t *target) auditSize() (uint64, error) {
	if t.admin == "" {
		return 0, nil
	}
	var n uint64
	for _, p := range t.procs {
		s, err := auditSize(p.url, t.admin)
		if err != nil {
			return 0, err
		}
		n += s
	}
	return n, nil
}

// batches reads, from every process's /metrics, how many audit batches it
// has committed and how many entries they held; zeros for the baseline.
func (t *target) batches() (n, entries float64) {
	if t.admin == "" {
		return 0, 0
	}
	for _, p := range t.procs {
		resp, err := http.Get(p.url + "/metrics")
		if err != nil {
			continue
		}
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
			name, val, ok := strings.Cut(sc.Text(), " ")
			if !ok {
				continue
			}
			f, err := strconv.ParseFloat(strings.TrimSpace(val), 64)
			if err != nil {
				continue
			}
			switch name {
			case "agentgov_audit_batch_entries_count":
				n += f
			case "agentgov_audit_batch_entries_sum":
				entries += f
			}
		}
		resp.Body.Close()
	}
	return n, entries
}

func auditSize(url, admin string) (uint64, error) {
	c, err := client.New(url, admin)
	if err != nil {
		return 0, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	p, err := c.AuditEntries(ctx, -1, 1)
	return p.Size, err
}

// --- the load ---

type result struct {
	name      string
	round     int // 0 for all rounds together
	requests  int
	errors    int
	firstErr  string
	effects   map[action.Effect]int
	elapsed   time.Duration
	latencies []time.Duration // sorted
	audited   uint64          // audit entries added during the run (agentgov only)
	// CPU time used during the measured window by the server and by this
	// generator: unlike throughput, it hardly depends on what else the
	// machine is doing, so it shows the cost of each stage even on a busy one.
	serverCPU, genCPU time.Duration
	// dbCPU is the CPU time of the PostgreSQL backends serving the target,
	// pgCPU that of every PostgreSQL process on the host (onPostgres only).
	dbCPU, pgCPU time.Duration
	onPostgres   bool
	// batches and batchEntries count the audit batches committed in the
	// measured window, and the entries in them (agentgov only).
	batches, batchEntries float64
}

// meanBatch is the mean number of audit entries per committed batch.
func (r result) meanBatch() float64 {
	if r.batches == 0 {
		return 0
	}
	return r.batchEntries / r.batches
}

// cpuPerRequest is a process's CPU time per answered request.
func (r result) cpuPerRequest(cpu time.Duration) time.Duration {
	if r.requests == 0 {
		return 0
	}
	return cpu / time.Duration(r.requests)
}

// cpuTime is the CPU time, user and system, that process pid has used so far
// (0 for this process), read from /proc; zero where /proc is not available.
func cpuTime(pid int) time.Duration {
	if pid == 0 {
		var ru syscall.Rusage
		if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
			return 0
		}
		return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	// The command name in parentheses may hold spaces; fields follow it.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return 0
	}
	utime, err1 := strconv.ParseInt(f[11], 10, 64)
	stime, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0
	}
	const userHZ = 100 // the unit of /proc/PID/stat times on Linux
	return time.Duration(utime+stime) * time.Second / userHZ
}

func (r result) throughput() float64 { return float64(r.requests) / r.elapsed.Seconds() }

func (r result) pct(p float64) time.Duration {
	if len(r.latencies) == 0 {
		return 0
	}
	i := int(float64(len(r.latencies))*p/100+0.5) - 1
	return r.latencies[max(0, min(i, len(r.latencies)-1))]
}

// mergeRounds pools each server's rounds into one result.
func mergeRounds(rounds [][]result) []result {
	var out []result
	for i := range rounds[0] {
		m := result{name: rounds[0][i].name, effects: map[action.Effect]int{}}
		for _, round := range rounds {
			r := round[i]
			m.requests += r.requests
			m.errors += r.errors
			if m.firstErr == "" {
				m.firstErr = r.firstErr
			}
			for e, n := range r.effects {
				m.effects[e] += n
			}
			m.elapsed += r.elapsed
			m.latencies = append(m.latencies, r.latencies...)
			m.audited += r.audited
			m.serverCPU += r.serverCPU
			m.genCPU += r.genCPU
			m.dbCPU += r.dbCPU
			m.batches += r.batches
			m.batchEntries += r.batchEntries
			m.pgCPU += r.pgCPU
			m.onPostgres = r.onPostgres
		}
		slices.Sort(m.latencies)
		out = append(out, m)
	}
	return out
}

func loadAverage() string {
	la, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	return strings.Join(strings.Fields(string(la))[:3], " ")
}

// readAction is what every agent asks, a file read as an MCP filesystem
// server would see it; each agent works in its own session.
func readAction(agent int) action.Action {
	return action.Action{
		Session: fmt.Sprintf("loadgen-%03d", agent),
		Point:   action.PreToolCall,
		Tool:    action.Tool{Server: "fs", Name: "read_file", Annotations: map[string]any{"readOnlyHint": true}},
		Args: map[string]any{
			"path":      fmt.Sprintf("/srv/data/reports/2026/q1/summary-%03d.md", agent),
			"encoding":  "utf-8",
			"max_bytes": 65536,
		},
		Estimate: action.Estimate{Tokens: 1200},
	}
}

// maxPerWorker bounds each worker's loop whatever the clock does.
const maxPerWorker = 10_000_000

// drive runs one closed loop per token for warmup plus duration and keeps
// the latencies of the requests that started after the warm-up.
func drive(tg *target, tokens []string, o options) (result, error) {
	name := tg.name
	type share struct {
		lat      []time.Duration
		errors   int
		firstErr string
		effects  map[action.Effect]int
	}
	shares := make([]share, len(tokens))
	start := time.Now()
	measureFrom := start.Add(o.warmup)
	deadline := measureFrom.Add(o.duration)
	var serverCPU, genCPU, dbCPU, pgCPU time.Duration
	var batches, batchEntries float64
	cpuDone := make(chan struct{})
	go func() {
		defer close(cpuDone)
		time.Sleep(time.Until(measureFrom))
		s0, g0 := cpuTimes(tg.pids()), cpuTime(0)
		n0, e0 := tg.batches()
		var b0, p0 map[int]time.Duration
		if tg.pg != nil {
			b0, p0 = tg.pg.backendCPU(tg.pgApp), cpuByPid(postgresPids())
		}
		time.Sleep(time.Until(deadline))
		serverCPU, genCPU = cpuTimes(tg.pids())-s0, cpuTime(0)-g0
		n1, e1 := tg.batches()
		batches, batchEntries = n1-n0, e1-e0
		if tg.pg != nil {
			dbCPU = cpuSince(tg.pg.backendCPU(tg.pgApp), b0)
			pgCPU = cpuSince(cpuByPid(postgresPids()), p0)
		}
	}()
	var wg sync.WaitGroup
	for i, tok := range tokens {
		url := tg.procs[i%len(tg.procs)].url
		tr := client.NewTransport(1)
		tr.MaxConnsPerHost = 1
		hc := &http.Client{Transport: tr}
		c, err := client.New(url, tok, client.WithHTTPClient(hc), client.WithUserAgent("agentgov-loadgen"))
		if err != nil {
			return result{}, err
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer tr.CloseIdleConnections()
			sh := &shares[i]
			sh.effects = map[action.Effect]int{}
			sh.lat = make([]time.Duration, 0, 4096)
			a := readAction(i)
			for range maxPerWorker {
				t0 := time.Now()
				if !t0.Before(deadline) {
					return
				}
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				d, err := c.Decide(ctx, a)
				cancel()
				lat := time.Since(t0)
				if t0.Before(measureFrom) {
					continue
				}
				if err != nil {
					sh.errors++
					if sh.firstErr == "" {
						sh.firstErr = err.Error()
					}
					continue
				}
				sh.lat = append(sh.lat, lat)
				sh.effects[d.Effect]++
			}
		}()
	}
	wg.Wait()
	<-cpuDone
	r := result{name: name, effects: map[action.Effect]int{}, elapsed: o.duration, serverCPU: serverCPU, genCPU: genCPU,
		dbCPU: dbCPU, pgCPU: pgCPU, onPostgres: tg.pg != nil, batches: batches, batchEntries: batchEntries}
	for _, sh := range shares {
		r.latencies = append(r.latencies, sh.lat...)
		r.errors += sh.errors
		if r.firstErr == "" {
			r.firstErr = sh.firstErr
		}
		for e, n := range sh.effects {
			r.effects[e] += n
		}
	}
	slices.Sort(r.latencies)
	r.requests = len(r.latencies)
	if r.requests == 0 {
		return r, fmt.Errorf("%s: no request succeeded (%d errors; first: %s)", name, r.errors, r.firstErr)
	}
	return r, nil
}

// --- reporting ---

func ms(d time.Duration) string { return fmt.Sprintf("%.2f ms", float64(d.Microseconds())/1000) }

func printResult(r result) {
	label := "all"
	if r.round > 0 {
		label = fmt.Sprintf("round %d", r.round)
	}
	fmt.Printf("%-8s %-9s %8d ok %6d errors  %9.0f req/s  p50 %s  p90 %s  p99 %s  max %s  effects %v\n",
		label, r.name, r.requests, r.errors, r.throughput(), ms(r.pct(50)), ms(r.pct(90)), ms(r.pct(99)), ms(r.latencies[len(r.latencies)-1]), r.effects)
	if r.firstErr != "" {
		fmt.Printf("          first error: %s\n", r.firstErr)
	}
	fmt.Printf("          CPU per request: server %d µs, generator %d µs\n", r.cpuPerRequest(r.serverCPU).Microseconds(), r.cpuPerRequest(r.genCPU).Microseconds())
	if r.onPostgres {
		fmt.Printf("          CPU per request in PostgreSQL: its backends %d µs, the whole server %d µs\n", r.cpuPerRequest(r.dbCPU).Microseconds(), r.cpuPerRequest(r.pgCPU).Microseconds())
	}
	if r.name != "baseline" {
		fmt.Printf("          audit log grew by %d entries; %.0f batches committed a second, %.1f entries each\n", r.audited, r.batches/r.elapsed.Seconds(), r.meanBatch())
	}
}

func ratios(b, g result) (throughput, p99 float64) {
	return g.throughput() / b.throughput(), float64(g.pct(99)) / float64(b.pct(99))
}

func summarize(rs []result) string {
	if len(rs) < 2 {
		return ""
	}
	var pg strings.Builder
	for _, r := range rs[2:] {
		fmt.Fprintf(&pg, "throughput %s/agentgov = %.2f; p99 %s/agentgov = %.2f\n", r.name, r.throughput()/rs[1].throughput(), r.name, float64(r.pct(99))/float64(rs[1].pct(99)))
	}
	tr, pr := ratios(rs[0], rs[1])
	verdict := func(ok bool) string {
		if ok {
			return "met"
		}
		return "NOT met"
	}
	return fmt.Sprintf("throughput agentgov/baseline = %.2f (target >= 0.60: %s)\np99 agentgov/baseline        = %.2f (target <= 2.00: %s)\n",
		tr, verdict(tr >= 0.60), pr, verdict(pr <= 2.0)) + pg.String()
}

func row(b *strings.Builder, label string, r result) {
	db, pg := "—", "—"
	if r.onPostgres {
		db, pg = fmt.Sprintf("%d µs", r.cpuPerRequest(r.dbCPU).Microseconds()), fmt.Sprintf("%d µs", r.cpuPerRequest(r.pgCPU).Microseconds())
	}
	batch := "—"
	if r.batches > 0 {
		batch = fmt.Sprintf("%.1f", r.meanBatch())
	}
	fmt.Fprintf(b, "| %s | %s | %d | %d | %.0f | %s | %s | %s | %s | %d µs | %s | %s | %d µs | %s |\n", label, r.name, r.requests, r.errors, r.throughput(),
		ms(r.pct(50)), ms(r.pct(90)), ms(r.pct(99)), ms(r.latencies[len(r.latencies)-1]),
		r.cpuPerRequest(r.serverCPU).Microseconds(), db, pg, r.cpuPerRequest(r.genCPU).Microseconds(), batch)
}

func markdown(o options, rounds [][]result, all []result, summary, loadBefore string) string {
	var b strings.Builder
	b.WriteString("# Load generator: `agentgov serve` against the machine's ceiling\n\n")
	b.WriteString("Written by `bench/loadgen` (see its doc comment for what it measures).\n\n")
	b.WriteString("## Commands\n\n```\ngo build -o /tmp/agentgov ./cmd/agentgov\ncd bench && go build -o /tmp/loadgen ./loadgen\n")
	b.WriteString("/tmp/loadgen")
	if o.agentgov != "" {
		fmt.Fprintf(&b, " -agentgov %s", o.agentgov)
	}
	fmt.Fprintf(&b, " -duration %s -warmup %s -concurrency %d -rounds %d", o.duration, o.warmup, o.concurrency, o.rounds)
	if o.policies != "" {
		fmt.Fprintf(&b, " -policies %s", o.policies)
	}
	if o.postgres != "" {
		fmt.Fprintf(&b, " -postgres '%s' -replicas %d", o.postgres, o.replicas)
	}
	if o.watched {
		b.WriteString(" -watched")
	}
	if o.out != "" {
		fmt.Fprintf(&b, " -out %s", o.out)
	}
	b.WriteString("\n```\n\n## Machine\n\n")
	fmt.Fprintf(&b, "- %s %s/%s, %d CPUs seen by Go\n", runtime.Version(), runtime.GOOS, runtime.GOARCH, runtime.NumCPU())
	fmt.Fprintf(&b, "- load average (1, 5, 15 min) before the run: %s; after it: %s\n", loadBefore, loadAverage())
	fmt.Fprintf(&b, "- generator and servers share the machine; %d agents, each its own token and one keep-alive connection\n", o.concurrency)
	fmt.Fprintf(&b, "- each measurement: %s of load not counted, then %s measured\n\n", o.warmup, o.duration)
	b.WriteString("## Results\n\n| round | run | requests | errors | requests/s | p50 | p90 | p99 | max | server CPU/req | its PostgreSQL backends CPU/req | whole PostgreSQL server CPU/req | generator CPU/req | audit batch (entries) |\n|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n")
	for _, round := range rounds {
		for _, r := range round {
			row(&b, strconv.Itoa(r.round), r)
		}
	}
	if len(rounds) > 1 {
		for _, r := range all {
			row(&b, "all", r)
		}
	}
	if summary != "" {
		b.WriteString("\n```\n" + summary + "```\n")
	}
	if len(all) > 1 && len(rounds) > 1 {
		b.WriteString("\nPer round (throughput ratio, p99 ratio):")
		for _, round := range rounds {
			tr, pr := ratios(round[0], round[1])
			fmt.Fprintf(&b, " %d: %.2f, %.2f;", round[0].round, tr, pr)
		}
		b.WriteString("\n")
	}
	for _, r := range all {
		if r.name != "baseline" {
			fmt.Fprintf(&b, "\n%s decisions by effect: %v; its audit logs grew by %d entries while it was driven (warm-ups included).\n", r.name, r.effects, r.audited)
		}
	}
	return b.String()
}
