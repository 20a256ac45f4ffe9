package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// These tests run three `agentgov serve` processes on one fresh PostgreSQL
// schema, as docs/deployment.md tells a user to: the same configuration
// but for each replica's id, port and data directory, the database given
// by `store:`. They skip, saying why, without AGENTGOV_TEST_POSTGRES.

// cluster is n replicas sharing one schema.
type cluster struct {
	t     *testing.T
	dsn   string
	admin *pgx.Conn
	// prefix makes this test's replica ids, and so its connections'
	// application names, its own on a server other tests share.
	prefix string
	reps   []*instance
}

// startCluster starts n replicas on a schema of their own, with the
// policy of startServer and extra appended to the shared configuration.
func startCluster(t *testing.T, n int, extra string) *cluster {
	t.Helper()
	return startClusterVia(t, n, extra, func(dsn string) string { return dsn })
}

// startClusterVia is startCluster with the replicas given route(dsn) as
// their store, to reach the database through something else.
func startClusterVia(t *testing.T, n int, extra string, route func(string) string) *cluster {
	t.Helper()
	dsn, admin := pgSchema(t)
	var b [3]byte
	rand.Read(b[:])
	c := &cluster{t: t, dsn: dsn, admin: admin, prefix: "p" + hex.EncodeToString(b[:])}
	shared := fmt.Sprintf(`
store: %q
tokens:
  - {name: ops, role: admin, sha256: %s}
  - {name: fin, role: approver, groups: [finance], sha256: %s}
  - {name: a1, role: agent, agent: a1, agent_type: assistant, principal: {user: alice, team: search, org: acme}, sha256: %s}
  - {name: a2, role: agent, agent: a2, sha256: %s}
audit: {checkpoint_interval: 100ms}
%s`, route(dsn), sum("admin-tok"), sum("fin-tok"), sum("a1-tok"), sum("a2-tok"), extra)
	for i := range n {
		dir := t.TempDir()
		// Each replica loads the same policies from a source of its own.
		pol := filepath.Join(dir, "policies")
		os.MkdirAll(pol, 0o755)
		os.WriteFile(filepath.Join(pol, "test.yaml"), []byte(testPolicy), 0o644)
		cfg := fmt.Sprintf("replica: %s-r%d\n%s", c.prefix, i+1, shared)
		os.WriteFile(filepath.Join(dir, "agentgov.yaml"), []byte(cfg), 0o600)
		in := &instance{t: t, dir: dir, data: filepath.Join(dir, "data")}
		in.args = []string{"serve", "--config", filepath.Join(dir, "agentgov.yaml"), "--policies", pol, "--data", in.data, "--addr", freePort(t)}
		c.reps = append(c.reps, in)
	}
	// Started together: the migrations must hold when replicas race.
	var wg sync.WaitGroup
	for _, in := range c.reps {
		wg.Go(func() { in.cmd = nil; in.startQuiet() })
	}
	wg.Wait()
	for _, in := range c.reps {
		if in.cmd == nil || !in.waitReady(20*time.Second) {
			t.Fatalf("replica at %s did not become ready:\n%s", in.url, in.output())
		}
		t.Cleanup(in.stop)
	}
	return c
}

// startQuiet starts the process without waiting for it; in.cmd stays nil
// if it cannot be started.
func (in *instance) startQuiet() {
	in.logs, in.logsMu = &bytes.Buffer{}, &sync.Mutex{}
	cmd := exec.Command(binPath, in.args...)
	cmd.Dir = in.dir
	cmd.Env = append(os.Environ(), in.env...)
	w := &lockedWriter{b: in.logs, mu: in.logsMu}
	cmd.Stdout, cmd.Stderr = w, w
	in.url = "http://" + in.args[len(in.args)-1]
	if err := cmd.Start(); err != nil {
		fmt.Fprintln(w, "start:", err)
		return
	}
	in.cmd, in.stopped = cmd, false
}

// pollUntil polls cond for up to ten seconds.
func pollUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); {
		if cond() {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("%s: not within 10s", what)
}

// waitReady polls /readyz until it answers 200, or d passes.
func (in *instance) waitReady(d time.Duration) bool {
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		if in.readyz() == http.StatusOK {
			return true
		}
		time.Sleep(25 * time.Millisecond)
	}
	return false
}

