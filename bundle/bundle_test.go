package bundle

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const doc = `version: agentgov/v1
name: t
default: deny
rules:
  - {id: reads, match: {tools: ["read_*"]}, effect: allow}
`

func policyDir(t *testing.T) string { return policyDirF(t) }

func policyDirF(t testing.TB) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "t.yaml"), []byte(doc), 0o644); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dir, "README.txt"), []byte("not policy"), 0o644)
	return dir
}

func newKey(t *testing.T) (ed25519.PublicKey, ed25519.PrivateKey) { return newKeyF(t) }

func newKeyF(t testing.TB) (ed25519.PublicKey, ed25519.PrivateKey) {
	t.Helper()
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return pub, priv
}

func built(t *testing.T, priv ed25519.PrivateKey) []byte {
	t.Helper()
	b, err := Build(policyDir(t))
	if err != nil {
		t.Fatal(err)
	}
	if priv != nil {
		b.Sign(priv)
	}
	var buf bytes.Buffer
	if err := b.Write(&buf); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// members unpacks an archive as a list, so that a test can edit it the way
// an attacker holding the file would, and pack it again.
type member struct {
	name string
	typ  byte
	data []byte
}

func unpack(t *testing.T, raw []byte) []member {
	t.Helper()
	zr, err := gzip.NewReader(bytes.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	tr := tar.NewReader(zr)
	var out []member
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		d, _ := io.ReadAll(tr)
		out = append(out, member{h.Name, h.Typeflag, d})
	}
}

func pack(t *testing.T, ms []member) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	tw := tar.NewWriter(zw)
	for _, m := range ms {
		h := &tar.Header{Name: m.name, Typeflag: m.typ, Mode: 0o644, Size: int64(len(m.data))}
		if m.typ == tar.TypeSymlink {
			h.Linkname, h.Size = "/etc/passwd", 0
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if m.typ == tar.TypeReg {
			tw.Write(m.data)
		}
	}
	tw.Close()
	zw.Close()
	return buf.Bytes()
}

func TestSignedBundleVerifiesAndTheDigestNamesTheContent(t *testing.T) {
	pub, priv := newKey(t)
	raw := built(t, priv)
	b, err := Read(bytes.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Verify([]ed25519.PublicKey{pub}); err != nil {
		t.Fatalf("verify: %v", err)
	}
	if _, ok := b.Files["README.txt"]; ok || len(b.Files) != 1 {
		t.Fatalf("files: %v", b.Files)
	}
	if !strings.HasPrefix(b.Digest(), "sha256:") || len(b.Digest()) != 71 {
		t.Fatalf("digest %q", b.Digest())
	}
	// The same content gives the same bytes and digest, signed or not.
	again := built(t, nil)
	b2, _ := Read(bytes.NewReader(again))
	if b2.Digest() != b.Digest() {
		t.Fatalf("digest differs: %s %s", b.Digest(), b2.Digest())
	}
	if !bytes.Equal(again, built(t, nil)) {
		t.Fatal("two builds of one directory differ")
	}
}

func TestTamperedBundlesAreRefused(t *testing.T) {
	pub, priv := newKey(t)
	raw := built(t, priv)
	trusted := []ed25519.PublicKey{pub}
	edit := func(f func([]member) []member) []byte { return pack(t, f(unpack(t, raw))) }
	cases := map[string]struct {
		raw  []byte
		want error
	}{
		"a policy edited": {edit(func(ms []member) []member {
			for i := range ms {
				if ms[i].name == "t.yaml" {
					ms[i].data = []byte(strings.Replace(doc, "default: deny", "default: allow", 1))
				}
			}
			return ms
		}), ErrTampered},
		"a file added": {edit(func(ms []member) []member {
			return append(ms, member{"allow-all.yaml", tar.TypeReg, []byte("version: agentgov/v1\nname: x\ndefault: allow\n")})
		}), ErrTampered},
		"a file removed": {edit(func(ms []member) []member {
			var out []member
			for _, m := range ms {
				if m.name != "t.yaml" {
					out = append(out, m)
				}
			}
			return out
		}), ErrTampered},
		"a path out of the bundle": {edit(func(ms []member) []member {
			return append(ms, member{"../../etc/x.yaml", tar.TypeReg, []byte("x")})
		}), ErrTampered},
		"a symlink": {edit(func(ms []member) []member {
			return append(ms, member{"link.yaml", tar.TypeSymlink, nil})
		}), ErrTampered},
		"a member twice": {edit(func(ms []member) []member {
			return append(ms, member{"t.yaml", tar.TypeReg, []byte("version: agentgov/v1\nname: x\ndefault: allow\n")})
		}), ErrTampered},
		"no manifest": {edit(func(ms []member) []member { return ms[1:] }), ErrTampered},
		// The attacker edits a policy and rewrites the manifest to match:
		// the files agree with it, the signature does not.
		"policy and manifest rewritten": {func() []byte {
			b, _ := Read(bytes.NewReader(raw))
			b.Files["t.yaml"] = []byte(strings.Replace(doc, "default: deny", "default: allow", 1))
			sigs := b.Signatures
			if err := b.seal(); err != nil {
				t.Fatal(err)
			}
			b.Signatures = sigs
			var buf bytes.Buffer
			b.Write(&buf)
			return buf.Bytes()
		}(), ErrUntrusted},
		"signatures removed": {edit(func(ms []member) []member {
			var out []member
			for _, m := range ms {
				if m.name != SignaturesName {
					out = append(out, m)
				}
			}
			return out
		}), ErrUnsigned},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			b, err := Read(bytes.NewReader(c.raw))
			if err == nil {
				err = b.Verify(trusted)
			}
			if !errors.Is(err, c.want) {
				t.Fatalf("got %v, want %v", err, c.want)
			}
		})
	}
}

