package bundle

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"testing"
)

// FuzzRead: whatever an archive holds, Read either refuses it or returns
// files that are exactly the ones its manifest lists, with their digests.
func FuzzRead(f *testing.F) {
	_, priv := newKeyF(f)
	b, err := Build(policyDirF(f))
	if err != nil {
		f.Fatal(err)
	}
	b.Sign(priv)
	var buf bytes.Buffer
	b.Write(&buf)
	f.Add(buf.Bytes())
	f.Add([]byte{0x1f, 0x8b})
	f.Fuzz(func(t *testing.T, raw []byte) {
		got, err := Read(bytes.NewReader(raw))
		if err != nil {
			return
		}
		if len(got.Files) != len(got.Manifest.Files) {
			t.Fatalf("%d files, %d in the manifest", len(got.Files), len(got.Manifest.Files))
		}
		for _, mf := range got.Manifest.Files {
			sum := sha256.Sum256(got.Files[mf.Path])
			if hex.EncodeToString(sum[:]) != mf.SHA256 {
				t.Fatalf("%s does not match its digest", mf.Path)
			}
		}
	})
}
