package config

import (
	"fmt"
	"net"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/agentgov/agentgov/store"
)

// StorePool sizes the connection pool of each replica to a PostgreSQL
// store. Zero values take the defaults.
type StorePool struct {
	// MaxConns bounds the pooled connections (default 10). Each replica
	// also holds one connection of its own, for its id and the changes it
	// listens for.
	MaxConns int32 `yaml:"max_conns"`
	// MinConns are kept open even when idle (default 0).
	MinConns int32 `yaml:"min_conns"`
	// ConnectTimeout bounds one attempt to connect (default 5s): while the
	// database is unreachable, a decision that needs it is denied after at
	// most this long.
	ConnectTimeout time.Duration `yaml:"connect_timeout"`
	// MaxConnLifetime and MaxConnIdleTime recycle connections (default 1h
	// and 30m).
	MaxConnLifetime time.Duration `yaml:"max_conn_lifetime"`
	MaxConnIdleTime time.Duration `yaml:"max_conn_idle_time"`
}

// Bounds of store_pool.
const (
	maxPoolConns      = 1000
	maxConnectTimeout = time.Minute
)

// Postgres reports whether the store is PostgreSQL (several replicas)
// rather than SQLite in the data directory.
func (c *Config) Postgres() bool { return c.Store != "" }

// ReplicaID is this process's replica id: replica when set, else the host
// name and the port of addr ("web-1:8420"), with any character a replica
// id may not hold replaced by "-". Call it after flags have changed addr.
func (c *Config) ReplicaID() (string, error) {
	if c.Replica != "" {
		return c.Replica, nil
	}
	host, err := os.Hostname()
	if err != nil {
		return "", fmt.Errorf("replica: no replica id is configured and the host name is unknown (%w): set replica", err)
	}
	_, port, err := net.SplitHostPort(c.Addr)
	if err != nil {
		return "", fmt.Errorf("replica: addr %q has no port: set replica", c.Addr)
	}
	id := []byte(host + ":" + port)
	for i, b := range id {
		ok := 'a' <= b && b <= 'z' || 'A' <= b && b <= 'Z' || '0' <= b && b <= '9' || b == '.' || b == '_' || b == ':' || b == '-'
		if !ok || (i == 0 && !('a' <= b && b <= 'z' || 'A' <= b && b <= 'Z' || '0' <= b && b <= '9')) {
			id[i] = '-'
		}
	}
	s := string(id)
	if err := store.ValidReplica(s); err != nil {
		return "", fmt.Errorf("replica: the default id from host name and port: %w: set replica", err)
	}
	return s, nil
}

// validateStore checks store, replica and store_pool.
func (c *Config) validateStore() error {
	bad := func(key, format string, args ...any) error {
		return &Error{Key: key, Msg: fmt.Sprintf(format, args...)}
	}
	if c.Store != "" {
		u, err := url.Parse(c.Store)
		if err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") || u.Host == "" && u.Query().Get("host") == "" {
			return bad("store", "want a PostgreSQL URL, postgres://USER@HOST:PORT/DATABASE?..., or nothing for SQLite in the data directory")
		}
		if _, ok := u.User.Password(); ok || u.Query().Has("password") {
			return bad("store", "the URL holds a password: give it in PGPASSWORD or a password file (PGPASSFILE, ~/.pgpass) instead, so that it is not kept in the configuration")
		}
	}
	if c.Replica != "" {
		if c.Store == "" {
			return bad("replica", "replica ids name the replicas that share a PostgreSQL store: set store too, or remove replica")
		}
		if err := store.ValidReplica(c.Replica); err != nil {
			return bad("replica", "%v", err)
		}
	}
	p := c.StorePool
	if p != (StorePool{}) && c.Store == "" {
		return bad("store_pool", "sizes the connections to a PostgreSQL store: set store too, or remove store_pool")
	}
	if p.MaxConns < 0 || p.MaxConns > maxPoolConns {
		return bad("store_pool.max_conns", "want 1 to %d connections (0 for the default), got %d", maxPoolConns, p.MaxConns)
	}
	if max := p.MaxConns; p.MinConns < 0 || (max > 0 && p.MinConns > max) || (max == 0 && p.MinConns > 10) {
		return bad("store_pool.min_conns", "want 0 to max_conns, got %d", p.MinConns)
	}
	if p.ConnectTimeout < 0 || p.ConnectTimeout > maxConnectTimeout {
		return bad("store_pool.connect_timeout", "want a duration up to %v, got %v", maxConnectTimeout, p.ConnectTimeout)
	}
	if p.MaxConnLifetime < 0 {
		return bad("store_pool.max_conn_lifetime", "must not be negative")
	}
	if p.MaxConnIdleTime < 0 {
		return bad("store_pool.max_conn_idle_time", "must not be negative")
	}
	return nil
}

// redactedStore is the store URL fit for a log line.
func redactedStore(s string) string {
	u, err := url.Parse(s)
	if err != nil {
		return "(unparsable store URL)"
	}
	return strings.TrimSpace(u.Redacted())
}

// StoreName is what logs say the store is: the data directory for SQLite,
// the URL without its password for PostgreSQL.
func (c *Config) StoreName() string {
	if c.Store == "" {
		return c.Data
	}
	return redactedStore(c.Store)
}
