package identity

import "fmt"

// Reason is why a credential was refused: a stable code in the 401's body
// and the audit entry.
type Reason string

// The reasons.
const (
	Malformed          Reason = "malformed"
	Signature          Reason = "signature"
	Expired            Reason = "expired"
	NotYetValid        Reason = "not_yet_valid"
	Lifetime           Reason = "lifetime"
	Audience           Reason = "audience"
	Issuer             Reason = "issuer"
	Replayed           Reason = "replayed"
	UnknownKey         Reason = "unknown_key"
	UnknownAgent       Reason = "unknown_agent"
	Revoked            Reason = "revoked"
	ForeignTrustDomain Reason = "foreign_trust_domain"
	UnknownToken       Reason = "unknown_token"
	// Unavailable is a refusal for want of a check that could not be made
	// (the replay cache's store, an issuer's keys): fail closed.
	Unavailable Reason = "unavailable"
)

// Refusal is a refused credential.
type Refusal struct {
	Reason Reason
	// Kind is the credential kind that was refused, when it was told.
	Kind string
	// Subject is who the credential claimed to be, when it was readable;
	// for the audit entry, never trusted.
	Subject string
	Msg     string
	Err     error
}

func (r *Refusal) Error() string {
	return fmt.Sprintf("credential refused (%s): %s", r.Reason, r.Msg)
}

func (r *Refusal) Unwrap() error { return r.Err }

func refuse(kind string, reason Reason, subject, format string, args ...any) *Refusal {
	return &Refusal{Reason: reason, Kind: kind, Subject: subject, Msg: fmt.Sprintf(format, args...)}
}
