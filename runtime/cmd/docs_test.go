package cmd_test

import (
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// archPath is a repository path as docs/architecture.md writes one:
// runtime/gatewayserver/session, components/tenant, runtime/cmd/docs_test.go.
var archPath = regexp.MustCompile(`\b(?:runtime|components|stacks|integration)(?:/[\w.-]+)+`)

// TestArchitectureDocNamesRealPackages keeps docs/architecture.md true to
// the code: every path it names is a Go package (a directory with Go files)
// or a file of the repository, and it names every binary.
func TestArchitectureDocNamesRealPackages(t *testing.T) {
	const doc = "../../docs/architecture.md"
	text, err := os.ReadFile(doc)
	if err != nil {
		t.Fatal(err)
	}
	named := map[string]bool{}
	for _, p := range archPath.FindAllString(string(text), -1) {
		named[strings.TrimRight(p, ".")] = true
	}
	if len(named) < 40 {
		t.Fatalf("%s names only %d paths; is archPath still matching them?", doc, len(named))
	}
	for p := range named {
		if err := isPackageOrFile(filepath.Join("../..", p)); err != nil {
			t.Errorf("%s names %s: %v", doc, p, err)
		}
	}
	for _, bin := range binaries(t) {
		if p := strings.TrimPrefix(bin, module); !named[p] {
			t.Errorf("%s does not name the binary %s", doc, p)
		}
	}
}

func isPackageOrFile(path string) error {
	fi, err := os.Stat(path)
	if err != nil {
		return err
	}
	if !fi.IsDir() {
		return nil
	}
	gofiles, err := filepath.Glob(filepath.Join(path, "*.go"))
	if err != nil {
		return err
	}
	for _, f := range gofiles {
		if !strings.HasSuffix(f, "_test.go") {
			return nil
		}
	}
	return errors.New("not a Go package (no non-test Go file)")
}
