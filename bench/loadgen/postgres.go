package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
)

// pgState is the PostgreSQL side of a run: an administrator's connection,
// for making and dropping schemas and for finding the backends that serve
// each target.
type pgState struct {
	base    string
	mu      sync.Mutex
	conn    *pgx.Conn
	schemas []string
}

func openPostgres(dsn string) (*pgState, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return nil, fmt.Errorf("-postgres: %w", err)
	}
	return &pgState{base: dsn, conn: conn}, nil
}

// close drops the schemas the run made.
func (pg *pgState) close() {
	ctx := context.Background()
	for _, s := range pg.schemas {
		if _, err := pg.conn.Exec(ctx, `DROP SCHEMA `+s+` CASCADE`); err != nil {
			fmt.Fprintf(os.Stderr, "loadgen: drop schema %s: %v\n", s, err)
		}
	}
	pg.conn.Close(ctx)
}

// start makes a fresh schema and starts n replicas of agentgov on it.
func (pg *pgState) start(o options, tmp string, tokens []string, n int) (*target, error) {
	ctx := context.Background()
	var b [4]byte
	rand.Read(b[:])
	suffix := hex.EncodeToString(b[:])
	schema := "loadgen_" + suffix
	if _, err := pg.conn.Exec(ctx, `CREATE SCHEMA `+schema); err != nil {
		return nil, fmt.Errorf("-postgres: %w", err)
	}
	pg.schemas = append(pg.schemas, schema)
	u, err := url.Parse(pg.base)
	if err != nil || u.Scheme == "" {
		return nil, fmt.Errorf("-postgres: want a postgres:// URL: %v", err)
	}
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	t := &target{name: "agentgov-pg" + strconv.Itoa(n), pgApp: "agentgov lg" + suffix + "-", pg: pg}
	if n == 1 {
		t.name = "agentgov-pg"
	}
	// The replicas start one after another: the first migrates the schema.
	for i := range n {
		extra := fmt.Sprintf("store: %q\nreplica: lg%s-r%d\n", u.String(), suffix, i+1)
		p, admin, err := startAgentgov(o, filepath.Join(tmp, fmt.Sprintf("%s-%d", schema, i+1)), tokens, extra, t.admin)
		if err != nil {
			t.stop()
			return nil, err
		}
		t.procs, t.admin = append(t.procs, p), admin
	}
	return t, nil
}

// backendCPU is the CPU time used so far by each PostgreSQL backend whose
// application_name starts with app: the connections of one target's
// replicas.
func (pg *pgState) backendCPU(app string) map[int]time.Duration {
	pg.mu.Lock()
	defer pg.mu.Unlock()
	rows, err := pg.conn.Query(context.Background(), `SELECT pid FROM pg_stat_activity WHERE starts_with(application_name, $1)`, app)
	if err != nil {
		fmt.Fprintln(os.Stderr, "loadgen: pg_stat_activity:", err)
		return nil
	}
	pids, err := pgx.CollectRows(rows, pgx.RowTo[int32])
	if err != nil {
		fmt.Fprintln(os.Stderr, "loadgen: pg_stat_activity:", err)
		return nil
	}
	var ps []int
	for _, p := range pids {
		ps = append(ps, int(p))
	}
	return cpuByPid(ps)
}

// postgresPids are the processes on this host named postgres: the whole
// server, whatever it is doing and for whom.
func postgresPids() []int {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	var ps []int
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		comm, err := os.ReadFile("/proc/" + e.Name() + "/comm")
		if err == nil && strings.TrimSpace(string(comm)) == "postgres" {
			ps = append(ps, pid)
		}
	}
	return ps
}

func cpuByPid(pids []int) map[int]time.Duration {
	m := make(map[int]time.Duration, len(pids))
	for _, p := range pids {
		m[p] = cpuTime(p)
	}
	return m
}

// cpuSince is the CPU time used between two readings of a set of
// processes; one that appeared in between counts whole, one that exited in
// between is lost.
func cpuSince(now, before map[int]time.Duration) time.Duration {
	var d time.Duration
	for p, c := range now {
		d += c - before[p]
	}
	return d
}

func cpuTimes(pids []int) time.Duration {
	var d time.Duration
	for _, p := range pids {
		d += cpuTime(p)
	}
	return d
}
