package identity

import (
	"fmt"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/spiffe/go-spiffe/v2/bundle/jwtbundle"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/svid/jwtsvid"

	"github.com/agentgov/agentgov/action"
)

// SPIFFE is the trust domain whose JWT-SVIDs act as the agents the
// registry maps their SPIFFE IDs to (identity.spiffe).
type SPIFFE struct {
	TrustDomain string
	// BundleFile is the trust domain's JWT bundle (a JWK set), read again
	// when it changes.
	BundleFile string
}

type spiffeSource struct {
	td   spiffeid.TrustDomain
	path string
	mu   sync.Mutex
	mod  time.Time
	size int64
	b    *jwtbundle.Bundle
}

func newSPIFFESource(c SPIFFE) (*spiffeSource, error) {
	td, err := spiffeid.TrustDomainFromString(c.TrustDomain)
	if err != nil {
		return nil, fmt.Errorf("trust_domain: %w", err)
	}
	s := &spiffeSource{td: td, path: c.BundleFile}
	if err := s.load(); err != nil {
		return nil, err
	}
	return s, nil
}

func (s *spiffeSource) load() error {
	fi, err := os.Stat(s.path)
	if err != nil {
		return fmt.Errorf("bundle_file: %w", err)
	}
	if s.b != nil && fi.ModTime().Equal(s.mod) && fi.Size() == s.size {
		return nil
	}
	b, err := jwtbundle.Load(s.td, s.path)
	if err != nil {
		return fmt.Errorf("bundle_file: %w", err)
	}
	s.b, s.mod, s.size = b, fi.ModTime(), fi.Size()
	return nil
}

func (s *spiffeSource) bundle() *jwtbundle.Bundle {
	s.mu.Lock()
	defer s.mu.Unlock()
	_ = s.load() // a bundle that cannot be read again keeps the last one
	return s.b
}

func (s *spiffeSource) verify(tok, audience string, reg *Registry) (Subject, error) {
	const kind = action.CredentialSPIFFE
	if audience == "" {
		return Subject{}, refuse(kind, Audience, "", "the server has no audience configured (identity.audience), so it takes no JWT-SVIDs")
	}
	// The trust domain first, from the unverified token: one not
	// configured is named as such rather than as a bad signature.
	if insecure, err := jwtsvid.ParseInsecure(tok, []string{audience}); err == nil && insecure.ID.TrustDomain() != s.td {
		return Subject{}, refuse(kind, ForeignTrustDomain, insecure.ID.String(), "trust domain %s is not %s", insecure.ID.TrustDomain(), s.td)
	}
	sv, err := jwtsvid.ParseAndValidate(tok, s.bundle(), []string{audience})
	if err != nil {
		return Subject{}, svidRefusal(err)
	}
	id := sv.ID.String()
	a := reg.bySPIFFE(id)
	if a == nil {
		return Subject{}, refuse(kind, UnknownAgent, id, "no registered agent has spiffe_id %s", id)
	}
	if a.Revoked() {
		return Subject{}, refuse(kind, Revoked, id, "agent %s was revoked at %s", a.ID, a.RevokedAt.Format(time.RFC3339))
	}
	return Subject{
		Agent: action.Agent{ID: a.ID, Type: a.Type, Labels: a.Labels,
			Credential: &action.Credential{Kind: kind, Subject: id, Issuer: s.td.IDString()}},
		Principal: a.Principal,
		Expires:   sv.Expiry,
	}, nil
}

func svidRefusal(err error) *Refusal {
	const kind = action.CredentialSPIFFE
	msg := err.Error()
	r := func(reason Reason, m string) *Refusal { return &Refusal{Reason: reason, Kind: kind, Msg: m, Err: err} }
	switch {
	case strings.Contains(msg, "expired"):
		return r(Expired, "the JWT-SVID has expired")
	case strings.Contains(msg, "audience"):
		return r(Audience, "the JWT-SVID is not addressed to this server (aud)")
	case strings.Contains(msg, "no bundle found"):
		return r(ForeignTrustDomain, "the JWT-SVID's trust domain is not the configured one")
	case strings.Contains(msg, "no JWT authority"):
		return r(UnknownKey, "the JWT-SVID's key is not in the trust bundle")
	case strings.Contains(msg, "not valid yet"), strings.Contains(msg, "nbf"):
		return r(NotYetValid, "the JWT-SVID is not valid yet")
	case strings.Contains(msg, "signature"), strings.Contains(msg, "verify"), strings.Contains(msg, "cryptographic primitive"):
		return r(Signature, "the JWT-SVID's signature does not verify")
	}
	return r(Malformed, "the JWT-SVID is invalid: "+msg)
}
