package bundle

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
)

// SigSuffix names the detached signature of a file that is not a bundle
// (an MCP lock file): FILE.sig beside FILE.
const SigSuffix = ".sig"

// detached is the content of FILE.sig: the one-file manifest that was
// signed, and its signatures, in the form a bundle carries them.
type detached struct {
	Manifest   Manifest    `json:"manifest"`
	Signatures []Signature `json:"signatures"`
}

// single is the bundle of one file's content, named by its base name.
func single(name string, data []byte) (*Bundle, error) {
	b := &Bundle{Files: map[string][]byte{filepath.Base(name): data}}
	if err := b.seal(); err != nil {
		return nil, err
	}
	return b, nil
}

// SignFile signs the file at name with key, writing (or adding to) its
// detached signature name.sig. It returns the file's digest.
func SignFile(name string, key ed25519.PrivateKey) (string, error) {
	data, err := os.ReadFile(name)
	if err != nil {
		return "", fmt.Errorf("sign: %w", err)
	}
	b, err := single(name, data)
	if err != nil {
		return "", err
	}
	if old, err := readDetached(name); err == nil && old.Manifest.Files[0].SHA256 == b.Manifest.Files[0].SHA256 {
		b.Signatures = old.Signatures
	}
	b.Sign(key)
	out, err := json.MarshalIndent(detached{b.Manifest, b.Signatures}, "", "  ")
	if err != nil {
		return "", err
	}
	if err := os.WriteFile(name+SigSuffix, append(out, '\n'), 0o644); err != nil {
		return "", fmt.Errorf("sign: %w", err)
	}
	return b.Digest(), nil
}

func readDetached(name string) (*detached, error) {
	raw, err := ReadRegular(name+SigSuffix, MaxSigBytes)
	if err != nil {
		return nil, err
	}
	var d detached
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&d); err != nil {
		return nil, fmt.Errorf("%s%s: %w", name, SigSuffix, err)
	}
	if len(d.Manifest.Files) != 1 {
		return nil, fmt.Errorf("%s%s: want a manifest of one file", name, SigSuffix)
	}
	return &d, nil
}

// VerifyData checks that data, the content of the file at name, is what
// name.sig signs, by one of the trusted keys. It returns the digest. The
// caller verifies and then uses the same bytes, so that the file cannot
// change between the check and the use.
func VerifyData(name string, data []byte, trusted []ed25519.PublicKey) (string, error) {
	d, err := readDetached(name)
	if os.IsNotExist(err) {
		return "", fmt.Errorf("%s: %w (no %s%s)", name, ErrUnsigned, filepath.Base(name), SigSuffix)
	}
	if err != nil {
		return "", err
	}
	b, err := single(name, data)
	if err != nil {
		return "", err
	}
	sum := sha256.Sum256(data)
	if got, want := hex.EncodeToString(sum[:]), d.Manifest.Files[0].SHA256; got != want || d.Manifest.Files[0].Path != filepath.Base(name) {
		return "", fmt.Errorf("%s: %w: its SHA-256 is %s, the signature is of %s (%s)", name, ErrTampered, got, want, d.Manifest.Files[0].Path)
	}
	b.Signatures = d.Signatures
	if err := b.Verify(trusted); err != nil {
		return "", fmt.Errorf("%s: %w", name, err)
	}
	return b.Digest(), nil
}

// VerifyFile is VerifyData of the file at name as it is now.
func VerifyFile(name string, trusted []ed25519.PublicKey) (string, error) {
	data, err := os.ReadFile(name)
	if err != nil {
		return "", fmt.Errorf("verify: %w", err)
	}
	return VerifyData(name, data, trusted)
}
