package clients

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
)

// bin is the agentgov binary the clients' tests start, built once.
var (
	buildOnce sync.Once
	bin       string
	buildErr  error
)

func build(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "agentgov-clients-")
		if err != nil {
			buildErr = err
			return
		}
		bin = filepath.Join(dir, "agentgov")
		cmd := exec.Command("go", "build", "-o", bin, "./cmd/agentgov")
		cmd.Dir = ".."
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return bin
}

func TestMain(m *testing.M) {
	code := m.Run()
	if bin != "" {
		os.RemoveAll(filepath.Dir(bin))
	}
	os.Exit(code)
}

func run(t *testing.T, bin, dir string, name string, args ...string) {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "AGENTGOV_BIN="+bin)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	t.Logf("%s", out)
}

func TestPythonClientAgainstARunningServer(t *testing.T) {
	if _, err := exec.LookPath("python3"); err != nil {
		t.Skip("python3 is not installed")
	}
	run(t, build(t), "python", "python3", "-m", "unittest", "discover", "-s", "tests", "-t", "tests", "-v")
}

func TestTypeScriptClientAgainstARunningServer(t *testing.T) {
	if _, err := os.Stat("typescript/node_modules/typescript"); err != nil {
		t.Skip("npm packages not installed; run: npm ci --prefix clients/typescript")
	}
	run(t, build(t), "typescript", "npm", "test", "--silent")
}

// The clients are released with the server: one version for all three.
func TestClientsCarryTheServersVersion(t *testing.T) {
	want := strings.TrimSpace(read(t, "../VERSION"))
	var pkg struct{ Version string }
	if err := json.Unmarshal([]byte(read(t, "typescript/package.json")), &pkg); err != nil {
		t.Fatal(err)
	}
	found := map[string]string{
		"typescript/package.json": pkg.Version,
		"typescript/src/index.ts": match(t, read(t, "typescript/src/index.ts"), `export const version = "([^"]+)"`),
		"python/pyproject.toml":   match(t, read(t, "python/pyproject.toml"), `(?m)^version = "([^"]+)"`),
		"python/src/agentgov":     match(t, read(t, "python/src/agentgov/_client.py"), `__version__ = "([^"]+)"`),
	}
	for where, v := range found {
		if v != want {
			t.Errorf("%s says %q; VERSION says %q", where, v, want)
		}
	}
}

func read(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func match(t *testing.T, s, re string) string {
	t.Helper()
	m := regexp.MustCompile(re).FindStringSubmatch(s)
	if m == nil {
		t.Fatalf("no %s", re)
	}
	return m[1]
}
