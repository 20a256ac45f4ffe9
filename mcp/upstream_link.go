package mcp

import (
	"encoding/json"
	"sync"

	sdk "github.com/modelcontextprotocol/go-sdk/mcp"
)

// upstreamLink is a session's connection to its upstream. It is dialled
// on first use and again after the upstream died; each connection is a
// new generation, so that what belonged to a dead one (its requests, its
// answers) is told apart from what belongs to the live one. It keeps the
// client's initialize, replayed to a restarted upstream.
type upstreamLink struct {
	mu         sync.Mutex
	conn       sdk.Connection // nil until dialled, and again after the upstream died
	gen        int
	initParams json.RawMessage
	started    bool // the client finished initialising
}

// restart is what a new connection must be brought to: restart says an
// earlier generation existed, init and started what the client had done.
type restart struct {
	again   bool
	init    json.RawMessage
	started bool
}

// get returns the live connection, or opens one with open (under the
// link's lock, so that one dial serves every caller waiting for it). open
// says whether it used up generation gen: a connection was made, even if
// bringing it up to date then failed; a dial that failed uses none.
func (l *upstreamLink) get(open func(gen int, r restart) (sdk.Connection, bool, error)) (sdk.Connection, int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.conn != nil {
		return l.conn, l.gen, nil
	}
	r := restart{again: l.gen > 0, init: l.initParams, started: l.started}
	conn, used, err := open(l.gen+1, r)
	if used {
		l.gen++
	}
	if err != nil {
		return nil, 0, err
	}
	l.conn = conn
	return conn, l.gen, nil
}

// of returns the connection of generation gen, nil when that one is gone.
func (l *upstreamLink) of(gen int) sdk.Connection {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.gen != gen {
		return nil
	}
	return l.conn
}

// drop closes generation gen's connection if it is still the live one.
func (l *upstreamLink) drop(gen int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.gen == gen && l.conn != nil {
		l.conn.Close()
		l.conn = nil
	}
}

// close closes the live connection, whichever it is.
func (l *upstreamLink) close() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.conn != nil {
		l.conn.Close()
		l.conn = nil
	}
}

func (l *upstreamLink) setInit(params json.RawMessage) {
	l.mu.Lock()
	l.initParams = append(json.RawMessage(nil), params...)
	l.mu.Unlock()
}

func (l *upstreamLink) setStarted() {
	l.mu.Lock()
	l.started = true
	l.mu.Unlock()
}
