package action

import (
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
)

// Effect is what a decision (or a rule) says should happen.
type Effect string

const (
	Allow           Effect = "allow"
	RequireApproval Effect = "require_approval"
	Deny            Effect = "deny"
	// Audit is a rule effect only: an allow that flags the decision for review.
	Audit Effect = "audit"
)

// Strength orders effects from weakest to strongest: allow < audit <
// require_approval < deny. Combining takes the strongest. Unknown effects are
// the strongest of all, so that a corrupt value can only deny.
func (e Effect) Strength() int {
	switch e {
	case Allow:
		return 0
	case Audit:
		return 1
	case RequireApproval:
		return 2
	case Deny:
		return 3
	}
	return 4
}

// Valid reports whether e is a known effect.
func (e Effect) Valid() bool { return e.Strength() < 4 }

// Severity grades a rule, and through it a decision. It drives the automatic
// responses of a policy document.
type Severity string

const (
	SeverityNone     Severity = ""
	SeverityLow      Severity = "low"
	SeverityMedium   Severity = "medium"
	SeverityHigh     Severity = "high"
	SeverityCritical Severity = "critical"
)

// Rank orders severities; -1 for an unknown one.
func (s Severity) Rank() int {
	switch s {
	case SeverityNone:
		return 0
	case SeverityLow:
		return 1
	case SeverityMedium:
		return 2
	case SeverityHigh:
		return 3
	case SeverityCritical:
		return 4
	}
	return -1
}

// ApprovalRef points at the approval ticket of a require_approval decision.
type ApprovalRef struct {
	ID        string `json:"id"`
	Status    string `json:"status"`
	ExpiresAt string `json:"expires_at,omitempty"`
}

// Obligation is something the enforcement point must do with an allowed action,
// such as redacting fields before they are logged or forwarded.
type Obligation struct {
	Type   string   `json:"type"`
	Fields []string `json:"fields,omitempty"`
}

// Decision is agentgov's answer to an Action.
type Decision struct {
	ID          ID           `json:"id"`
	Effect      Effect       `json:"effect"`
	Flagged     bool         `json:"flagged,omitempty"`
	Reasons     []string     `json:"reasons,omitempty"`
	Rules       []string     `json:"rules,omitempty"`
	Severity    Severity     `json:"severity,omitempty"`
	Approval    *ApprovalRef `json:"approval,omitempty"`
	Obligations []Obligation `json:"obligations,omitempty"`
	// Provenance says, for a decision a provenance rule produced, where
	// each untrusted value of the action came from: {"args.recipient":
	// ["tool:read_file"]} (DESIGN §8).
	Provenance map[string][]string `json:"provenance,omitempty"`
	// AuditIndex is the position of the decision in the audit log; nil when no
	// audit log is attached (the pure library).
	AuditIndex *uint64 `json:"audit_index,omitempty"`
}

// ID identifies a decision: 16 bytes laid out like a ULID (48-bit millisecond
// time, 80 bits that are unique per generator; the in-process engine may use
// its start time when nothing in a decision needed the clock), written "dec_" and 26 Crockford
// base32 characters. It is a value rather than a string so that deciding does
// not allocate.
type ID [16]byte

const idPrefix = "dec_"

const crockford = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"

// IsZero reports whether id was never set.
func (id ID) IsZero() bool { return id == ID{} }

// Time returns the millisecond Unix time encoded in id.
func (id ID) Time() int64 {
	var b [8]byte
	copy(b[2:], id[:6])
	return int64(binary.BigEndian.Uint64(b[:]))
}

// String renders id as "dec_" followed by 26 base32 characters.
func (id ID) String() string {
	b, _ := id.MarshalText()
	return string(b)
}

// MarshalText implements encoding.TextMarshaler.
func (id ID) MarshalText() ([]byte, error) {
	out := make([]byte, len(idPrefix)+26)
	copy(out, idPrefix)
	// 128 bits as 26 five-bit groups, the first group holding the top 3 bits.
	hi := binary.BigEndian.Uint64(id[:8])
	lo := binary.BigEndian.Uint64(id[8:])
	for i := 25; i >= 0; i-- {
		out[len(idPrefix)+i] = crockford[lo&31]
		lo = lo>>5 | hi<<59
		hi >>= 5
	}
	return out, nil
}

// UnmarshalText implements encoding.TextUnmarshaler.
func (id *ID) UnmarshalText(b []byte) error {
	p, err := ParseID(string(b))
	if err != nil {
		return err
	}
	*id = p
	return nil
}

// ErrBadID is returned by ParseID for text that is not a decision id.
var ErrBadID = errors.New("not a decision id")

// ParseID parses the text form of a decision id.
func ParseID(s string) (ID, error) {
	rest, ok := strings.CutPrefix(s, idPrefix)
	if !ok || len(rest) != 26 {
		return ID{}, fmt.Errorf("%w: %q", ErrBadID, s)
	}
	var hi, lo uint64
	for i := 0; i < 26; i++ {
		c := rest[i]
		if c >= 'a' && c <= 'z' {
			c -= 'a' - 'A'
		}
		v := strings.IndexByte(crockford, c)
		if v < 0 || (i == 0 && v > 7) {
			return ID{}, fmt.Errorf("%w: %q", ErrBadID, s)
		}
		hi = hi<<5 | lo>>59
		lo = lo<<5 | uint64(v)
	}
	var id ID
	binary.BigEndian.PutUint64(id[:8], hi)
	binary.BigEndian.PutUint64(id[8:], lo)
	return id, nil
}

// NewID builds an id from a millisecond time and 80 unique bits (the low 80
// bits of hi:lo, hi holding the top 16).
func NewID(unixMilli int64, hi uint16, lo uint64) ID {
	var id ID
	var t [8]byte
	binary.BigEndian.PutUint64(t[:], uint64(unixMilli))
	copy(id[:6], t[2:])
	binary.BigEndian.PutUint16(id[6:8], hi)
	binary.BigEndian.PutUint64(id[8:], lo)
	return id
}

// Outcome is what really happened after an allowed action: it settles budgets
// and feeds SLIs. Token counts split into input and output where the caller
// (or the model proxy, which reads the provider's usage) knows them.
type Outcome struct {
	Status       string  `json:"status"` // "ok" or "error"
	Tokens       int64   `json:"tokens,omitempty"`
	InputTokens  int64   `json:"input_tokens,omitempty"`
	OutputTokens int64   `json:"output_tokens,omitempty"`
	CostUSD      float64 `json:"cost_usd,omitempty"`
	LatencyMS    float64 `json:"latency_ms,omitempty"`
	Error        string  `json:"error,omitempty"`
}

// Validate checks an outcome before it is recorded.
func (o *Outcome) Validate() error {
	switch o.Status {
	case "ok", "error":
	default:
		return &FieldError{Field: "status", Problem: fmt.Sprintf("must be \"ok\" or \"error\", not %q", o.Status)}
	}
	for _, f := range []struct {
		name string
		v    float64
	}{{"tokens", float64(o.Tokens)}, {"input_tokens", float64(o.InputTokens)}, {"output_tokens", float64(o.OutputTokens)}, {"cost_usd", o.CostUSD}, {"latency_ms", o.LatencyMS}} {
		if f.v < 0 {
			return &FieldError{Field: f.name, Problem: "must not be negative"}
		}
	}
	return nil
}

// TotalTokens is Tokens, or input plus output when only those are given.
func (o *Outcome) TotalTokens() int64 {
	if o.Tokens > 0 {
		return o.Tokens
	}
	return o.InputTokens + o.OutputTokens
}
