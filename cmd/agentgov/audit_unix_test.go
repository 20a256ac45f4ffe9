//go:build unix

package main

import (
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/agentgov/agentgov/audit"
	"github.com/agentgov/agentgov/store/sqlite"
)

// Every file agentgov keeps state in is 0600, even in a directory created
// 0755 beforehand and under a umask that takes nothing away; only the
// public key is readable by others.
func TestServeDataFilesArePrivate(t *testing.T) {
	data := filepath.Join(t.TempDir(), "data")
	if err := os.Mkdir(data, 0o755); err != nil {
		t.Fatal(err)
	}
	os.Chmod(data, 0o755)
	old := syscall.Umask(0)
	in := startAuditServer(t, "", data)
	syscall.Umask(old)
	in.decide(3)
	check := func() {
		t.Helper()
		seen := map[string]bool{}
		filepath.WalkDir(data, func(p string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() {
				return err
			}
			fi, err := d.Info()
			if err != nil {
				return err
			}
			want := fs.FileMode(0o600)
			if d.Name() == audit.PubFile {
				want = 0o644
			}
			if fi.Mode().Perm() != want {
				t.Errorf("%s has mode %v, want %v", d.Name(), fi.Mode().Perm(), want)
			}
			seen[d.Name()] = true
			return nil
		})
		for _, name := range []string{sqlite.FileName, sqlite.FileName + "-wal", sqlite.FileName + "-shm", sqlite.FileName + sqlite.LockSuffix, audit.KeyFile, "admin.token"} {
			if !seen[name] {
				t.Errorf("%s not found in the data directory (found %v)", name, seen)
			}
		}
	}
	check()
}
