package cmd_test

import (
	"go/ast"
	"go/parser"
	"go/token"
	"go/types"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// TestEveryMainIsProgramMain holds every binary to one shape: main is
// program.Main("<binary>", run), so that arguments, streams, environment,
// signals and exit codes are handled in one place (package
// cmd/internal/program) and run is what tests call.
func TestEveryMainIsProgramMain(t *testing.T) {
	dirs, err := os.ReadDir(".")
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range dirs {
		if !d.IsDir() || d.Name() == "internal" {
			continue
		}
		name := d.Name()
		fset := token.NewFileSet()
		files, err := filepath.Glob(filepath.Join(name, "*.go"))
		if err != nil {
			t.Fatal(err)
		}
		var main *ast.FuncDecl
		for _, file := range files {
			if strings.HasSuffix(file, "_test.go") {
				continue
			}
			f, err := parser.ParseFile(fset, file, nil, 0)
			if err != nil {
				t.Fatal(err)
			}
			for _, decl := range f.Decls {
				if fn, ok := decl.(*ast.FuncDecl); ok && fn.Recv == nil && fn.Name.Name == "main" {
					main = fn
				}
			}
		}
		if main == nil {
			t.Errorf("%s: no func main", name)
			continue
		}
		if !isProgramMain(main, name) {
			t.Errorf("%s: func main must be exactly program.Main(%q, run) (%s)", name, name, fset.Position(main.Pos()))
		}
	}
}

func isProgramMain(fn *ast.FuncDecl, name string) bool {
	if len(fn.Body.List) != 1 {
		return false
	}
	stmt, ok := fn.Body.List[0].(*ast.ExprStmt)
	if !ok {
		return false
	}
	call, ok := stmt.X.(*ast.CallExpr)
	if !ok || len(call.Args) != 2 {
		return false
	}
	sel, ok := call.Fun.(*ast.SelectorExpr)
	if !ok || sel.Sel.Name != "Main" {
		return false
	}
	if pkg, ok := sel.X.(*ast.Ident); !ok || pkg.Name != "program" {
		return false
	}
	lit, ok := call.Args[0].(*ast.BasicLit)
	if !ok || lit.Kind != token.STRING {
		return false
	}
	if s, err := strconv.Unquote(lit.Value); err != nil || s != name {
		return false
	}
	run, ok := call.Args[1].(*ast.Ident)
	return ok && run.Name == "run"
}

// logCalls are the slog methods and attribute constructors whose string
// arguments are keys (or the message, never "error" either).
var logCalls = map[string]bool{
	"Debug": true, "Info": true, "Warn": true, "Error": true,
	"DebugContext": true, "InfoContext": true, "WarnContext": true, "ErrorContext": true,
	"Log": true, "With": true, "String": true, "Any": true,
}

// TestSlogErrorKeyIsErr holds the runtime to one key for an error in a log
// record, "err" (docs/conventions.md), so that a query for failures finds
// them all.
func TestSlogErrorKeyIsErr(t *testing.T) {
	forGoFiles(t, "..", 0, func(_ string, fset *token.FileSet, f *ast.File) {
		ast.Inspect(f, func(n ast.Node) bool {
			call, ok := n.(*ast.CallExpr)
			if !ok {
				return true
			}
			sel, ok := call.Fun.(*ast.SelectorExpr)
			if !ok || !logCalls[sel.Sel.Name] {
				return true
			}
			for _, arg := range call.Args {
				if lit, ok := arg.(*ast.BasicLit); ok && lit.Value == `"error"` {
					t.Errorf("%s: log key \"error\": use \"err\"", fset.Position(lit.Pos()))
				}
			}
			return true
		})
	})
}

// forGoFiles parses every non-test Go file under root (skipping
// node_modules, testdata and hidden directories) and calls fn with it.
func forGoFiles(t *testing.T, root string, mode parser.Mode, fn func(path string, fset *token.FileSet, f *ast.File)) {
	t.Helper()
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if path != root && (d.Name() == "node_modules" || d.Name() == "testdata" || strings.HasPrefix(d.Name(), ".")) {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		fset := token.NewFileSet()
		f, err := parser.ParseFile(fset, path, nil, mode)
		if err != nil {
			return err
		}
		fn(path, fset, f)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// Size limits of docs/conventions.md: a non-test Go file over maxFileLines
// is split by concern; a function over maxFuncLines is split, or is listed
// in bigFuncs and starts its body with a one-line "// size: ..." comment
// saying why it is one piece.
const (
	maxFileLines = 500
	maxFuncLines = 80
)

// bigFuncs are the functions allowed over maxFuncLines, by file and name,
// each with a "// size:" reason in its body. Adding one is a decision to
// review; an entry whose function shrank or went fails the test, so the
// list only shrinks.
var bigFuncs = map[string]bool{
	// One case per message type, grant type or mocked resource type.
	"runtime/runproto/codec.go Validate":            true,
	"runtime/idp/token.go token":                    true,
	"components/infratest/infratest.go NewResource": true,
	// A resource graph declared in dependency order (Pulumi): helpers would
	// only thread its outputs around.
	"stacks/main.go deploy":           true,
	"components/gateway/apps.go apps": true,
	"components/tenant/tenant.go New": true,
	// One read-check-commit attempt inside retry.Do; its locals carry
	// state between attempts.
	"runtime/runs/report.go Report": true,
	"runtime/runs/claim.go claim":   true,
	// One walk, one protocol exchange or one phase, step by step, sharing
	// running totals or the run's log and key.
	"runtime/tfarchive/tfarchive.go Pack":                    true,
	"runtime/relay/relaytest/session.go serveListen":         true,
	"runtime/relay/relaytest/httpmode.go serveRelayedHTTP":   true,
	"runtime/agent/assign.go assign":                         true,
	"runtime/agent/execute.go phase":                         true,
	"runtime/runstore/storetest/recovery.go testSilentAgent": true,
	"components/infratest/schemagen/main.go generate":        true,
	// A command's flags (and a cobra group's subcommands) declared together,
	// as -h lists them.
	"runtime/cmd/opsserver/options.go parseOptions":            true,
	"runtime/cmd/opsserver/apikey.go runAPIKey":                true,
	"runtime/cmd/agent/main.go run":                            true,
	"stacks/config.go loadConfig":                              true,
	"runtime/cmd/opsbot/policies.go policiesCommand":           true,
	"runtime/cmd/opsbot/keys.go keysCommand":                   true,
	"runtime/cmd/opsbot/notifications.go notificationsCommand": true,
	"runtime/cmd/opsbot/vars.go varsCommand":                   true,
	"runtime/cmd/opsbot/state.go stateCommand":                 true,
}

// TestFileAndFunctionSize holds every module of the repository to the size
// limits above.
func TestFileAndFunctionSize(t *testing.T) {
	root := filepath.Join("..", "..")
	seen := map[string]bool{}
	forGoFiles(t, root, parser.ParseComments, func(path string, fset *token.FileSet, f *ast.File) {
		if n := fset.File(f.Pos()).LineCount(); n > maxFileLines {
			t.Errorf("%s: %d lines; split it by concern (at most %d)", path, n, maxFileLines)
		}
		reasons := map[int]bool{} // lines holding a "// size:" comment
		for _, cg := range f.Comments {
			for _, c := range cg.List {
				if strings.HasPrefix(c.Text, "// size: ") {
					reasons[fset.Position(c.Pos()).Line] = true
				}
			}
		}
		rel, err := filepath.Rel(root, path)
		if err != nil {
			t.Fatal(err)
		}
		for _, decl := range f.Decls {
			fn, ok := decl.(*ast.FuncDecl)
			if !ok || fn.Body == nil {
				continue
			}
			from, to := fset.Position(fn.Pos()).Line, fset.Position(fn.End()).Line
			if to-from+1 <= maxFuncLines {
				if reasons[fset.Position(fn.Body.Lbrace).Line+1] {
					t.Errorf("%s: func %s has %d lines and a \"// size:\" comment it no longer needs: remove it", fset.Position(fn.Pos()), fn.Name.Name, to-from+1)
				}
				continue
			}
			key := filepath.ToSlash(rel) + " " + fn.Name.Name
			seen[key] = true
			switch {
			case !bigFuncs[key]:
				t.Errorf("%s: func %s has %d lines; split it (at most %d), or list %q in bigFuncs with a \"// size: ...\" comment starting its body saying why not",
					fset.Position(fn.Pos()), fn.Name.Name, to-from+1, maxFuncLines, key)
			case !reasons[fset.Position(fn.Body.Lbrace).Line+1]:
				t.Errorf("%s: func %s (in bigFuncs) must start its body with a \"// size: ...\" comment saying why it is one piece", fset.Position(fn.Pos()), fn.Name.Name)
			}
		}
	})
	for key := range bigFuncs {
		if !seen[key] {
			t.Errorf("bigFuncs lists %q, which is no longer over %d lines (or is gone): remove it", key, maxFuncLines)
		}
	}
}

// TestConfigErrorsNameTheirPackage holds every Validate of a runtime
// config struct (a type named Config or ending in Config) to one shape: a
// value receiver, and errors of the form "<package> config: <Field> ...",
// so that the error a constructor returns says which package's config and
// which field is wrong, whoever wraps it.
func TestConfigErrorsNameTheirPackage(t *testing.T) {
	// Configs whose errors take another form, and why.
	allowed := map[string]bool{
		// A field of operatorauth.Config (OAuth2) and of the opsrelay
		// component (OperatorAuth): its errors are field paths that its
		// holder prefixes ("OAuth2.Issuer: ...").
		"operatorauth.JWTConfig": true,
		// opsbot's configuration file and flags: errors name the key the
		// operator wrote (output:, namespace:), after opsbot's
		// "configuration error:".
		"opsconfig.Config": true,
		// The ops server's flags: errors name the flag (--local-listen:).
		"opsserver.Config": true,
	}
	forGoFiles(t, "..", 0, func(_ string, fset *token.FileSet, f *ast.File) {
		if f.Name.Name == "main" {
			return // a binary's flags are named by their flags (--listen: ...)
		}
		prefix := strconv.Quote(f.Name.Name + " config: ")
		prefix = prefix[:len(prefix)-1]
		for _, decl := range f.Decls {
			fn, ok := decl.(*ast.FuncDecl)
			if !ok || fn.Recv == nil || fn.Name.Name != "Validate" || fn.Body == nil || !strings.HasSuffix(recvName(fn), "Config") {
				continue
			}
			name := f.Name.Name + "." + recvName(fn)
			if _, star := fn.Recv.List[0].Type.(*ast.StarExpr); star {
				t.Errorf("%s: %s.Validate has a pointer receiver; give it a value receiver", fset.Position(fn.Pos()), name)
			}
			if allowed[name] {
				continue
			}
			ast.Inspect(fn.Body, func(n ast.Node) bool {
				call, ok := n.(*ast.CallExpr)
				if !ok || len(call.Args) == 0 {
					return true
				}
				sel, ok := call.Fun.(*ast.SelectorExpr)
				if !ok || !(sel.Sel.Name == "New" || sel.Sel.Name == "Errorf") {
					return true
				}
				if lit, ok := call.Args[0].(*ast.BasicLit); ok && lit.Kind == token.STRING && !strings.HasPrefix(lit.Value, prefix) {
					t.Errorf("%s: %s.Validate error %s must start with %s\"", fset.Position(lit.Pos()), recvName(fn), lit.Value, prefix)
				}
				return true
			})
		}
	})
}

// recvName is the name of fn's receiver type, without a pointer.
func recvName(fn *ast.FuncDecl) string {
	x := fn.Recv.List[0].Type
	if star, ok := x.(*ast.StarExpr); ok {
		x = star.X
	}
	if id, ok := x.(*ast.Ident); ok {
		return id.Name
	}
	return ""
}

// TestDevToolsHaveTheRunShape holds the binaries outside runtime/cmd (the
// demo, the image builder, the schema generator) to the shape of
// program.Run, which they cannot import (it is internal to runtime/cmd):
// run(ctx, args, stdin, stdout, stderr, getenv) error, called by a main
// that alone handles signals and the exit code.
func TestDevToolsHaveTheRunShape(t *testing.T) {
	want := []string{"context.Context", "[]string", "io.Reader", "io.Writer", "io.Writer", "func(string) string"}
	var dirs []string
	for _, pattern := range []string{"../../integration/cmd/*", "../../components/cmd/*", "../../components/infratest/schemagen"} {
		m, err := filepath.Glob(pattern)
		if err != nil {
			t.Fatal(err)
		}
		dirs = append(dirs, m...)
	}
	if len(dirs) < 3 {
		t.Fatalf("found only %v", dirs)
	}
	for _, dir := range dirs {
		files, err := filepath.Glob(filepath.Join(dir, "*.go"))
		if err != nil {
			t.Fatal(err)
		}
		var run *ast.FuncDecl
		for _, file := range files {
			if strings.HasSuffix(file, "_test.go") {
				continue
			}
			f, err := parser.ParseFile(token.NewFileSet(), file, nil, 0)
			if err != nil {
				t.Fatal(err)
			}
			for _, decl := range f.Decls {
				if fn, ok := decl.(*ast.FuncDecl); ok && fn.Recv == nil && fn.Name.Name == "run" {
					run = fn
				}
			}
		}
		if run == nil {
			t.Errorf("%s: no func run", dir)
			continue
		}
		var got []string
		for _, p := range run.Type.Params.List {
			for range max(1, len(p.Names)) {
				got = append(got, types.ExprString(p.Type))
			}
		}
		res := run.Type.Results
		if !slices.Equal(got, want) || res == nil || len(res.List) != 1 || types.ExprString(res.List[0].Type) != "error" {
			t.Errorf("%s: func run(%s) must be run(%s) error", dir, strings.Join(got, ", "), strings.Join(want, ", "))
		}
	}
}

// TestOneBusConstructor: a binary that talks to the gateway bus opens it
// with busdriver.Open(busdriver.Config), never by calling a driver's
// constructor itself (docs/conventions.md), so every binary reads the
// same settings the same way.
func TestOneBusConstructor(t *testing.T) {
	drivers := filepath.Join("..", "bus") + string(filepath.Separator) // the drivers and busdriver itself
	forGoFiles(t, "..", 0, func(path string, fset *token.FileSet, f *ast.File) {
		if strings.HasPrefix(path, drivers) {
			return
		}
		ast.Inspect(f, func(n ast.Node) bool {
			call, ok := n.(*ast.CallExpr)
			if !ok {
				return true
			}
			sel, ok := call.Fun.(*ast.SelectorExpr)
			if !ok || !strings.HasPrefix(sel.Sel.Name, "New") {
				return true
			}
			if pkg, ok := sel.X.(*ast.Ident); ok && (pkg.Name == "storagequeue" || pkg.Name == "servicebus") {
				t.Errorf("%s: %s.%s: open the bus with busdriver.Open", fset.Position(call.Pos()), pkg.Name, sel.Sel.Name)
			}
			return true
		})
	})
}
