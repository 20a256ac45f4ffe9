package postgres_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/agentgov/agentgov/action"
	"github.com/agentgov/agentgov/audit"
	"github.com/agentgov/agentgov/config"
	"github.com/agentgov/agentgov/server"
	"github.com/agentgov/agentgov/store/postgres"
)

// cable stands between agentgov and PostgreSQL, and can be cut and joined
// again at the same address: the database, as far as agentgov can tell,
// goes away and comes back.
type cable struct {
	t      *testing.T
	target string
	addr   string
	mu     sync.Mutex
	ln     net.Listener
	// conns holds every connection through the cable, true for
	// agentgov's side, false for the database's.
	conns map[net.Conn]bool
	// stranded keeps the database's side of every connection open when
	// agentgov's side is cut: the server processes live on, as they do
	// when the network between fails rather than either end.
	stranded map[net.Conn]bool
}

func newCable(t *testing.T, target string) *cable {
	c := &cable{t: t, target: target, conns: map[net.Conn]bool{}, stranded: map[net.Conn]bool{}}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	c.addr = ln.Addr().String()
	c.serve(ln)
	t.Cleanup(c.cut)
	return c
}

func (c *cable) serve(ln net.Listener) {
	c.mu.Lock()
	c.ln = ln
	c.mu.Unlock()
	go func() {
		for {
			in, err := ln.Accept()
			if err != nil {
				return
			}
			out, err := net.Dial("tcp", c.target)
			if err != nil {
				in.Close()
				continue
			}
			c.mu.Lock()
			if c.ln != ln {
				// Cut while this one was being joined: it must not
				// outlive the cut.
				c.mu.Unlock()
				in.Close()
				out.Close()
				continue
			}
			c.conns[in], c.conns[out] = true, false
			c.mu.Unlock()
			go func() {
				io.Copy(out, in)
				c.mu.Lock()
				keep := c.stranded[out]
				c.mu.Unlock()
				if !keep {
					out.Close()
				}
			}()
			go func() { io.Copy(in, out); in.Close() }()
		}
	}()
}

// cut closes the listener and every connection through it.
func (c *cable) cut() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.ln != nil {
		c.ln.Close()
		c.ln = nil
	}
	for conn := range c.conns {
		conn.Close()
		delete(c.conns, conn)
	}
}

// strand cuts agentgov's side of every connection and leaves the
// database's side open, idle; t's cleanup closes those.
func (c *cable) strand() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.ln != nil {
		c.ln.Close()
		c.ln = nil
	}
	for conn, agentgovSide := range c.conns {
		if agentgovSide {
			conn.Close()
		} else {
			c.stranded[conn] = true
		}
		delete(c.conns, conn)
	}
	c.t.Cleanup(func() {
		c.mu.Lock()
		defer c.mu.Unlock()
		for conn := range c.stranded {
			conn.Close()
		}
	})
}

// join listens again at the same address.
func (c *cable) join() {
	ln, err := net.Listen("tcp", c.addr)
	if err != nil {
		c.t.Fatal(err)
	}
	c.serve(ln)
}

// through is dsn with its host and port replaced by the cable's.
func (c *cable) through(dsn string) string {
	u, err := url.Parse(dsn)
	if err != nil || u.Host == "" {
		c.t.Skipf("the PostgreSQL tests that cut the connection need a URL DSN with a host: %v", err)
	}
	u.Host = c.addr
	return u.String()
}

func hostOf(t *testing.T, dsn string) string {
	u, err := url.Parse(dsn)
	if err != nil || u.Host == "" {
		t.Skipf("the PostgreSQL tests that cut the connection need a URL DSN with a host: %v", err)
	}
	if u.Port() == "" {
		return u.Host + ":5432"
	}
	return u.Host
}

