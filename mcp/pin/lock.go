package pin

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
)

// Lock is the content of an mcp.lock file: for each upstream server, the
// tool definitions a person reviewed. It is written to be read in a code
// review like go.sum: one section per server, one fingerprint line per tool
// followed by the pinned definition, everything in a stable order, so that a
// changed tool shows up as a two-line diff.
type Lock struct {
	Servers map[string]map[string]ToolDef
}

const lockHeader = `# agentgov MCP tool pins: review changes here like go.sum.
# Regenerate a server's section with: agentgov mcp pin --lock FILE --name SERVER -- COMMAND ARGS...
# "server NAME FINGERPRINT" covers the whole tool set; each "tool SERVER NAME FINGERPRINT" line
# is followed by the pinned definition in canonical JSON (RFC 8785).
`

// Pin replaces the pins of one server with tools.
func (l *Lock) Pin(server string, tools []ToolDef) {
	if l.Servers == nil {
		l.Servers = map[string]map[string]ToolDef{}
	}
	m := make(map[string]ToolDef, len(tools))
	for _, t := range tools {
		m[t.Name] = t
	}
	l.Servers[server] = m
}

// Tools returns the pinned tools of server sorted by name, and whether the
// server has a section at all.
func (l *Lock) Tools(server string) ([]ToolDef, bool) {
	m, ok := l.Servers[server]
	if !ok {
		return nil, false
	}
	out := make([]ToolDef, 0, len(m))
	for _, t := range m {
		out = append(out, t)
	}
	slices.SortFunc(out, func(a, b ToolDef) int { return strings.Compare(a.Name, b.Name) })
	return out, true
}

// Marshal writes the lock in its file format.
func (l *Lock) Marshal() ([]byte, error) {
	var buf bytes.Buffer
	buf.WriteString(lockHeader)
	servers := make([]string, 0, len(l.Servers))
	for s := range l.Servers {
		servers = append(servers, s)
	}
	slices.Sort(servers)
	for _, s := range servers {
		tools, _ := l.Tools(s)
		sfp, err := ServerFingerprint(tools)
		if err != nil {
			return nil, err
		}
		fmt.Fprintf(&buf, "\nserver %s %s\n", s, sfp)
		for _, t := range tools {
			c, err := t.Canonical()
			if err != nil {
				return nil, err
			}
			fp, _ := t.Fingerprint()
			fmt.Fprintf(&buf, "tool %s %s %s\n\t%s\n", s, t.Name, fp, c)
		}
	}
	return buf.Bytes(), nil
}

// ParseLock reads a lock file. Every fingerprint is recomputed from the
// definition beside it, so a hand-edited definition whose fingerprint was
// not updated (or the reverse) is an error naming the line, not a silent
// new pin.
func ParseLock(name string, data []byte) (*Lock, error) {
	l := &Lock{Servers: map[string]map[string]ToolDef{}}
	serverFP := map[string]string{}
	serverLine := map[string]int{}
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 0, 64*1024), 16<<20)
	n := 0
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%s:%d: %s", name, n, fmt.Sprintf(format, args...))
	}
	var pending *struct {
		server, tool, fp string
	}
	for sc.Scan() {
		n++
		line := sc.Text()
		if pending != nil {
			def, ok := strings.CutPrefix(line, "\t")
			if !ok {
				return nil, bad("want the tab-indented definition of tool %s/%s", pending.server, pending.tool)
			}
			t, err := ParseToolDef([]byte(def))
			if err != nil {
				return nil, bad("%v", err)
			}
			if t.Name != pending.tool {
				return nil, bad("definition names tool %q, the line above names %q", t.Name, pending.tool)
			}
			fp, err := t.Fingerprint()
			if err != nil {
				return nil, bad("%v", err)
			}
			if fp != pending.fp {
				return nil, bad("tool %s/%s: definition hashes to %s, not the pinned %s", pending.server, pending.tool, fp, pending.fp)
			}
			l.Servers[pending.server][t.Name] = t
			pending = nil
			continue
		}
		if strings.TrimSpace(line) == "" || strings.HasPrefix(line, "#") {
			continue
		}
		f := strings.Fields(line)
		switch {
		case f[0] == "server" && len(f) == 3:
			if _, dup := l.Servers[f[1]]; dup {
				return nil, bad("server %q appears twice", f[1])
			}
			l.Servers[f[1]] = map[string]ToolDef{}
			serverFP[f[1]] = f[2]
			serverLine[f[1]] = n
		case f[0] == "tool" && len(f) == 4:
			tools, ok := l.Servers[f[1]]
			if !ok {
				return nil, bad("tool %s/%s before its server line", f[1], f[2])
			}
			if _, dup := tools[f[2]]; dup {
				return nil, bad("tool %s/%s appears twice", f[1], f[2])
			}
			pending = &struct{ server, tool, fp string }{f[1], f[2], f[3]}
		default:
			return nil, bad("want \"server NAME FINGERPRINT\" or \"tool SERVER NAME FINGERPRINT\", got %q", line)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	if pending != nil {
		n++
		return nil, bad("missing the definition of tool %s/%s", pending.server, pending.tool)
	}
	for s, want := range serverFP {
		tools, _ := l.Tools(s)
		got, err := ServerFingerprint(tools)
		if err != nil {
			return nil, err
		}
		if got != want {
			n = serverLine[s]
			return nil, bad("server %s: its tools hash to %s, not the pinned %s", s, got, want)
		}
	}
	return l, nil
}

// ReadLock reads a lock file. A missing file is reported with an error
// satisfying errors.Is(err, fs.ErrNotExist), and an empty lock.
func ReadLock(path string) (*Lock, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return &Lock{Servers: map[string]map[string]ToolDef{}}, fmt.Errorf("read lock: %w", err)
	}
	return ParseLock(path, data)
}

