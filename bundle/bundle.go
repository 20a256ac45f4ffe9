// Package bundle packs a policy directory into a signed, verifiable archive
// (DESIGN §11), as OPA bundles are: a gzipped tar holding the files, a
// canonical manifest of their SHA-256 digests, and the Ed25519 signatures of
// that manifest in .signatures.json. The bundle's digest is the SHA-256 of
// the canonical manifest, so it names the exact content whatever the
// archive's bytes. A reader trusts nothing in an archive it did not verify:
// every file must be in the manifest with its digest, and the manifest
// signed by a trusted key.
package bundle

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"testing/fstest"
	"time"

	"github.com/agentgov/agentgov/jcs"
)

// Names of the two members that are not content.
const (
	ManifestName   = ".manifest.json"
	SignaturesName = ".signatures.json"
)

// Limits on what a reader accepts, so that a hostile archive cannot exhaust
// memory: a policy directory is a few dozen small files.
const (
	MaxFiles     = 1000
	MaxFileBytes = 4 << 20
	MaxBytes     = 32 << 20
)

// Manifest lists the files of a bundle with their digests, sorted by path.
type Manifest struct {
	Files []File `json:"files"`
}

// File is one member of the manifest.
type File struct {
	Path   string `json:"path"`
	SHA256 string `json:"sha256"`
}

// Signature is one signature of the canonical manifest.
type Signature struct {
	// KeyID is the RFC 7638 thumbprint of the signing key.
	KeyID string `json:"keyid"`
	Alg   string `json:"alg"`
	// Sig is the Ed25519 signature of the canonical manifest, base64url.
	Sig string `json:"sig"`
}

type signatures struct {
	Signatures []Signature `json:"signatures"`
}

// Bundle is a read archive: its files, its manifest and its signatures.
type Bundle struct {
	Manifest   Manifest
	Signatures []Signature
	Files      map[string][]byte

	canonical []byte
}

// Digest is the bundle's identity: "sha256:" and the hex SHA-256 of its
// canonical manifest.
func (b *Bundle) Digest() string {
	sum := sha256.Sum256(b.canonical)
	return "sha256:" + hex.EncodeToString(sum[:])
}

// FS is the bundle's content as a file system, for policy.LoadFS.
func (b *Bundle) FS() fs.FS {
	m := fstest.MapFS{}
	for name, data := range b.Files {
		m[name] = &fstest.MapFile{Data: data, Mode: 0o444}
	}
	return m
}

// isContent says whether a directory entry belongs in a bundle: the policy
// documents and their tests.
func isContent(name string) bool {
	return strings.HasSuffix(name, ".yaml") || strings.HasSuffix(name, ".yml")
}

// Build reads the policy documents (and their tests) in dir, not recursing,
// and returns the bundle of them, unsigned.
func Build(dir string) (*Bundle, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("bundle: %w", err)
	}
	b := &Bundle{Files: map[string][]byte{}}
	for _, e := range entries {
		if !e.Type().IsRegular() || !isContent(e.Name()) {
			continue
		}
		data, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			return nil, fmt.Errorf("bundle: %w", err)
		}
		if len(data) > MaxFileBytes {
			return nil, fmt.Errorf("bundle: %s is larger than %d bytes", e.Name(), MaxFileBytes)
		}
		b.Files[e.Name()] = data
	}
	if len(b.Files) == 0 {
		return nil, fmt.Errorf("bundle: no *.yaml files in %s", dir)
	}
	if err := b.seal(); err != nil {
		return nil, err
	}
	return b, nil
}

// seal computes the manifest of the files.
func (b *Bundle) seal() error {
	b.Manifest = Manifest{}
	for name, data := range b.Files {
		sum := sha256.Sum256(data)
		b.Manifest.Files = append(b.Manifest.Files, File{Path: name, SHA256: hex.EncodeToString(sum[:])})
	}
	slices.SortFunc(b.Manifest.Files, func(x, y File) int { return strings.Compare(x.Path, y.Path) })
	c, err := jcs.Marshal(b.Manifest)
	if err != nil {
		return fmt.Errorf("bundle: manifest: %w", err)
	}
	b.canonical = c
	return nil
}

