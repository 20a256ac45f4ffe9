package main

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/agentgov/agentgov/identity"
)

func init() {
	register(&command{
		name:    "keygen",
		summary: "make an Ed25519 key pair for an agent (or for signing policy bundles)",
		usage:   "--out PREFIX",
		help: `Writes PREFIX.key (the private seed, unpadded base64url, mode 0600) and PREFIX.pub (the
public key as the registry takes it: the raw 32 bytes in unpadded base64url, one line), and
prints the public key and its RFC 7638 thumbprint. The private key never leaves the
machine: register the public one with "agentgov agents register". Existing files are not
overwritten.

Example:
  agentgov keygen --out researcher-1`,
		setup: func(fs *flag.FlagSet) runner {
			out := fs.String("out", "", "write `PREFIX`.key and PREFIX.pub")
			return func(_ context.Context, args []string, stdout, _ io.Writer) error {
				if len(args) != 0 {
					return flagError("keygen takes no arguments, got %q", args)
				}
				if *out == "" {
					return flagError("--out PREFIX is required")
				}
				return keygen(*out, stdout)
			}
		},
	})
}

func keygen(prefix string, stdout io.Writer) error {
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return err
	}
	if err := writeNew(prefix+".key", base64.RawURLEncoding.EncodeToString(priv.Seed())+"\n", 0o600); err != nil {
		return err
	}
	if err := writeNew(prefix+".pub", identity.EncodePublicKey(pub)+"\n", 0o644); err != nil {
		os.Remove(prefix + ".key")
		return err
	}
	fmt.Fprintf(stdout, "public key: %s\nthumbprint: %s\nwrote %s.key (private, 0600) and %s.pub\n",
		identity.EncodePublicKey(pub), identity.Thumbprint(pub), prefix, prefix)
	return nil
}

// writeNew writes a file that must not exist yet, with mode perm from its
// creation (never readable by others, not even for a moment).
func writeNew(path, data string, perm os.FileMode) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, perm)
	if errors.Is(err, os.ErrExist) {
		return &exitError{code: 1, msg: path + " exists: keygen does not overwrite a key"}
	}
	if err != nil {
		return err
	}
	if _, err := f.WriteString(data); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
