package bundle

import (
	"crypto/ed25519"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"os"
	"runtime"
	"strings"
)

// Thumbprint is the RFC 7638 thumbprint of an Ed25519 public key: the
// base64url SHA-256 of its canonical JWK.
func Thumbprint(pub ed25519.PublicKey) string {
	jwk := `{"crv":"Ed25519","kty":"OKP","x":"` + base64.RawURLEncoding.EncodeToString(pub) + `"}`
	sum := sha256.Sum256([]byte(jwk))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

// decodeKeyBytes reads the encodings a key file may use: unpadded or padded
// base64url, standard base64, or hex.
func decodeKeyBytes(s string) ([]byte, bool) {
	for _, enc := range []*base64.Encoding{base64.RawURLEncoding, base64.URLEncoding, base64.StdEncoding, base64.RawStdEncoding} {
		if b, err := enc.DecodeString(s); err == nil {
			return b, true
		}
	}
	if b, err := hex.DecodeString(s); err == nil {
		return b, true
	}
	return nil, false
}

// LoadPrivateKey reads an Ed25519 private key as `agentgov keygen` writes
// it (the 32-byte seed, base64url, in a file of mode 0600), or as a PKCS #8
// PEM block. A key file that others may read is refused: a signing key
// anyone on the machine can copy signs nothing worth trusting.
func LoadPrivateKey(name string) (ed25519.PrivateKey, error) {
	fi, err := os.Stat(name)
	if err != nil {
		return nil, fmt.Errorf("signing key: %w", err)
	}
	if runtime.GOOS != "windows" && fi.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("signing key %s has mode %v: others may read it; chmod 600 it", name, fi.Mode().Perm())
	}
	data, err := os.ReadFile(name)
	if err != nil {
		return nil, fmt.Errorf("signing key: %w", err)
	}
	if blk, _ := pem.Decode(data); blk != nil {
		k, err := x509.ParsePKCS8PrivateKey(blk.Bytes)
		if err != nil {
			return nil, fmt.Errorf("signing key %s: %w", name, err)
		}
		ek, ok := k.(ed25519.PrivateKey)
		if !ok {
			return nil, fmt.Errorf("signing key %s: not an Ed25519 key", name)
		}
		return ek, nil
	}
	text := strings.TrimSpace(string(data))
	if strings.HasPrefix(text, "{") {
		// A private JWK: its "d" is the seed.
		var jwk struct {
			Kty string `json:"kty"`
			Crv string `json:"crv"`
			D   string `json:"d"`
		}
		if err := json.Unmarshal([]byte(text), &jwk); err != nil || jwk.Kty != "OKP" || jwk.Crv != "Ed25519" || jwk.D == "" {
			return nil, fmt.Errorf("signing key %s: not an Ed25519 private JWK", name)
		}
		text = jwk.D
	}
	b, ok := decodeKeyBytes(text)
	switch {
	case ok && len(b) == ed25519.SeedSize:
		return ed25519.NewKeyFromSeed(b), nil
	case ok && len(b) == ed25519.PrivateKeySize:
		k := ed25519.PrivateKey(b)
		// The second half must be the public key of the first.
		if !ed25519.NewKeyFromSeed(k.Seed()).Equal(k) {
			return nil, fmt.Errorf("signing key %s: its public half does not match its seed", name)
		}
		return k, nil
	}
	return nil, fmt.Errorf("signing key %s: want an Ed25519 seed (32 bytes, base64url) or a PKCS #8 PEM key", name)
}

// LoadPublicKey reads an Ed25519 public key: the raw 32 bytes in unpadded
// base64url on one line (as `agentgov keygen` writes PREFIX.pub), a JWK, or
// a PKIX PEM block.
func LoadPublicKey(name string) (ed25519.PublicKey, error) {
	data, err := os.ReadFile(name)
	if err != nil {
		return nil, fmt.Errorf("public key: %w", err)
	}
	k, err := ParsePublicKey(data)
	if err != nil {
		return nil, fmt.Errorf("public key %s: %w", name, err)
	}
	return k, nil
}

// ParsePublicKey is LoadPublicKey of a file's content.
func ParsePublicKey(data []byte) (ed25519.PublicKey, error) {
	if blk, _ := pem.Decode(data); blk != nil {
		k, err := x509.ParsePKIXPublicKey(blk.Bytes)
		if err != nil {
			return nil, err
		}
		ek, ok := k.(ed25519.PublicKey)
		if !ok {
			return nil, fmt.Errorf("not an Ed25519 key")
		}
		return ek, nil
	}
	s := strings.TrimSpace(string(data))
	if strings.HasPrefix(s, "{") {
		var jwk struct {
			Kty string `json:"kty"`
			Crv string `json:"crv"`
			X   string `json:"x"`
		}
		if err := json.Unmarshal([]byte(s), &jwk); err != nil {
			return nil, fmt.Errorf("JWK: %w", err)
		}
		if jwk.Kty != "OKP" || jwk.Crv != "Ed25519" {
			return nil, fmt.Errorf("JWK is %s/%s, not OKP/Ed25519", jwk.Kty, jwk.Crv)
		}
		s = jwk.X
	}
	b, ok := decodeKeyBytes(s)
	if !ok || len(b) != ed25519.PublicKeySize {
		return nil, fmt.Errorf("want a 32-byte Ed25519 public key in base64url")
	}
	return ed25519.PublicKey(b), nil
}

// LoadPublicKeys reads every named public key.
func LoadPublicKeys(names []string) ([]ed25519.PublicKey, error) {
	out := make([]ed25519.PublicKey, 0, len(names))
	for _, n := range names {
		k, err := LoadPublicKey(n)
		if err != nil {
			return nil, err
		}
		out = append(out, k)
	}
	return out, nil
}