// Sign adds a signature of the manifest by key (replacing an earlier one
// by the same key).
func (b *Bundle) Sign(key ed25519.PrivateKey) {
	pub := key.Public().(ed25519.PublicKey)
	id := Thumbprint(pub)
	b.Signatures = slices.DeleteFunc(b.Signatures, func(s Signature) bool { return s.KeyID == id })
	b.Signatures = append(b.Signatures, Signature{
		KeyID: id, Alg: "EdDSA",
		Sig: base64.RawURLEncoding.EncodeToString(ed25519.Sign(key, b.canonical)),
	})
}

// Verify checks that some signature of the manifest is by one of the
// trusted keys. The files were checked against the manifest when read.
func (b *Bundle) Verify(trusted []ed25519.PublicKey) error {
	if len(b.Signatures) == 0 {
		return ErrUnsigned
	}
	if len(trusted) == 0 {
		return errors.New("bundle: no trusted keys to verify with")
	}
	for _, s := range b.Signatures {
		sig, err := base64.RawURLEncoding.DecodeString(s.Sig)
		if err != nil || s.Alg != "EdDSA" {
			continue
		}
		for _, k := range trusted {
			if ed25519.Verify(k, b.canonical, sig) {
				return nil
			}
		}
	}
	ids := make([]string, len(b.Signatures))
	for i, s := range b.Signatures {
		ids[i] = s.KeyID
	}
	return fmt.Errorf("%w: signed by %s, none of them a trusted key with a valid signature", ErrUntrusted, strings.Join(ids, ", "))
}

// Errors of verification, for callers that tell them apart.
var (
	ErrUnsigned  = errors.New("bundle is not signed")
	ErrUntrusted = errors.New("bundle is not signed by a trusted key")
	ErrTampered  = errors.New("bundle content does not match its manifest")
)

// Write writes the archive: the manifest, the signatures if any, then the
// files in manifest order, with fixed times and modes, so that the same
// content gives the same bytes.
func (b *Bundle) Write(w io.Writer) error {
	zw := gzip.NewWriter(w)
	tw := tar.NewWriter(zw)
	add := func(name string, data []byte) error {
		h := &tar.Header{Name: name, Mode: 0o644, Size: int64(len(data)), ModTime: time.Unix(0, 0), Typeflag: tar.TypeReg, Format: tar.FormatPAX}
		if err := tw.WriteHeader(h); err != nil {
			return err
		}
		_, err := tw.Write(data)
		return err
	}
	if err := add(ManifestName, b.canonical); err != nil {
		return fmt.Errorf("bundle: write: %w", err)
	}
	if len(b.Signatures) > 0 {
		s, err := json.MarshalIndent(signatures{b.Signatures}, "", "  ")
		if err != nil {
			return err
		}
		if err := add(SignaturesName, s); err != nil {
			return fmt.Errorf("bundle: write: %w", err)
		}
	}
	for _, f := range b.Manifest.Files {
		if err := add(f.Path, b.Files[f.Path]); err != nil {
			return fmt.Errorf("bundle: write: %w", err)
		}
	}
	if err := tw.Close(); err != nil {
		return fmt.Errorf("bundle: write: %w", err)
	}
	return zw.Close()
}