// readyz is the status of GET /readyz, 0 when nothing answers.
func (in *instance) readyz() int {
	resp, err := shortClient.Get(in.url + "/readyz")
	if err != nil {
		return 0
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

// shortClient is a client for requests that must not outlast a test.
var shortClient = &http.Client{Timeout: 5 * time.Second}

// answer is what one request got: its status and JSON body, or the error
// that kept it from an answer, and when it started and ended.
type answer struct {
	code       int
	body       map[string]any
	err        error
	start, end time.Time
}

func (a answer) effect() string { s, _ := a.body["effect"].(string); return s }

func (a answer) auditIndex() (int64, bool) {
	f, ok := a.body["audit_index"].(float64)
	return int64(f), ok
}

// try is call without failing the test: for requests in bulk, from many
// goroutines, some of them meant to fail.
func (in *instance) try(client *http.Client, method, path, token, body string) answer {
	a := answer{start: time.Now()}
	req, _ := http.NewRequest(method, in.url+path, strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := client.Do(req)
	if err != nil {
		a.err, a.end = err, time.Now()
		return a
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	a.code, a.end = resp.StatusCode, time.Now()
	if err := json.Unmarshal(raw, &a.body); err != nil {
		a.err = fmt.Errorf("status %d, not JSON: %.200s", resp.StatusCode, raw)
	}
	return a
}

const readTmp = `{"tool":{"name":"read_file"},"args":{"path":"/tmp/x"}}`

// A budget of 40 calls, 360 concurrent decisions spread evenly over three
// replicas: exactly 40 are allowed, whichever replica answered, and every
// replica reports the same spend.
func TestReplicasBudgetIsExactAcrossProcesses(t *testing.T) {
	c := startCluster(t, 3, "")
	r := c.reps
	if code, m := r[0].call("POST", "/v1/budgets", "admin-tok", `{"id":"team-calls","scope":{"team":"search"},"period":"daily","limits":{"calls":40}}`); code != 201 {
		t.Fatalf("create budget: %d %v", code, m)
	}
	// The budget is announced to the others; wait until each has it.
	for _, in := range r[1:] {
		pollUntil(t, "the budget known at "+in.url, func() bool {
			_, m := in.call("GET", "/v1/budgets", "admin-tok", "")
			return strings.Contains(fmt.Sprint(m["budgets"]), "team-calls")
		})
	}
	const total = 360
	answers := make([]answer, total)
	var wg sync.WaitGroup
	for i := range total {
		wg.Go(func() { answers[i] = r[i%3].try(http.DefaultClient, "POST", "/v1/decide", "a1-tok", readTmp) })
	}
	wg.Wait()
	allowed, denied := [3]int{}, 0
	for i, a := range answers {
		switch {
		case a.err != nil || a.code != 200:
			t.Fatalf("decision %d on replica %d: %d %v %v", i, i%3+1, a.code, a.err, a.body)
		case a.effect() == "allow":
			allowed[i%3]++
		case a.effect() == "deny" && strings.Contains(fmt.Sprint(a.body["reasons"]), "team-calls"):
			denied++
		default:
			t.Fatalf("decision %d: %v", i, a.body)
		}
	}
	if n := allowed[0] + allowed[1] + allowed[2]; n != 40 || denied != total-40 {
		t.Fatalf("allowed %d (per replica %v), denied by the budget %d; want 40 and %d", n, allowed, denied, total-40)
	}
	t.Logf("allowed per replica: %v", allowed)
	for _, in := range r {
		_, u := in.call("GET", "/v1/usage?team=search", "admin-tok", "")
		if !strings.Contains(fmt.Sprint(u), "calls:40") {
			t.Fatalf("usage at %s: %v", in.url, u)
		}
		_, b := in.call("GET", "/v1/budgets", "admin-tok", "")
		if !strings.Contains(fmt.Sprint(b), "calls:40") {
			t.Fatalf("budget spend at %s: %v", in.url, b)
		}
	}
}

// One approved ticket, redeemed by 30 concurrent retries, ten at each
// replica: exactly one is allowed.
func TestReplicasRedeemATicketOnce(t *testing.T) {
	c := startCluster(t, 3, "")
	r := c.reps
	pay := `{"session":"s1","tool":{"name":"pay"},"args":{"amount":5000,"to":"bob"}}`
	code, d := r[0].call("POST", "/v1/decide", "a1-tok", pay)
	if code != 200 || d["effect"] != "require_approval" {
		t.Fatalf("payment: %d %v", code, d)
	}
	apr := d["approval"].(map[string]any)["id"].(string)
	// Approved through another replica than the one that asked.
	if code, m := r[1].call("POST", "/v1/approvals/"+apr+"/approve", "fin-tok", `{"note":"ok"}`); code != 200 || m["status"] != "approved" {
		t.Fatalf("approve: %d %v", code, m)
	}
	retry := `{"session":"s1","tool":{"name":"pay"},"args":{"amount":5000,"to":"bob"},"approval_id":"` + apr + `"}`
	answers := make([]answer, 30)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range answers {
		wg.Go(func() {
			<-start
			answers[i] = r[i%3].try(http.DefaultClient, "POST", "/v1/decide", "a1-tok", retry)
		})
	}
	close(start)
	wg.Wait()
	var allows []int
	for i, a := range answers {
		if a.err != nil || a.code != 200 {
			t.Fatalf("retry %d: %d %v %v", i, a.code, a.err, a.body)
		}
		switch a.effect() {
		case "allow":
			allows = append(allows, i%3+1)
		case "deny":
		default:
			t.Fatalf("retry %d: %v", i, a.body)
		}
	}
	if len(allows) != 1 {
		t.Fatalf("the ticket allowed %d retries (on replicas %v); want exactly one", len(allows), allows)
	}
	for _, in := range r {
		if code, m := in.call("GET", "/v1/approvals/"+apr, "admin-tok", ""); code != 200 || m["status"] != "used" {
			t.Fatalf("ticket at %s: %d %v", in.url, code, m)
		}
	}
}

// A kill switch engaged through one replica denies on the others within a
// second, and so does its release.
func TestReplicasKillSwitchInForceEverywhereWithinASecond(t *testing.T) {
	c := startCluster(t, 3, "")
	r := c.reps
	for _, in := range r {
		if _, d := in.call("POST", "/v1/decide", "a1-tok", readTmp); d["effect"] != "allow" {
			t.Fatalf("before: %v", d)
		}
	}
	// seen polls each other replica until want holds there, and reports
	// how long each took.
	seen := func(what string, others []*instance, since time.Time, want func(map[string]any) bool) {
		t.Helper()
		for _, in := range others {
			for {
				_, d := in.call("POST", "/v1/decide", "a1-tok", readTmp)
				took := time.Since(since)
				if want(d) {
					t.Logf("%s seen at %s after %s", what, in.url, took.Round(time.Millisecond))
					break
				}
				if took > time.Second {
					t.Fatalf("%s not in force at %s after %s: %v", what, in.url, took.Round(time.Millisecond), d)
				}
				time.Sleep(10 * time.Millisecond)
			}
		}
	}
	since := time.Now()
	code, sw := r[0].call("POST", "/v1/kill", "admin-tok", `{"scope":"agent","target":"a1","reason":"runaway loop"}`)
	if code != 201 {
		t.Fatalf("engage: %d %v", code, sw)
	}
	seen("the switch", r[1:], since, func(d map[string]any) bool {
		return d["effect"] == "deny" && strings.Contains(fmt.Sprint(d["reasons"]), "runaway loop")
	})
	// Another agent is not concerned.
	if _, d := r[2].call("POST", "/v1/decide", "a2-tok", readTmp); d["effect"] != "allow" {
		t.Fatalf("a2 under a1's switch: %v", d)
	}
	since = time.Now()
	if code, m := r[1].call("DELETE", "/v1/kill/"+sw["id"].(string), "admin-tok", ""); code != 200 {
		t.Fatalf("release: %d %v", code, m)
	}
	seen("the release", []*instance{r[0], r[2]}, since, func(d map[string]any) bool { return d["effect"] == "allow" })
}

// auditEntry is the decision id of replica's log entry idx, "" when there
// is no such entry.
func (c *cluster) auditEntry(replica string, idx int64) string {
	var id *string
	err := c.admin.QueryRow(context.Background(), `SELECT decision_id FROM audit_entries WHERE replica = $1 AND idx = $2`, replica, idx).Scan(&id)
	if err == pgx.ErrNoRows || id == nil {
		return ""
	}
	if err != nil {
		c.t.Fatal(err)
	}
	return *id
}

// checkAcknowledged fails unless every decision in acks, answered by
// replica, is in that replica's log at the index it was answered with.
func (c *cluster) checkAcknowledged(replica string, acks []answer) {
	c.t.Helper()
	for _, a := range acks {
		idx, ok := a.auditIndex()
		if !ok {
			c.t.Fatalf("an allow without an audit index: %v", a.body)
		}
		if got := c.auditEntry(replica, idx); got != a.body["id"] {
			c.t.Fatalf("replica %s acknowledged decision %v at audit index %d, but its log has %q there", replica, a.body["id"], idx, got)
		}
	}
}

// verify runs `agentgov audit verify --store` and fails unless it verifies
// want replica logs.
func (c *cluster) verify(want int) string {
	c.t.Helper()
	code, out := agentgov(c.t, "audit", "verify", "--store", c.dsn)
	if code != 0 || !strings.Contains(out, fmt.Sprintf("ok: %d replica logs verified", want)) {
		c.t.Fatalf("audit verify --store: exit %d\n%s", code, out)
	}
	return out
}

// loadDecisions runs workers deciding on in until stop is closed, and gives back
// every answer.
func loadDecisions(in *instance, workers int, body string, stop <-chan struct{}) func() []answer {
	var mu sync.Mutex
	var all []answer
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			client := &http.Client{Timeout: 40 * time.Second}
			for {
				select {
				case <-stop:
					return
				default:
				}
				a := in.try(client, "POST", "/v1/decide", "a1-tok", body)
				mu.Lock()
				all = append(all, a)
				mu.Unlock()
				if a.err != nil {
					time.Sleep(5 * time.Millisecond) // the process may be gone
				}
			}
		})
	}
	return func() []answer { wg.Wait(); return all }
}

// A replica SIGKILLed while it is deciding loses no decision it
// acknowledged; restarted with the same id it continues its log, and
// every replica's log verifies.
func TestReplicaKilledMidStreamLosesNoAcknowledgedDecision(t *testing.T) {
	c := startCluster(t, 3, "")
	r := c.reps
	stop := make(chan struct{})
	results := make([]func() []answer, 3)
	for i, in := range r {
		results[i] = loadDecisions(in, 8, readTmp, stop)
	}
	// Kill the second replica once it has answered a good number.
	pollUntil(t, "decisions answered", func() bool {
		_, m := r[1].call("GET", "/v1/audit/checkpoint", "admin-tok", "")
		size, _ := m["size"].(float64)
		return size > 200
	})
	r[1].kill9()
	time.Sleep(300 * time.Millisecond) // the others go on meanwhile
	close(stop)
	var acked [3][]answer
	for i := range r {
		for _, a := range results[i]() {
			if a.err == nil && a.code == 200 && a.effect() == "allow" {
				acked[i] = append(acked[i], a)
			} else if i != 1 {
				t.Fatalf("replica %d, still running, answered %d %v %v", i+1, a.code, a.err, a.body)
			}
		}
	}
	if len(acked[1]) < 100 {
		t.Fatalf("only %d decisions acknowledged by the killed replica", len(acked[1]))
	}
	for i := range r {
		c.checkAcknowledged(fmt.Sprintf("%s-r%d", c.prefix, i+1), acked[i])
	}
	t.Logf("acknowledged: %d, %d (killed), %d", len(acked[0]), len(acked[1]), len(acked[2]))
	if code, out := agentgov(t, "audit", "verify", "--store", c.dsn); code == 0 {
		t.Logf("verify before the killed replica restarts:\n%s", out)
	} else {
		t.Logf("verify before the killed replica restarts (exit %d):\n%s", code, out)
	}
	// Restarted with the same id and key, it continues its log.
	r[1].cmd = nil
	r[1].startQuiet()
	if !r[1].waitReady(20 * time.Second) {
		t.Fatalf("the killed replica did not come back:\n%s", r[1].output())
	}
	_, d := r[1].call("POST", "/v1/decide", "a1-tok", readTmp)
	if idx, ok := (answer{body: d}).auditIndex(); d["effect"] != "allow" || !ok || idx <= maxIndex(acked[1]) {
		t.Fatalf("after the restart: %v (last acknowledged index %d)", d, maxIndex(acked[1]))
	}
	for _, in := range r {
		in.stop()
	}
	t.Log(c.verify(3))
}

func maxIndex(as []answer) int64 {
	m := int64(-1)
	for _, a := range as {
		if i, ok := a.auditIndex(); ok && i > m {
			m = i
		}
	}
	return m
}

// outage is what the replicas answered while the database was away: the
// decisions load gave, and whether each replica's /readyz went false.
type outage struct {
	answers  [][]answer
	notReady []bool
}

// underLoad runs load on every replica, calls away (which makes the
// database unavailable and returns when it is back) while polling each
// replica's readiness, and gives back what was answered. After away it
// waits until every replica is ready again and allows a decision, then
// lets the load run on a little.
func (c *cluster) underLoad(away func()) outage {
	t := c.t
	t.Helper()
	stop := make(chan struct{})
	results := make([]func() []answer, len(c.reps))
	for i, in := range c.reps {
		results[i] = loadDecisions(in, 4, readTmp, stop)
	}
	time.Sleep(300 * time.Millisecond)
	o := outage{notReady: make([]bool, len(c.reps))}
	pollStop := make(chan struct{})
	var wg sync.WaitGroup
	for i, in := range c.reps {
		wg.Go(func() {
			for {
				select {
				case <-pollStop:
					return
				default:
				}
				if in.readyz() == http.StatusServiceUnavailable {
					o.notReady[i] = true
				}
				time.Sleep(10 * time.Millisecond)
			}
		})
	}
	away()
	close(pollStop)
	wg.Wait()
	back := time.Now()
	for _, in := range c.reps {
		// Recovery is bounded loosely, for a loaded machine; what the
		// replica last said is in the failure.
		var last string
		recovered := false
		for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
			r := in.try(shortClient, "GET", "/readyz", "", "")
			if r.code != http.StatusOK {
				last = fmt.Sprintf("/readyz %d %v %v", r.code, r.body, r.err)
				continue
			}
			a := in.try(shortClient, "POST", "/v1/decide", "a1-tok", readTmp)
			if a.code == 200 && a.effect() == "allow" {
				recovered = true
				break
			}
			last = fmt.Sprintf("decide %d %v %v", a.code, a.body, a.err)
		}
		if !recovered {
			out := in.output()
			t.Fatalf("%s did not recover within 30s; last: %s\nits log ends:\n%s", in.url, last, out[max(0, len(out)-4000):])
		}
	}
	t.Logf("every replica ready and allowing again %s after the database came back", time.Since(back).Round(time.Millisecond))
	time.Sleep(300 * time.Millisecond)
	close(stop)
	for i := range c.reps {
		o.answers = append(o.answers, results[i]())
	}
	return o
}

