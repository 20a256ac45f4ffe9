//go:build unix

package bundle

import (
	"crypto/ed25519"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// returnsSoon runs f and fails the test if it has not returned within a
// few seconds, which is what a read of a FIFO nobody writes does. unblock
// then lets f finish.
func returnsSoon(t *testing.T, f func() error, unblock func()) error {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- f() }()
	select {
	case err := <-done:
		return err
	case <-time.After(3 * time.Second):
		unblock()
		<-done
		t.Fatal("still reading after 3s: a file that never ends hangs the load instead of being refused")
		return nil
	}
}

// fifo makes a named pipe at name and returns what opens its writing end
// once, so that a reader blocked on it returns.
func fifo(t *testing.T, name string) func() {
	t.Helper()
	if err := syscall.Mkfifo(name, 0o644); err != nil {
		t.Skipf("mkfifo: %v", err)
	}
	return func() {
		if w, err := os.OpenFile(name, os.O_WRONLY, 0); err == nil {
			w.Close()
		}
	}
}

func TestABundleThatIsNotARegularFileIsRefusedAtOnce(t *testing.T) {
	pub, _ := newKey(t)
	name := filepath.Join(t.TempDir(), "policies.tar.gz")
	unblock := fifo(t, name)
	err := returnsSoon(t, func() error {
		_, err := LoadPolicy(name, []ed25519.PublicKey{pub})
		return err
	}, unblock)
	if err == nil {
		t.Fatal("a FIFO loaded as a bundle")
	}
}

func TestADetachedSignatureThatIsNotARegularFileIsRefusedAtOnce(t *testing.T) {
	pub, _ := newKey(t)
	dir := t.TempDir()
	lock := filepath.Join(dir, "mcp.lock")
	data := []byte(`{"version":1,"servers":{}}`)
	os.WriteFile(lock, data, 0o644)
	unblock := fifo(t, lock+SigSuffix)
	err := returnsSoon(t, func() error {
		_, err := VerifyData(lock, data, []ed25519.PublicKey{pub})
		return err
	}, unblock)
	if err == nil {
		t.Fatal("a FIFO read as a signature")
	}
}
