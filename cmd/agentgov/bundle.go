package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"

	"github.com/agentgov/agentgov/bundle"
	"github.com/agentgov/agentgov/policies"
	"github.com/agentgov/agentgov/policy"
)

func init() {
	register(&command{
		name:    "bundle",
		summary: "build, sign and verify policy bundles",
		usage:   "build|sign|verify [ARGS]",
		help: `A bundle is a .tar.gz of a policy directory with a manifest of its files' SHA-256
digests and Ed25519 signatures of that manifest; docs/delivery.md describes it.`,
		subs: []*command{
			{
				name: "build", summary: "pack a policy directory into a bundle", usage: "build DIR -o FILE.tar.gz",
				help: `Prints the bundle digest, the SHA-256 of its canonical manifest.

Example:
  agentgov bundle build ./policies -o policies.tar.gz`,
				setup: func(fs *flag.FlagSet) runner {
					out := fs.String("o", "", "the bundle to write (FILE.tar.gz)")
					return func(_ context.Context, args []string, stdout, _ io.Writer) error {
						if len(args) != 1 || *out == "" {
							return flagError("bundle build takes one DIR and -o FILE.tar.gz")
						}
						if !bundle.IsBundle(*out) {
							return flagError("-o %s: a bundle's name ends in .tar.gz or .tgz", *out)
						}
						return bundleBuild(args[0], *out, stdout)
					}
				},
			},
			{
				name: "sign", summary: "sign a bundle, or an MCP lock file", usage: "sign --key KEY FILE",
				help: `KEY is a private key file of agentgov keygen (mode 0600). A bundle keeps its
signatures inside it (.signatures.json); any other file, such as an MCP lock
file, gets them beside it as FILE.sig. Signing again with another key adds a
signature. Prints the digest signed.

Example:
  agentgov bundle sign --key release.key policies.tar.gz
  agentgov bundle sign --key release.key mcp.lock`,
				setup: func(fs *flag.FlagSet) runner {
					key := fs.String("key", "", "the private key file")
					return func(_ context.Context, args []string, stdout, _ io.Writer) error {
						if len(args) != 1 || *key == "" {
							return flagError("bundle sign takes --key KEY and one FILE")
						}
						return bundleSign(*key, args[0], stdout)
					}
				},
			},
			{
				name: "verify", summary: "check a bundle's files and signature", usage: "verify --pub PUB [--pub PUB...] FILE",
				help: `Exits 0 and prints the digest when every file matches the manifest and a
signature is by one of the given public keys; exits 1 saying why otherwise.
For a file that is not a bundle, checks FILE.sig.

Example:
  agentgov bundle verify --pub release.pub policies.tar.gz`,
				setup: func(fs *flag.FlagSet) runner {
					var pubs multiFlag
					fs.Var(&pubs, "pub", "a trusted public key file (repeatable)")
					return func(_ context.Context, args []string, stdout, _ io.Writer) error {
						if len(args) != 1 || len(pubs) == 0 {
							return flagError("bundle verify takes at least one --pub PUB and one FILE")
						}
						return bundleVerify(pubs, args[0], stdout)
					}
				},
			},
		},
	})
}

// multiFlag is a repeatable string flag.
type multiFlag []string

func (m *multiFlag) String() string     { return fmt.Sprint([]string(*m)) }
func (m *multiFlag) Set(v string) error { *m = append(*m, v); return nil }

func bundleBuild(dir, out string, stdout io.Writer) error {
	// A bundle that would not load is refused before it is written.
	if _, err := policy.Load(dir); err != nil {
		return err
	}
	b, err := bundle.Build(dir)
	if err != nil {
		return err
	}
	if err := b.WriteFile(out); err != nil {
		return err
	}
	fmt.Fprintln(stdout, b.Digest())
	return nil
}

func bundleSign(keyPath, name string, stdout io.Writer) error {
	key, err := bundle.LoadPrivateKey(keyPath)
	if err != nil {
		return err
	}
	if !bundle.IsBundle(name) {
		d, err := bundle.SignFile(name, key)
		if err != nil {
			return err
		}
		fmt.Fprintln(stdout, d)
		return nil
	}
	b, err := bundle.ReadFile(name)
	if err != nil {
		return err
	}
	b.Sign(key)
	if err := b.WriteFile(name); err != nil {
		return err
	}
	fmt.Fprintln(stdout, b.Digest())
	return nil
}

func bundleVerify(pubs []string, name string, stdout io.Writer) error {
	keys, err := bundle.LoadPublicKeys(pubs)
	if err != nil {
		return err
	}
	if !bundle.IsBundle(name) {
		d, err := bundle.VerifyFile(name, keys)
		if err != nil {
			return err
		}
		fmt.Fprintln(stdout, d)
		return nil
	}
	b, err := bundle.ReadFile(name)
	if err != nil {
		return err
	}
	if err := b.Verify(keys); err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	if _, err := policy.LoadFS(b.FS(), ".", name); err != nil {
		return errors.Join(errors.New(name+": signed, but its policy does not load"), err)
	}
	fmt.Fprintln(stdout, b.Digest())
	return nil
}

// loadPolicies reads the policy set a command is pointed at: a directory, a
// file, a bundle (read for its content; its signature is for servers to
// check), or the built-in pack when path is empty.
func loadPolicies(path string) (*policy.Set, error) {
	switch {
	case path == "":
		return policies.Builtin()
	case bundle.IsBundle(path):
		return bundle.LoadPolicy(path, nil)
	}
	return policy.Load(path)
}