// check fails unless every answer is a decision or a 503, every allow is
// in its replica's log at the index it was given, and no allow was both
// asked for and answered within [from, to).
func (c *cluster) check(o outage, from, to time.Time) {
	t := c.t
	t.Helper()
	for i, as := range o.answers {
		var allows []answer
		counts, reasons := map[string]int{}, map[string]bool{}
		for _, a := range as {
			switch {
			case a.err != nil:
				t.Fatalf("replica %d: no answer: %v", i+1, a.err)
			case a.code == http.StatusServiceUnavailable:
				counts["503"]++
			case a.code != 200:
				t.Fatalf("replica %d answered %d: %v", i+1, a.code, a.body)
			case a.effect() == "allow":
				counts["allow"]++
				allows = append(allows, a)
				if a.start.After(from) && a.end.Before(to) {
					idx, _ := a.auditIndex()
					t.Fatalf("replica %d allowed a decision asked for and answered while the database was away: %v; its log has %q at that index",
						i+1, a.body, c.auditEntry(fmt.Sprintf("%s-r%d", c.prefix, i+1), idx))
				}
			default:
				counts[a.effect()]++
				// The agent learns which stage failed, not where the
				// database is or what it said.
				if why := fmt.Sprint(a.body["reasons"]); strings.Contains(why, "SQLSTATE") || strings.Contains(why, "127.0.0.1") {
					t.Fatalf("replica %d told the agent the store's own error: %s", i+1, why)
				}
				if why := fmt.Sprint(a.body["reasons"]); !reasons[why] {
					reasons[why] = true
					t.Logf("replica %d: %s: %s", i+1, a.effect(), why)
				}
				if a.start.After(from) && a.end.Before(to) {
					counts[a.effect()+" while away"]++
				}
			}
		}
		t.Logf("replica %d: %v", i+1, counts)
		c.checkAcknowledged(fmt.Sprintf("%s-r%d", c.prefix, i+1), allows)
	}
}

