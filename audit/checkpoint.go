package audit

import (
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"golang.org/x/mod/sumdb/note"
)

// TreeHead is what a checkpoint vouches for: the first Size entries of the
// log named Origin have the Merkle root Root.
type TreeHead struct {
	Origin string
	Size   uint64
	Root   []byte
}

// FormatCheckpoint writes the body of a checkpoint note in the common "tlog
// checkpoint" form (origin line, decimal tree size, base64 root hash), the
// form transparency-log tooling reads. tlog.FormatTree cannot be used because
// it fixes the origin to the Go checksum database's.
func FormatCheckpoint(h TreeHead) []byte {
	return fmt.Appendf(nil, "%s\n%d\n%s\n", h.Origin, h.Size, base64.StdEncoding.EncodeToString(h.Root))
}

// ParseCheckpoint reads a checkpoint body written by FormatCheckpoint. It is
// strict: extension lines, a non-canonical size or a root of the wrong length
// are errors, so that two different bodies never mean the same head.
func ParseCheckpoint(text []byte) (TreeHead, error) {
	lines := strings.Split(string(text), "\n")
	if len(lines) != 4 || lines[3] != "" {
		return TreeHead{}, errors.New("checkpoint body must be exactly three lines: origin, size, root")
	}
	origin := lines[0]
	if origin == "" {
		return TreeHead{}, errors.New("checkpoint has an empty origin")
	}
	size, err := strconv.ParseUint(lines[1], 10, 64)
	if err != nil || strconv.FormatUint(size, 10) != lines[1] {
		return TreeHead{}, fmt.Errorf("checkpoint tree size %q is not a decimal number", lines[1])
	}
	root, err := base64.StdEncoding.DecodeString(lines[2])
	if err != nil || len(root) != hasher.Size() {
		return TreeHead{}, fmt.Errorf("checkpoint root %q is not a base64 %d-byte hash", lines[2], hasher.Size())
	}
	return TreeHead{Origin: origin, Size: size, Root: root}, nil
}

// signCheckpoint returns the signed note for a tree head.
func signCheckpoint(h TreeHead, signer note.Signer) ([]byte, error) {
	msg, err := note.Sign(&note.Note{Text: string(FormatCheckpoint(h))}, signer)
	if err != nil {
		return nil, fmt.Errorf("sign checkpoint: %w", err)
	}
	return msg, nil
}

// OpenCheckpoint checks a signed checkpoint note against the log's key and
// returns the tree head it vouches for. The origin must be the key's name:
// one key signs one log.
func OpenCheckpoint(msg []byte, verifier note.Verifier) (TreeHead, error) {
	n, err := note.Open(msg, note.VerifierList(verifier))
	if err != nil {
		return TreeHead{}, fmt.Errorf("signature does not verify with key %s: %w", verifier.Name(), err)
	}
	h, err := ParseCheckpoint([]byte(n.Text))
	if err != nil {
		return TreeHead{}, err
	}
	if h.Origin != verifier.Name() {
		return TreeHead{}, fmt.Errorf("checkpoint origin %q is not the key's name %q", h.Origin, verifier.Name())
	}
	return h, nil
}
