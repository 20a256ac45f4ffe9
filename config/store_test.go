package config

import (
	"os"
	"strings"
	"testing"
	"time"
)

func TestStoreKeys(t *testing.T) {
	c, err := Parse("agentgov.yaml", []byte(`
store: postgres://agentgov@db.internal:5432/agentgov?sslmode=verify-full
replica: web-1
store_pool: {max_conns: 20, min_conns: 2, connect_timeout: 2s, max_conn_lifetime: 30m, max_conn_idle_time: 5m}
`))
	if err != nil {
		t.Fatal(err)
	}
	want := StorePool{MaxConns: 20, MinConns: 2, ConnectTimeout: 2 * time.Second, MaxConnLifetime: 30 * time.Minute, MaxConnIdleTime: 5 * time.Minute}
	if !c.Postgres() || c.Replica != "web-1" || c.StorePool != want {
		t.Fatalf("parsed %+v", c)
	}
	if id, err := c.ReplicaID(); err != nil || id != "web-1" {
		t.Fatalf("replica id %q, %v", id, err)
	}
	if c.StoreName() != "postgres://agentgov@db.internal:5432/agentgov?sslmode=verify-full" {
		t.Fatalf("store name %q", c.StoreName())
	}
	// Without store: SQLite, and the data directory names it.
	c, err = Parse("agentgov.yaml", []byte(""))
	if err != nil || c.Postgres() || c.StoreName() != DefaultData {
		t.Fatalf("default store: %+v, %v", c, err)
	}
}

// The default replica id is the host name and the port of addr, as flags
// leave addr.
func TestDefaultReplicaID(t *testing.T) {
	host, err := os.Hostname()
	if err != nil {
		t.Skip(err)
	}
	c, err := Parse("agentgov.yaml", []byte("store: postgres://u@h/db\naddr: 0.0.0.0:9000\n"))
	if err != nil {
		t.Fatal(err)
	}
	c.Addr = "0.0.0.0:9001" // as --addr would
	id, err := c.ReplicaID()
	if err != nil || !strings.HasSuffix(id, ":9001") || len(id) != len(host)+len(":9001") {
		t.Fatalf("default replica id %q, %v (host %q)", id, err, host)
	}
}

func TestBadStoreKeysNameTheKey(t *testing.T) {
	for _, c := range []struct{ src, key string }{
		{"store: mysql://u@h/db", "store"},
		{"store: /var/lib/agentgov", "store"},
		{"store: postgres://u:hunter2@h/db", "store"},
		{"store: postgres://u@h/db?password=hunter2", "store"},
		{"replica: web-1", "replica"},
		{"store: postgres://u@h/db\nreplica: 'web 1'", "replica"},
		{"store_pool: {max_conns: 4}", "store_pool"},
		{"store: postgres://u@h/db\nstore_pool: {max_conns: -1}", "store_pool.max_conns"},
		{"store: postgres://u@h/db\nstore_pool: {max_conns: 5000}", "store_pool.max_conns"},
		{"store: postgres://u@h/db\nstore_pool: {max_conns: 2, min_conns: 3}", "store_pool.min_conns"},
		{"store: postgres://u@h/db\nstore_pool: {connect_timeout: 2h}", "store_pool.connect_timeout"},
		{"store: postgres://u@h/db\nstore_pool: {max_conn_lifetime: -1s}", "store_pool.max_conn_lifetime"},
		{"store: postgres://u@h/db\nstore_pool: {pool_size: 3}", "pool_size"},
	} {
		_, err := Parse("agentgov.yaml", []byte(c.src))
		if err == nil || !strings.Contains(err.Error(), c.key) {
			t.Errorf("%q: %v; want an error naming %s", c.src, err, c.key)
		}
		if err != nil && strings.Contains(err.Error(), "hunter2") {
			t.Errorf("%q: the error repeats the password: %v", c.src, err)
		}
	}
}