// WriteLock replaces the file at path with l, atomically: a reader sees the
// old file or the new one, never half of one.
func WriteLock(path string, l *Lock) error {
	data, err := l.Marshal()
	if err != nil {
		return err
	}
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, ".mcp.lock-*")
	if err != nil {
		return fmt.Errorf("write lock: %w", err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return fmt.Errorf("write lock: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("write lock: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("write lock: %w", err)
	}
	if err := os.Chmod(tmp.Name(), 0o644); err != nil {
		return fmt.Errorf("write lock: %w", err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("write lock: %w", err)
	}
	return nil
}

// Pins is a lock shared by the gateways of one process: the sessions of
// every upstream read it, and trust-on-first-use writes to it.
type Pins struct {
	mu   sync.Mutex
	path string // "" keeps the pins in memory only
	lock *Lock
	// signed says the pins are the verified bytes of a signed lock: only
	// a person holding the signing key may change them (see SignedPins).
	signed bool
	// version counts the re-pins, so that sessions list again after one.
	version atomic.Uint64
}

// OpenPins loads the lock file at path. A missing file is an empty lock,
// to be created on the first pin; a malformed one is an error, because
// running with pins silently dropped would un-quarantine every tool.
func OpenPins(path string) (*Pins, error) {
	l, err := ReadLock(path)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	return &Pins{path: path, lock: l}, nil
}

// MemoryPins holds pins that are never written anywhere.
func MemoryPins(l *Lock) *Pins {
	if l == nil {
		l = &Lock{}
	}
	return &Pins{lock: l}
}

// Path is the lock file, "" for in-memory pins.
func (p *Pins) Path() string { return p.path }

// Server returns the pinned tools of server by name, and whether the server
// has been pinned at all.
func (p *Pins) Server(server string) (map[string]ToolDef, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	m, ok := p.lock.Servers[server]
	if !ok {
		return nil, false
	}
	return maps.Clone(m), true
}

// PinIfAbsent pins tools for server unless it already has pins, and writes
// the lock file. It reports whether it pinned.
func (p *Pins) PinIfAbsent(server string, tools []ToolDef) (bool, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if _, ok := p.lock.Servers[server]; ok {
		return false, nil
	}
	if p.path == "" {
		p.lock.Pin(server, tools)
		return true, nil
	}
	// Another gateway may have pinned its own server in the same file
	// since it was read: pin over what the file holds now, so as to keep
	// those pins, and take this server's if it was pinned meanwhile.
	now, err := ReadLock(p.path)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return false, err
	}
	if m, ok := now.Servers[server]; ok {
		p.lock.Servers[server] = m
		return false, nil
	}
	now.Pin(server, tools)
	if err := os.MkdirAll(filepath.Dir(p.path), 0o755); err != nil {
		return false, fmt.Errorf("write lock: %w", err)
	}
	if err := WriteLock(p.path, now); err != nil {
		return false, err
	}
	p.lock = now
	return true, nil
}
