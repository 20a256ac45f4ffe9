package audit

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/mod/sumdb/note"
)

// Key files in a data directory. The private key never leaves audit.key
// (mode 0600); audit.pub is what auditors copy elsewhere, because a verifier
// key kept beside the database proves nothing to someone who could rewrite
// both.
const (
	KeyFile = "audit.key"
	PubFile = "audit.pub"
)

// DefaultOrigin names the log (and its key) when the caller gives no name.
const DefaultOrigin = "agentgov"

// LoadOrCreateKey returns the log's signing key from dir, creating an
// Ed25519 key named origin on first use. An existing key must carry the
// name origin (an empty origin accepts any name): checkpoints of one log are
// signed by one key.
func LoadOrCreateKey(dir, origin string) (note.Signer, note.Verifier, error) {
	return LoadOrCreateKeyFile(filepath.Join(dir, KeyFile), filepath.Join(dir, PubFile), origin)
}

// PubPath is where the public half of the private key file keyPath is
// kept: beside it, its name ending in .pub instead of .key (or with .pub
// added).
func PubPath(keyPath string) string {
	return strings.TrimSuffix(keyPath, ".key") + ".pub"
}

// LoadOrCreateKeyFile is LoadOrCreateKey for a key kept anywhere: the
// private key in keyPath (mode 0600), its public half in pubPath. A key kept
// outside the data directory, where whoever can rewrite the directory cannot
// read it, is what makes a rewritten log impossible to sign again.
func LoadOrCreateKeyFile(keyPath, pubPath, origin string) (note.Signer, note.Verifier, error) {
	skey, err := os.ReadFile(keyPath)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		if _, err := os.Stat(pubPath); err == nil {
			return nil, nil, fmt.Errorf("audit key: %s exists but %s does not; refusing to replace a published key", pubPath, keyPath)
		}
		if origin == "" {
			origin = DefaultOrigin
		}
		return createKey(keyPath, pubPath, origin)
	case err != nil:
		return nil, nil, fmt.Errorf("audit key: %w", err)
	}
	signer, err := note.NewSigner(strings.TrimSpace(string(skey)))
	if err != nil {
		return nil, nil, fmt.Errorf("audit key %s: %w", keyPath, err)
	}
	if origin != "" && signer.Name() != origin {
		return nil, nil, fmt.Errorf("audit key %s is named %q, not %q", keyPath, signer.Name(), origin)
	}
	vkey, err := verifierKey(strings.TrimSpace(string(skey)))
	if err != nil {
		return nil, nil, fmt.Errorf("audit key %s: %w", keyPath, err)
	}
	if pub, err := os.ReadFile(pubPath); err == nil {
		if strings.TrimSpace(string(pub)) != vkey {
			return nil, nil, fmt.Errorf("audit key: %s does not hold the public half of %s", pubPath, keyPath)
		}
	} else if errors.Is(err, fs.ErrNotExist) {
		// A crash between writing the two files leaves only the private
		// key, from which the public one is derived again.
		if err := writeFileAtomic(pubPath, []byte(vkey+"\n"), 0o644); err != nil {
			return nil, nil, fmt.Errorf("audit key: %w", err)
		}
	} else {
		return nil, nil, fmt.Errorf("audit key: %w", err)
	}
	verifier, err := note.NewVerifier(vkey)
	if err != nil {
		return nil, nil, fmt.Errorf("audit key %s: %w", keyPath, err)
	}
	return signer, verifier, nil
}

// LoadVerifier reads a verifier key: a file in the format of audit.pub.
func LoadVerifier(path string) (note.Verifier, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("audit verifier key: %w", err)
	}
	v, err := note.NewVerifier(strings.TrimSpace(string(b)))
	if err != nil {
		return nil, fmt.Errorf("audit verifier key %s: %w", path, err)
	}
	return v, nil
}

func createKey(keyPath, pubPath, origin string) (note.Signer, note.Verifier, error) {
	skey, vkey, err := note.GenerateKey(rand.Reader, origin)
	if err != nil {
		return nil, nil, fmt.Errorf("audit key: generate %q: %w", origin, err)
	}
	signer, err := note.NewSigner(skey)
	if err != nil {
		// GenerateKey accepts names that NewSigner rejects (e.g. with '+').
		return nil, nil, fmt.Errorf("audit key: name %q: %w", origin, err)
	}
	verifier, err := note.NewVerifier(vkey)
	if err != nil {
		return nil, nil, fmt.Errorf("audit key: name %q: %w", origin, err)
	}
	for _, dir := range []string{filepath.Dir(keyPath), filepath.Dir(pubPath)} {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return nil, nil, fmt.Errorf("audit key: %w", err)
		}
	}
	// The private key first: if we crash before the public one is written,
	// the next start derives it; the other order would strand a public key.
	if err := writeFileAtomic(keyPath, []byte(skey+"\n"), 0o600); err != nil {
		return nil, nil, fmt.Errorf("audit key: %w", err)
	}
	if err := writeFileAtomic(pubPath, []byte(vkey+"\n"), 0o644); err != nil {
		return nil, nil, fmt.Errorf("audit key: %w", err)
	}
	return signer, verifier, nil
}

// verifierKey derives the encoded verifier key from an encoded Ed25519
// signer key ("PRIVATE+KEY+name+hash+base64(alg, seed)").
func verifierKey(skey string) (string, error) {
	parts := strings.SplitN(skey, "+", 5)
	if len(parts) != 5 || parts[0] != "PRIVATE" || parts[1] != "KEY" {
		return "", errors.New("malformed private key")
	}
	raw, err := base64.StdEncoding.DecodeString(parts[4])
	if err != nil || len(raw) != 1+ed25519.SeedSize || raw[0] != 1 {
		return "", errors.New("not an Ed25519 private key")
	}
	pub := ed25519.NewKeyFromSeed(raw[1:]).Public().(ed25519.PublicKey)
	return note.NewEd25519VerifierKey(parts[2], pub)
}

// writeFileAtomic writes a file that is either absent or complete, never
// half-written, and on disk before it is renamed into place.
func writeFileAtomic(path string, data []byte, perm os.FileMode) error {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	defer os.Remove(tmp) // no-op after the rename
	if err := f.Chmod(perm); err != nil {
		f.Close()
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}