// While the database cannot be reached, every decision is denied, saying
// why, and readiness is false; when it comes back, the replica decides
// again without a restart.
func TestDatabaseGoneFailsClosedAndRecovers(t *testing.T) {
	dsn, _ := freshSchema(t)
	c := newCable(t, hostOf(t, dsn))
	r := startReplica(t, c.through(dsn), "r1", postgres.Options{PollInterval: 50 * time.Millisecond, ConnectTimeout: time.Second})
	cfg := &config.Config{}
	cfg.Fill()
	srv, err := server.New(server.Options{Config: cfg, Engine: r.eng, Audit: r.log, Idempotency: r.db, Decisions: r.db,
		Store: r.db, Sessions: r.sessions, Kill: r.kill, Approvals: r.approvals, Budgets: r.budgets,
		Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(srv.Handler())
	defer hs.Close()
	ready := func() int {
		resp, err := http.Get(hs.URL + "/readyz")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	ctx := context.Background()
	decide := func(session string) action.Decision {
		a := a1
		a.Session = session
		d, err := r.eng.Decide(ctx, a)
		if err != nil {
			t.Fatal(err)
		}
		return d
	}
	if code := ready(); code != http.StatusOK {
		t.Fatalf("readyz %d before the cut", code)
	}
	if d := decide("s-1"); d.Effect != action.Allow {
		t.Fatalf("before the cut: %+v", d)
	}

	c.cut()
	// A session already seen (cached) and a new one: both denied, because
	// neither decision can be written to the log.
	for _, s := range []string{"s-1", "s-new"} {
		d := decide(s)
		if d.Effect != action.Deny || d.AuditIndex != nil {
			t.Fatalf("session %s with the database gone: %+v", s, d)
		}
		if why := strings.Join(d.Reasons, " "); !strings.Contains(why, "session") && !strings.Contains(why, "audit") {
			t.Fatalf("denied without saying why: %q", why)
		}
	}
	if code := ready(); code != http.StatusServiceUnavailable {
		t.Fatalf("readyz %d with the database gone", code)
	}

	c.join()
	eventually(t, "decisions allowed again", func() bool { return decide("s-1").Effect == action.Allow })
	eventually(t, "ready again", func() bool { return ready() == http.StatusOK })
	if d := decide("s-2"); d.Effect != action.Allow || d.AuditIndex == nil {
		t.Fatalf("after recovery: %+v", d)
	}
	// The log the outage interrupted is whole.
	if _, _, err := r.log.Checkpoint(ctx); err != nil {
		t.Fatal(err)
	}
	rep, err := audit.Verify(ctx, r.db, r.key.Verifier, audit.VerifyOptions{})
	if err != nil || !rep.OK() {
		t.Fatalf("verify after the outage: %+v, %v", rep, err)
	}
}

// The network fails between a replica and the database while the
// database's side of its connections lives on: the server process of the
// replica's own connection still holds the replica id when the replica
// reconnects. That process is the replica's own past, not another
// replica: it is ended and the id taken back, and the replica goes on
// (before, Run stopped as if another process had taken the id).
func TestReplicaTakesItsIdBackFromItsStrandedConnection(t *testing.T) {
	dsn, admin := freshSchema(t)
	c := newCable(t, hostOf(t, dsn))
	r := startReplica(t, c.through(dsn), "r1", postgres.Options{PollInterval: 50 * time.Millisecond, ConnectTimeout: time.Second})
	ctx := context.Background()
	listener := func() (pid int) {
		admin.QueryRow(ctx, `SELECT pid FROM pg_stat_activity WHERE application_name = 'agentgov r1' AND query LIKE 'LISTEN%'`).Scan(&pid)
		return pid
	}
	eventually(t, "r1 listens", func() bool { return listener() != 0 })
	before := listener()

	c.strand()
	c.join()
	eventually(t, "r1 listens on a new connection", func() bool { p := listener(); return p != 0 && p != before })
	select {
	case err := <-r.runErr:
		t.Fatalf("Run stopped: %v", err)
	default:
	}
	if err := r.db.Ping(ctx); err != nil {
		t.Fatalf("r1 not ready with its id back: %v", err)
	}
	var alive bool
	admin.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_stat_activity WHERE pid = $1)`, before).Scan(&alive)
	if alive {
		t.Errorf("the stranded server process %d still runs", before)
	}
	// Another process is still refused the id.
	if _, err := postgres.Open(ctx, dsn, postgres.Options{Replica: "r1", AuditKey: r.key.Text}); !errors.Is(err, postgres.ErrReplicaInUse) {
		t.Fatalf("a second r1 while r1 runs: %v", err)
	}
}
