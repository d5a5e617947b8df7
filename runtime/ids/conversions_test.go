package ids

import (
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// typedIDConversions are the places outside tests that turn a string into
// a TenantID or WorkspaceID without parsing it, each because the string
// was checked already (docs/conventions.md, "Ids have one home"), with
// how many conversions each holds. Code that parses an id where it enters
// uses ParseTenantID or ParseWorkspaceID instead; a new conversion needs
// its reason written next to it and an entry here.
var typedIDConversions = map[string]int{
	// Keys of a stored record (written from typed ids).
	"runtime/runstore/tables_runs.go": 2,
	// A decoded envelope (envelope.Decode checks its ids).
	"runtime/dispatch/handle.go":             1,
	"runtime/gatewayserver/routing/route.go": 2,
	// A verified access token (accesstoken.Verifier checks its ids).
	"runtime/gatewayserver/gatewayserver.go": 1,
	// The connector registry (its loader parses every connector's ids).
	"runtime/opsserver/runs.go": 1,
	// An operator's grants (checked when the key or grant was made) and
	// ?tenant= of the audit log (auditQuery checks it).
	"runtime/opsapi/authz.go": 1,
	"runtime/opsapi/audit.go": 1,
	// A tenant spec its Validate checked (the Pulumi component).
	"components/tenant/tenant.go": 2,
}

// testSupport holds packages that are test tooling though not _test.go
// files.
var testSupport = []string{"runtime/runstore/storetest/", "integration/"}

// TestTypedIDsComeFromParse: outside tests, a string becomes an
// ids.TenantID or ids.WorkspaceID only through ParseTenantID or
// ParseWorkspaceID, or in the places typedIDConversions lists. This is
// what lets code given a typed id skip checking it (the stores no longer
// do). It reads the source of runtime, components and examples.
func TestTypedIDsComeFromParse(t *testing.T) {
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	found := map[string]int{}
	for _, module := range []string{"runtime", "components", "examples"} {
		err := filepath.WalkDir(filepath.Join(root, module), func(path string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if d.IsDir() && (d.Name() == "node_modules" || d.Name() == "testdata" || strings.HasPrefix(d.Name(), ".")) {
				return filepath.SkipDir
			}
			rel := filepath.ToSlash(strings.TrimPrefix(path, root+string(filepath.Separator)))
			if d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") ||
				strings.HasPrefix(rel, "runtime/ids/") || slices.ContainsFunc(testSupport, func(p string) bool { return strings.HasPrefix(rel, p) }) {
				return nil
			}
			if n := conversions(t, path); n > 0 {
				found[rel] = n
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	for file, n := range found {
		if want, ok := typedIDConversions[file]; !ok || n > want {
			t.Errorf("%s converts a string to ids.TenantID or ids.WorkspaceID %d time(s) (allowed: %d): parse it where it enters (ids.ParseTenantID, ids.ParseWorkspaceID), or write why it was checked already next to it and list the file in typedIDConversions", file, n, want)
		}
	}
	for file, want := range typedIDConversions {
		if found[file] < want {
			t.Errorf("%s converts %d time(s), typedIDConversions allows %d: lower the count", file, found[file], want)
		}
	}
}

// conversions counts the calls ids.TenantID(x) and ids.WorkspaceID(x) in
// a file.
func conversions(t *testing.T, path string) int {
	t.Helper()
	f, err := parser.ParseFile(token.NewFileSet(), path, nil, parser.SkipObjectResolution)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	ast.Inspect(f, func(node ast.Node) bool {
		call, ok := node.(*ast.CallExpr)
		if !ok || len(call.Args) != 1 {
			return true
		}
		sel, ok := call.Fun.(*ast.SelectorExpr)
		if !ok {
			return true
		}
		if x, ok := sel.X.(*ast.Ident); ok && x.Name == "ids" && (sel.Sel.Name == "TenantID" || sel.Sel.Name == "WorkspaceID") {
			n++
		}
		return true
	})
	return n
}