// Every connection of the replicas terminated by the server, again and
// again for two seconds, under load: no decision is allowed that is not
// in the log, readiness goes false, and the replicas recover by
// themselves.
func TestReplicasFailClosedWhileTheirConnectionsAreTerminated(t *testing.T) {
	c := startCluster(t, 3, "store_pool: {connect_timeout: 1s}\n")
	var terminated atomic.Int64
	var from, to time.Time
	o := c.underLoad(func() {
		ctx := context.Background()
		from = time.Now()
		for time.Since(from) < 2*time.Second {
			var n int64
			err := c.admin.QueryRow(ctx, `SELECT count(*) FILTER (WHERE pg_terminate_backend(pid)) FROM pg_stat_activity
				WHERE application_name LIKE 'agentgov ' || $1 || '-%'`, c.prefix).Scan(&n)
			if err != nil {
				t.Fatal(err)
			}
			terminated.Add(n)
			time.Sleep(20 * time.Millisecond)
		}
		to = time.Now()
	})
	t.Logf("%d connections terminated", terminated.Load())
	// Terminations leave moments in which a connection is made and used:
	// an allow is fine then, if it is in the log.
	c.check(o, to, to)
	for i, nr := range o.notReady {
		if !nr {
			t.Errorf("replica %d never answered /readyz with 503 while its connections were being terminated", i+1)
		}
	}
	for _, in := range c.reps {
		in.stop()
	}
	c.verify(3)
}

