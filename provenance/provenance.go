// Package provenance keeps, per session, a ledger of the content an agent
// has seen and where it came from, so that a policy can ask where a value in
// a later call came from (DESIGN §8): typed by the user, or read from a
// tool's result, a web page, another agent. The ledger is in memory and
// bounded, per session and in total, evicting the oldest content first; a
// restart empties it, after which values have no provenance until content
// is seen again (rules built on untrusted(v) then do not fire for content
// seen before the restart, and session.tainted starts false).
package provenance

import (
	"hash/maphash"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
)

// Sources of content. A tool's source is "tool:" and its name ("server/name"
// when it has a server); another agent's is "agent:" and its id.
const (
	User        = "user"
	ToolPrefix  = "tool:"
	AgentPrefix = "agent:"
)

// ToolSource is the source of a tool's result.
func ToolSource(server, name string) string {
	if server != "" {
		return ToolPrefix + server + "/" + name
	}
	return ToolPrefix + name
}

// Defaults of Config.
const (
	DefaultMaxSessionBytes = 4 << 20
	DefaultMaxTotalBytes   = 256 << 20
	DefaultMaxSessions     = 100_000
	// maxTools bounds session.tools: the last calls are what flow rules
	// look at.
	maxTools = 256
	// entryOverhead is what an entry costs besides its text and filter.
	entryOverhead = 96
)

// Config bounds a Ledger. Zero fields take the defaults.
type Config struct {
	// MaxSessionBytes bounds one session's content (its normalised text
	// and index); past it, the session's oldest content goes first.
	MaxSessionBytes int
	// MaxTotalBytes bounds every session's content together; past it, the
	// oldest content of any session goes first.
	MaxTotalBytes int
	// MaxSessions bounds the sessions tracked; past it, the session seen
	// first is forgotten whole.
	MaxSessions int
}

func (c Config) withDefaults() Config {
	if c.MaxSessionBytes <= 0 {
		c.MaxSessionBytes = DefaultMaxSessionBytes
	}
	if c.MaxTotalBytes <= 0 {
		c.MaxTotalBytes = DefaultMaxTotalBytes
	}
	if c.MaxSessions <= 0 {
		c.MaxSessions = DefaultMaxSessions
	}
	return c
}

// Stats are the ledger's counters, for metrics.
type Stats struct {
	Sessions int
	Entries  int
	Bytes    int
	// Added counts content recorded; Duplicates, content already held for
	// the session and source; Evicted, content dropped to stay in bounds
	// (sessions forgotten whole count their entries here too).
	Added, Duplicates, Evicted uint64
}

// Ledger is the per-session record of content and its sources. It is safe
// for concurrent use: writers take a lock, readers (View) take none.
type Ledger struct {
	cfg  Config
	seed maphash.Seed

	mu       sync.Mutex
	sessions map[string]*session
	order    []*session // sessions in order of first sight, for MaxSessions
	queue    []*entry   // every live entry, oldest first, for MaxTotalBytes
	bytes    int
	entries  int

	added, dups, evicted atomic.Uint64
}

// New returns an empty ledger.
func New(cfg Config) *Ledger {
	return &Ledger{cfg: cfg.withDefaults(), seed: maphash.MakeSeed(), sessions: map[string]*session{}}
}

type session struct {
	id     string
	state  atomic.Pointer[state]
	bytes  int
	hashes map[uint64]int // content already held (hash of source and text), with its count
	gone   bool
}

// state is one immutable snapshot of a session: readers load it without a
// lock, writers replace it.
type state struct {
	entries []*entry // oldest first
	tainted bool
	flagged bool
	tools   []string
}

type entry struct {
	s       *session
	source  string
	trusted bool
	text    string // normalised
	words   string // the words form, for Instructed
	filter  filter
	hash    uint64
	base    uint64 // hash under the tool's base name, for a qualified tool source
	size    int
	evicted bool
}