func TestAnotherKeysSignatureIsNotTrusted(t *testing.T) {
	pub, _ := newKey(t)
	_, other := newKey(t)
	b, _ := Read(bytes.NewReader(built(t, other)))
	if err := b.Verify([]ed25519.PublicKey{pub}); !errors.Is(err, ErrUntrusted) {
		t.Fatalf("got %v", err)
	}
	// A second signature by a trusted key makes it trusted.
	_, priv := newKey(t)
	b.Sign(priv)
	if err := b.Verify([]ed25519.PublicKey{priv.Public().(ed25519.PublicKey)}); err != nil {
		t.Fatal(err)
	}
}

func TestLoadPolicyNamesTheBundleAndRefusesWhatIsNotTrusted(t *testing.T) {
	pub, priv := newKey(t)
	dir := t.TempDir()
	signed, unsigned := filepath.Join(dir, "s.tar.gz"), filepath.Join(dir, "u.tar.gz")
	os.WriteFile(signed, built(t, priv), 0o644)
	os.WriteFile(unsigned, built(t, nil), 0o644)
	set, err := LoadPolicy(signed, []ed25519.PublicKey{pub})
	if err != nil {
		t.Fatal(err)
	}
	b, _ := ReadFile(signed)
	if set.Bundle() != b.Digest() || len(set.Documents()) != 1 {
		t.Fatalf("bundle %q, want %q", set.Bundle(), b.Digest())
	}
	if _, err := LoadPolicy(unsigned, []ed25519.PublicKey{pub}); !errors.Is(err, ErrUnsigned) {
		t.Fatalf("unsigned: %v", err)
	}
	// Without trusted keys a bundle is read for its content (replay, eval).
	if _, err := LoadPolicy(unsigned, nil); err != nil {
		t.Fatal(err)
	}
}

func TestKeyFiles(t *testing.T) {
	pub, priv := newKey(t)
	dir := t.TempDir()
	kf, pf := filepath.Join(dir, "k.key"), filepath.Join(dir, "k.pub")
	os.WriteFile(kf, []byte(base64.RawURLEncoding.EncodeToString(priv.Seed())+"\n"), 0o600)
	os.WriteFile(pf, []byte(base64.RawURLEncoding.EncodeToString(pub)+"\n"), 0o644)
	k, err := LoadPrivateKey(kf)
	if err != nil || !k.Equal(priv) {
		t.Fatalf("private: %v", err)
	}
	p, err := LoadPublicKey(pf)
	if err != nil || !p.Equal(pub) {
		t.Fatalf("public: %v", err)
	}
	// A signing key others can read is refused.
	os.Chmod(kf, 0o644)
	if _, err := LoadPrivateKey(kf); err == nil || !strings.Contains(err.Error(), "chmod 600") {
		t.Fatalf("world-readable key: %v", err)
	}
	os.WriteFile(pf, []byte("not a key"), 0o644)
	if _, err := LoadPublicKey(pf); err == nil {
		t.Fatal("garbage public key accepted")
	}
}

func TestDetachedSignatureOfALockFile(t *testing.T) {
	pub, priv := newKey(t)
	dir := t.TempDir()
	lock := filepath.Join(dir, "mcp.lock")
	os.WriteFile(lock, []byte(`{"version":1,"servers":{}}`), 0o644)
	trusted := []ed25519.PublicKey{pub}
	if _, err := VerifyFile(lock, trusted); !errors.Is(err, ErrUnsigned) {
		t.Fatalf("unsigned lock: %v", err)
	}
	d, err := SignFile(lock, priv)
	if err != nil {
		t.Fatal(err)
	}
	got, err := VerifyFile(lock, trusted)
	if err != nil || got != d {
		t.Fatalf("verify: %v %s %s", err, got, d)
	}
	os.WriteFile(lock, []byte(`{"version":1,"servers":{"evil":{}}}`), 0o644)
	if _, err := VerifyFile(lock, trusted); !errors.Is(err, ErrTampered) {
		t.Fatalf("tampered lock: %v", err)
	}
	other, _ := newKey(t)
	os.WriteFile(lock, []byte(`{"version":1,"servers":{}}`), 0o644)
	if _, err := VerifyFile(lock, []ed25519.PublicKey{other}); !errors.Is(err, ErrUntrusted) {
		t.Fatalf("other key: %v", err)
	}
}

func TestPrivateKeyAsAJWK(t *testing.T) {
	_, priv := newKey(t)
	kf := filepath.Join(t.TempDir(), "k.jwk")
	os.WriteFile(kf, []byte(`{"kty":"OKP","crv":"Ed25519","d":"`+base64.RawURLEncoding.EncodeToString(priv.Seed())+`"}`), 0o600)
	k, err := LoadPrivateKey(kf)
	if err != nil || !k.Equal(priv) {
		t.Fatalf("jwk: %v", err)
	}
}