// WriteFile writes the archive to name, atomically.
func (b *Bundle) WriteFile(name string) error {
	var buf bytes.Buffer
	if err := b.Write(&buf); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(name), ".bundle-*")
	if err != nil {
		return fmt.Errorf("bundle: %w", err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(buf.Bytes()); err != nil {
		tmp.Close()
		return fmt.Errorf("bundle: %w", err)
	}
	if err := tmp.Chmod(0o644); err != nil {
		tmp.Close()
		return fmt.Errorf("bundle: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("bundle: %w", err)
	}
	return os.Rename(tmp.Name(), name)
}

// ReadFile reads and checks the archive at name (see Read).
func ReadFile(name string) (*Bundle, error) {
	f, err := openRegular(name)
	if err != nil {
		return nil, fmt.Errorf("bundle: %w", err)
	}
	defer f.Close()
	b, err := Read(f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return b, nil
}

// Read reads an archive and checks it against its own manifest: every
// member a regular file with a plain name, none twice, every file listed
// with its digest and every listed file present. It does not check
// signatures: Verify does.
func Read(r io.Reader) (*Bundle, error) {
	zr, err := gzip.NewReader(io.LimitReader(r, MaxBytes))
	if err != nil {
		return nil, fmt.Errorf("bundle: not a gzipped archive: %w", err)
	}
	tr := tar.NewReader(zr)
	b := &Bundle{Files: map[string][]byte{}}
	var manifest, sigs []byte
	seen := map[string]bool{}
	total := 0
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("bundle: read: %w", err)
		}
		name := h.Name
		if h.Typeflag != tar.TypeReg {
			return nil, fmt.Errorf("%w: member %q is not a regular file", ErrTampered, name)
		}
		if name != path.Base(name) || name == "." || name == ".." || strings.ContainsAny(name, `\/`) {
			return nil, fmt.Errorf("%w: member %q is not a plain file name", ErrTampered, name)
		}
		if seen[name] {
			return nil, fmt.Errorf("%w: member %q appears twice", ErrTampered, name)
		}
		seen[name] = true
		if len(seen) > MaxFiles+2 {
			return nil, fmt.Errorf("bundle: more than %d files", MaxFiles)
		}
		if h.Size > MaxFileBytes {
			return nil, fmt.Errorf("bundle: member %q is larger than %d bytes", name, MaxFileBytes)
		}
		data, err := io.ReadAll(io.LimitReader(tr, MaxFileBytes+1))
		if err != nil {
			return nil, fmt.Errorf("bundle: read %s: %w", name, err)
		}
		total += len(data)
		if total > MaxBytes {
			return nil, fmt.Errorf("bundle: larger than %d bytes unpacked", MaxBytes)
		}
		switch name {
		case ManifestName:
			manifest = data
		case SignaturesName:
			sigs = data
		default:
			b.Files[name] = data
		}
	}
	if manifest == nil {
		return nil, fmt.Errorf("%w: no %s", ErrTampered, ManifestName)
	}
	dec := json.NewDecoder(bytes.NewReader(manifest))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&b.Manifest); err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrTampered, ManifestName, err)
	}
	listed := map[string]bool{}
	for _, f := range b.Manifest.Files {
		if listed[f.Path] {
			return nil, fmt.Errorf("%w: %s lists %q twice", ErrTampered, ManifestName, f.Path)
		}
		listed[f.Path] = true
		data, ok := b.Files[f.Path]
		if !ok {
			return nil, fmt.Errorf("%w: %q is listed but missing", ErrTampered, f.Path)
		}
		sum := sha256.Sum256(data)
		if hex.EncodeToString(sum[:]) != f.SHA256 {
			return nil, fmt.Errorf("%w: %q has SHA-256 %x, the manifest says %s", ErrTampered, f.Path, sum, f.SHA256)
		}
	}
	for name := range b.Files {
		if !listed[name] {
			return nil, fmt.Errorf("%w: %q is not in the manifest", ErrTampered, name)
		}
	}
	// The digest is over the canonical form, so a manifest rewritten with
	// other spacing or order names the same content, and its signatures
	// still verify only if they are over that content.
	c, err := jcs.Marshal(b.Manifest)
	if err != nil {
		return nil, fmt.Errorf("bundle: manifest: %w", err)
	}
	b.canonical = c
	if sigs != nil {
		var s signatures
		dec := json.NewDecoder(bytes.NewReader(sigs))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&s); err != nil {
			return nil, fmt.Errorf("bundle: %s: %w", SignaturesName, err)
		}
		b.Signatures = s.Signatures
	}
	return b, nil
}

// IsBundle says whether a --policies path names a bundle rather than a
// directory or a single document.
func IsBundle(p string) bool {
	return strings.HasSuffix(p, ".tar.gz") || strings.HasSuffix(p, ".tgz")
}