func (l *Ledger) session(id string) *session {
	s := l.sessions[id]
	if s != nil {
		return s
	}
	for len(l.order) >= l.cfg.MaxSessions {
		l.forget(l.order[0])
	}
	s = &session{id: id, hashes: map[uint64]int{}}
	s.state.Store(&state{})
	l.sessions[id] = s
	l.order = append(l.order, s)
	return s
}

// forget drops a session whole. Its entries leave the queue lazily.
func (l *Ledger) forget(s *session) {
	if s.gone {
		return
	}
	s.gone = true
	delete(l.sessions, s.id)
	if i := slices.Index(l.order, s); i >= 0 {
		l.order = slices.Delete(l.order, i, i+1)
	}
	for _, e := range s.state.Load().entries {
		e.evicted = true
		l.bytes -= e.size
		l.entries--
		l.evicted.Add(1)
	}
	s.state.Store(&state{})
}

// Add records content seen in a session from source; trusted says whether
// the source is trusted (the user, a tool a policy trusts). Content already
// recorded for the session from the same source is not recorded twice, so
// that a model proxy seeing the whole conversation on every turn costs
// nothing more. Empty content and an empty session record nothing; content
// from an untrusted source taints the session even when it is too short to
// match.
func (l *Ledger) Add(sessionID, source string, trusted bool, text string) {
	if sessionID == "" || text == "" {
		return
	}
	norm := Normalize(text)
	h := l.hash(source, trusted, norm)
	// A tool's result named without its server ("tool:read_file", as a
	// model proxy knows it) that the gateway recorded with its server
	// ("tool:bank/read_file") is the same content: the base name keys it.
	base := l.hash(baseSource(source), trusted, norm)
	l.mu.Lock()
	defer l.mu.Unlock()
	s := l.session(sessionID)
	st := s.state.Load()
	if s.hashes[h] > 0 || (base != h && !strings.Contains(source, "/") && s.hashes[base] > 0) {
		l.dups.Add(1)
		if !trusted && !st.tainted {
			s.state.Store(&state{entries: st.entries, tainted: true, flagged: st.flagged, tools: st.tools})
		}
		return
	}
	if len(norm) < MinLength {
		if !trusted && !st.tainted {
			s.state.Store(&state{entries: st.entries, tainted: true, flagged: st.flagged, tools: st.tools})
		}
		return
	}
	words := wordsOf(text)
	e := &entry{s: s, source: source, trusted: trusted, text: norm, words: words, filter: newFilter(norm), hash: h, base: base}
	e.size = len(norm) + len(words) + e.filter.bytes() + len(source) + entryOverhead
	if e.size > l.cfg.MaxSessionBytes || e.size > l.cfg.MaxTotalBytes {
		// Bigger than any bound: keep its tail, where a result's latest
		// (and most often quoted) part is, rather than nothing.
		keep := min(l.cfg.MaxSessionBytes/5, l.cfg.MaxTotalBytes/5, len(norm))
		norm = norm[len(norm)-keep:]
		words = words[len(words)-min(keep, len(words)):]
		if i := strings.IndexAny(words, " \n"); i >= 0 && keep < len(e.words) {
			words = words[i+1:] // a cut word is no word
		}
		e.text, e.words, e.filter = norm, words, newFilter(norm)
		e.size = len(norm) + len(words) + e.filter.bytes() + len(source) + entryOverhead
	}
	entries := append(slices.Clip(st.entries), e)
	s.bytes += e.size
	s.hashes[h]++
	if base != h {
		s.hashes[base]++
	}
	l.bytes += e.size
	l.entries++
	l.queue = append(l.queue, e)
	l.added.Add(1)
	drop := 0
	for s.bytes > l.cfg.MaxSessionBytes && drop < len(entries)-1 {
		l.drop(entries[drop])
		drop++
	}
	s.state.Store(&state{entries: entries[drop:], tainted: st.tainted || !trusted, flagged: st.flagged, tools: st.tools})
	for l.bytes > l.cfg.MaxTotalBytes && len(l.queue) > 0 {
		old := l.queue[0]
		l.queue[0] = nil
		l.queue = l.queue[1:]
		if old.evicted {
			continue
		}
		// The oldest live entry of the ledger is the oldest of its session.
		l.drop(old)
		os := old.s.state.Load()
		i := slices.Index(os.entries, old)
		if i >= 0 {
			rest := slices.Clone(os.entries[i+1:])
			old.s.state.Store(&state{entries: rest, tainted: os.tainted, flagged: os.flagged, tools: os.tools})
		}
	}
	l.compactQueue()
}

