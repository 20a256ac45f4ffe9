package pin

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// ErrSigned is returned by Repin on pins read from a signed lock: a re-pin
// would have to be signed again, with a key the server does not hold.
var ErrSigned = errors.New("the lock is signed")

// SignedPins holds the verified content of a signed lock, in memory. They
// are never changed at run time: neither on first use nor by Repin.
func SignedPins(l *Lock) *Pins {
	p := MemoryPins(l)
	p.signed = true
	return p
}

// Signed says the pins come from a signed lock and cannot be changed here.
func (p *Pins) Signed() bool { return p.signed }

// Version counts the re-pins made since the pins were opened: a session
// that listed its tools under an older version lists them again.
func (p *Pins) Version() uint64 { return p.version.Load() }

// Repin replaces the pin of one tool of server with def, or removes it when
// def is nil, and writes the lock file. It returns the fingerprint the tool
// was pinned at ("" when it was not pinned). The other pins of the file are
// kept as the file holds them now, as PinIfAbsent does.
func (p *Pins) Repin(server, tool string, def *ToolDef) (string, error) {
	if p.signed {
		return "", ErrSigned
	}
	if def != nil && def.Name != tool {
		return "", fmt.Errorf("re-pin %s/%s: the definition names tool %q", server, tool, def.Name)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	next := p.lock
	if p.path != "" {
		now, err := ReadLock(p.path)
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return "", err
		}
		next = now
	} else {
		next = &Lock{Servers: cloneServers(p.lock.Servers)}
	}
	if next.Servers == nil {
		next.Servers = map[string]map[string]ToolDef{}
	}
	tools := map[string]ToolDef{}
	for name, t := range next.Servers[server] {
		tools[name] = t
	}
	old := ""
	if t, ok := tools[tool]; ok {
		old, _ = t.Fingerprint()
	}
	if def != nil {
		tools[tool] = *def
	} else {
		delete(tools, tool)
	}
	next.Servers[server] = tools
	if p.path != "" {
		if err := os.MkdirAll(filepath.Dir(p.path), 0o755); err != nil {
			return "", fmt.Errorf("write lock: %w", err)
		}
		if err := WriteLock(p.path, next); err != nil {
			return "", err
		}
	}
	p.lock = next
	p.version.Add(1)
	return old, nil
}

func cloneServers(in map[string]map[string]ToolDef) map[string]map[string]ToolDef {
	out := make(map[string]map[string]ToolDef, len(in))
	for s, tools := range in {
		m := make(map[string]ToolDef, len(tools))
		for n, t := range tools {
			m[n] = t
		}
		out[s] = m
	}
	return out
}
