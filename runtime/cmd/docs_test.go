package cmd_test

import (
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"slices"
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

// TestArchitectureDocBinariesLinkWhatItSays keeps the package diagram of
// docs/architecture.md true: every package the "binaries" block lists
// after a binary (runtime/cmd/X ─▶ ...) is one that binary links.
func TestArchitectureDocBinariesLinkWhatItSays(t *testing.T) {
	text, err := os.ReadFile("../../docs/architecture.md")
	if err != nil {
		t.Fatal(err)
	}
	start := strings.Index(string(text), "binaries (")
	end := strings.Index(string(text), "shared runtime packages")
	if start < 0 || end < start {
		t.Fatal("docs/architecture.md has no binaries block before its shared runtime packages")
	}
	binLine := regexp.MustCompile(`^\s+(runtime/cmd/\w+) ─`)
	listed := map[string][]string{}
	var bin string
	for _, line := range strings.Split(string(text)[start:end], "\n") {
		if m := binLine.FindStringSubmatch(line); m != nil {
			bin = m[1]
		}
		if bin == "" {
			continue
		}
		for _, p := range archPath.FindAllString(line, -1) {
			if p != bin && strings.HasPrefix(p, "runtime/") {
				listed[bin] = append(listed[bin], p)
			}
		}
	}
	if len(listed) < 5 {
		t.Fatalf("found only %d binaries in the block", len(listed))
	}
	for bin, pkgs := range listed {
		deps := goList(t, "-deps", module+bin)
		for _, p := range pkgs {
			if !slices.Contains(deps, module+p) {
				t.Errorf("docs/architecture.md says %s links %s; it does not", bin, p)
			}
		}
	}
}