// drop accounts for an entry's eviction; the caller removes it from its
// session's state.
func (l *Ledger) drop(e *entry) {
	e.evicted = true
	e.s.bytes -= e.size
	keys := []uint64{e.hash}
	if e.base != e.hash {
		keys = append(keys, e.base)
	}
	for _, k := range keys {
		if e.s.hashes[k]--; e.s.hashes[k] <= 0 {
			delete(e.s.hashes, k)
		}
	}
	l.bytes -= e.size
	l.entries--
	l.evicted.Add(1)
}

// compactQueue drops evicted entries from the queue once they are most of
// it, so that it stays proportional to what is live.
func (l *Ledger) compactQueue() {
	if len(l.queue) < 64 || len(l.queue) < 2*l.entries {
		return
	}
	live := make([]*entry, 0, l.entries)
	for _, e := range l.queue {
		if !e.evicted {
			live = append(live, e)
		}
	}
	l.queue = live
}

func (l *Ledger) hash(source string, trusted bool, norm string) uint64 {
	var h maphash.Hash
	h.SetSeed(l.seed)
	h.WriteString(source)
	if trusted {
		h.WriteByte(1)
	} else {
		h.WriteByte(0)
	}
	h.WriteString(norm)
	return h.Sum64()
}

// Called records that a tool was called in the session, for session.tools.
func (l *Ledger) Called(sessionID, tool string) {
	if sessionID == "" || tool == "" {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	s := l.session(sessionID)
	st := s.state.Load()
	tools := st.tools
	if len(tools) >= maxTools {
		tools = tools[len(tools)-maxTools+1:]
	}
	tools = append(slices.Clip(tools), tool)
	s.state.Store(&state{entries: st.entries, tainted: st.tainted, flagged: st.flagged, tools: tools})
}

// Flag marks the session as having seen untrusted content that a policy
// flagged (instructions addressed to the model, say), so that later rules
// can judge its calls more strictly (session.flagged). It also taints it.
func (l *Ledger) Flag(sessionID string) {
	if sessionID == "" {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	s := l.session(sessionID)
	st := s.state.Load()
	if st.flagged {
		return
	}
	s.state.Store(&state{entries: st.entries, tainted: true, flagged: true, tools: st.tools})
}

// Close forgets a session, when it ends.
func (l *Ledger) Close(sessionID string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if s := l.sessions[sessionID]; s != nil {
		l.forget(s)
	}
}

// baseSource is a tool source without its server: "tool:bank/read_file"
// is "tool:read_file".
func baseSource(source string) string {
	if name, ok := strings.CutPrefix(source, ToolPrefix); ok {
		if i := strings.LastIndexByte(name, '/'); i >= 0 {
			return ToolPrefix + name[i+1:]
		}
	}
	return source
}

// Stats returns the ledger's counters.
func (l *Ledger) Stats() Stats {
	l.mu.Lock()
	st := Stats{Sessions: len(l.sessions), Entries: l.entries, Bytes: l.bytes}
	l.mu.Unlock()
	st.Added, st.Duplicates, st.Evicted = l.added.Load(), l.dups.Load(), l.evicted.Load()
	return st
}

// View returns what the ledger holds for a session now. A session never
// seen has an empty view; so does the empty session id.
func (l *Ledger) View(sessionID string) *View {
	if l == nil || sessionID == "" {
		return &View{st: &state{}}
	}
	l.mu.Lock()
	s := l.sessions[sessionID]
	l.mu.Unlock()
	if s == nil {
		return &View{st: &state{}}
	}
	return &View{st: s.state.Load()}
}