// The database paused: every table of agentgov's schema locked by another
// transaction for three seconds, under load. No decision asked for after
// the lock was taken is allowed before it is released; readiness goes
// false; afterwards the replicas go on by themselves and the logs verify.
func TestReplicasFailClosedWhileTheDatabaseIsLocked(t *testing.T) {
	c := startCluster(t, 3, "store_pool: {connect_timeout: 1s}\n")
	var from, to time.Time
	o := c.underLoad(func() {
		ctx := context.Background()
		var tables string
		if err := c.admin.QueryRow(ctx, `SELECT string_agg(quote_ident(tablename), ', ') FROM pg_tables WHERE schemaname = current_schema()`).Scan(&tables); err != nil {
			t.Fatal(err)
		}
		// The tables are locked one after another, while the replicas hold
		// some of them: PostgreSQL may pick this transaction to end a
		// deadlock. Then it tries again.
		var tx pgx.Tx
		for attempt := 0; ; attempt++ {
			var err error
			if tx, err = c.admin.Begin(ctx); err != nil {
				t.Fatal(err)
			}
			_, err = tx.Exec(ctx, `LOCK TABLE `+tables+` IN ACCESS EXCLUSIVE MODE`)
			if err == nil {
				break
			}
			tx.Rollback(ctx)
			var pe *pgconn.PgError
			if !errors.As(err, &pe) || pe.Code != "40P01" || attempt == 20 {
				t.Fatal(err)
			}
		}
		from = time.Now()
		time.Sleep(3 * time.Second)
		to = time.Now()
		if err := tx.Rollback(ctx); err != nil {
			t.Fatal(err)
		}
	})
	c.check(o, from, to)
	for i, nr := range o.notReady {
		if !nr {
			t.Errorf("replica %d never answered /readyz with 503 while the database was locked", i+1)
		}
	}
	for _, in := range c.reps {
		in.stop()
	}
	c.verify(3)
}

