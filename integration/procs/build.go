package procs

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"sync"
	"testing"
)

var (
	buildMu   sync.Mutex
	builds    = map[string]*buildResult{}
	buildDir  string
	buildDirE error
	dirOnce   sync.Once
)

type buildResult struct {
	once sync.Once
	path string
	err  error
}

// Main runs the tests of a package that builds binaries and removes the
// built binaries afterwards. Call it from TestMain:
//
//	func TestMain(m *testing.M) { procs.Main(m) }
func Main(m *testing.M) { os.Exit(Run(m)) }

// Parallel lets go test run up to n of the package's parallel tests at
// once, unless -test.parallel was given or its default, GOMAXPROCS, is
// higher. Call it first in TestMain, for tests that mostly wait on their
// processes: Go's default runs two at a time on a 2-core machine. It
// parses the command line's flags.
func Parallel(n int) {
	flag.Parse()
	given := false
	flag.Visit(func(f *flag.Flag) { given = given || f.Name == "test.parallel" })
	if p := flag.Lookup("test.parallel"); !given && p != nil && runtime.GOMAXPROCS(0) < n {
		_ = p.Value.Set(strconv.Itoa(n))
	}
}

// Run is Main without the exit, for a TestMain with more to do once the
// tests ran (stop what they share): it returns m.Run's exit code.
func Run(m *testing.M) int {
	code := m.Run()
	if buildDir != "" && os.Getenv("BOTE_BIN_DIR") == "" {
		_ = os.RemoveAll(buildDir)
	}
	return code
}

// Build compiles runtime/cmd/<name> once per test binary and returns the
// executable's path. If BOTE_BIN_DIR is set (as `make test` does after
// `make build`), the binary already there is used instead.
func Build(t testing.TB, name string) string {
	t.Helper()
	path, err := BuildBinary(name)
	if err != nil {
		t.Fatal(err)
	}
	return path
}

// BuildBinary is Build for non-test callers.
func BuildBinary(name string) (string, error) {
	if dir := os.Getenv("BOTE_BIN_DIR"); dir != "" {
		path, err := filepath.Abs(filepath.Join(dir, name))
		if err != nil {
			return "", err
		}
		if _, err := os.Stat(path); err != nil {
			return "", fmt.Errorf("BOTE_BIN_DIR is set but %s is missing (run `make build`): %w", path, err)
		}
		return path, nil
	}
	buildMu.Lock()
	b, ok := builds[name]
	if !ok {
		b = &buildResult{}
		builds[name] = b
	}
	buildMu.Unlock()
	b.once.Do(func() { b.path, b.err = build(name) })
	return b.path, b.err
}

func build(name string) (string, error) {
	root, err := RepoRoot()
	if err != nil {
		return "", err
	}
	dirOnce.Do(func() { buildDir, buildDirE = os.MkdirTemp("", "bote-bin-") })
	if buildDirE != nil {
		return "", fmt.Errorf("cannot create build directory: %w", buildDirE)
	}
	out := filepath.Join(buildDir, name)
	cmd := exec.Command("go", "build", "-o", out, "./cmd/"+name)
	cmd.Dir = filepath.Join(root, "runtime")
	if msg, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("cannot build runtime/cmd/%s: %w\n%s", name, err, msg)
	}
	return out, nil
}

// RepoRoot returns the repository root: the nearest directory above the
// working directory that holds go.work.
func RepoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.work")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("cannot find the repository root (no go.work above the working directory)")
		}
		dir = parent
	}
}
