package config

// Provenance bounds the in-memory provenance ledger (docs/provenance.md).
// Zero keeps the default; past a bound the oldest content goes first.
type Provenance struct {
	// MaxSessionBytes bounds one session's content and index.
	MaxSessionBytes int `yaml:"max_session_bytes"`
	// MaxTotalBytes bounds every session's together.
	MaxTotalBytes int `yaml:"max_total_bytes"`
	// MaxSessions bounds the sessions tracked.
	MaxSessions int `yaml:"max_sessions"`
}

// Limits of the provenance keys: below the minimums a session could not
// hold one ordinary tool result.
const (
	minProvenanceSessionBytes = 64 << 10
	maxProvenanceTotalBytes   = 64 << 30
)

func (p Provenance) validate() error {
	bad := func(key, msg string) error { return &Error{Key: "provenance." + key, Msg: msg} }
	switch {
	case p.MaxSessionBytes != 0 && p.MaxSessionBytes < minProvenanceSessionBytes:
		return bad("max_session_bytes", "must be at least 65536 (0 keeps the default, 4 MiB)")
	case p.MaxTotalBytes != 0 && (p.MaxTotalBytes < minProvenanceSessionBytes || p.MaxTotalBytes > maxProvenanceTotalBytes):
		return bad("max_total_bytes", "want 65536 to 68719476736 bytes (0 keeps the default, 256 MiB)")
	case p.MaxSessions < 0:
		return bad("max_sessions", "must not be negative (0 keeps the default, 100000)")
	case p.MaxSessionBytes != 0 && p.MaxTotalBytes != 0 && p.MaxSessionBytes > p.MaxTotalBytes:
		return bad("max_session_bytes", "must not exceed provenance.max_total_bytes")
	}
	return nil
}