// relay passes TCP connections on to the database, and can be cut (its
// listener and every connection closed) and joined again at the same
// address: to the replicas, the database goes away and comes back, as in
// a restart or a network partition.
type relay struct {
	t      *testing.T
	target string
	addr   string
	mu     sync.Mutex
	ln     net.Listener
	conns  map[net.Conn]bool
}

func newRelay(t *testing.T, dsn string) *relay {
	if dsn == "" {
		t.Skip("AGENTGOV_TEST_POSTGRES is not set: set it to a PostgreSQL DSN to run the PostgreSQL tests")
	}
	u, err := url.Parse(dsn)
	if err != nil || u.Host == "" {
		t.Skipf("the test that cuts the database away needs a URL DSN with a host: %v", err)
	}
	target := u.Host
	if u.Port() == "" {
		target += ":5432"
	}
	r := &relay{t: t, target: target, conns: map[net.Conn]bool{}}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r.addr = ln.Addr().String()
	r.serve(ln)
	t.Cleanup(r.cut)
	return r
}

// route is dsn through the relay.
func (r *relay) route(dsn string) string {
	u, _ := url.Parse(dsn)
	u.Host = r.addr
	return u.String()
}

func (r *relay) serve(ln net.Listener) {
	r.mu.Lock()
	r.ln = ln
	r.mu.Unlock()
	go func() {
		for {
			in, err := ln.Accept()
			if err != nil {
				return
			}
			out, err := net.Dial("tcp", r.target)
			if err != nil {
				in.Close()
				continue
			}
			r.mu.Lock()
			if r.ln != ln {
				// Cut while this one was being joined: it must not
				// outlive the cut.
				r.mu.Unlock()
				in.Close()
				out.Close()
				continue
			}
			r.conns[in], r.conns[out] = true, true
			r.mu.Unlock()
			go func() { io.Copy(out, in); out.Close() }()
			go func() { io.Copy(in, out); in.Close() }()
		}
	}()
}

func (r *relay) cut() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.ln != nil {
		r.ln.Close()
		r.ln = nil
	}
	for c := range r.conns {
		c.Close()
		delete(r.conns, c)
	}
}

func (r *relay) join() {
	ln, err := net.Listen("tcp", r.addr)
	if err != nil {
		r.t.Fatal(err)
	}
	r.serve(ln)
}

// The database gone for three seconds under load, as the replicas see a
// restart or a partition: no decision asked for after it went is allowed
// before it is back, each replica's readiness goes false, and they recover
// by themselves; every allow is in its log and every log verifies.
func TestReplicasFailClosedWhileTheDatabaseIsAway(t *testing.T) {
	r := newRelay(t, os.Getenv("AGENTGOV_TEST_POSTGRES"))
	c := startClusterVia(t, 3, "store_pool: {connect_timeout: 1s}\n", r.route)
	var from, to time.Time
	o := c.underLoad(func() {
		r.cut()
		from = time.Now()
		time.Sleep(3 * time.Second)
		to = time.Now()
		r.join()
	})
	c.check(o, from, to)
	for i, nr := range o.notReady {
		if !nr {
			t.Errorf("replica %d never answered /readyz with 503 while the database was away", i+1)
		}
	}
	// The operator learns why, from each replica's log.
	for i, in := range c.reps {
		if out := in.output(); !strings.Contains(out, "decision denied: store unavailable") || !strings.Contains(out, "audit log unavailable") {
			t.Errorf("replica %d logged no store failure:\n%.2000s", i+1, out)
		}
	}
	for _, in := range c.reps {
		in.stop()
	}
	c.verify(3)
}
