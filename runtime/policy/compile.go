// Package policy checks Terraform plans against a tenant's policies,
// written in Rego and evaluated in process with the Open Policy Agent
// library, before a plan can be approved (docs/policy.md).
//
// A policy (policystore.Policy) is one Rego module with a tenant-unique
// name, an enforcement level (runs.Advisory, runs.Mandatory,
// runs.MandatoryOverride) and optionally a workspace it is limited to. Its
// deny rule (a set of messages) fails the plan when it holds a value; its
// optional warn rule adds warnings that never fail. Policies are compiled
// when they are stored (Put), so a bad one is refused at upload with the
// compiler's error, never found mid-run. Every put is a new version; a
// run records the version it was checked with.
//
// The server evaluates, clients only upload text: this package is
// server-only (runtime/cmd/deps_test.go), because OPA is large.
package policy

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/rego"

	"github.com/botehq/platform/runtime/policystore"
)

// CompileError is a policy the compiler refused, with its message.
type CompileError struct {
	Policy string
	Err    error
}

func (e *CompileError) Error() string {
	return fmt.Sprintf("policy %s does not compile: %v", e.Policy, e.Err)
}

func (e *CompileError) Unwrap() error { return e.Err }

// denied are the builtins a policy may not call: a policy runs inside the
// ops server, so it must neither reach the network (http.send,
// net.lookup_ip_addr) nor read the server's environment (opa.runtime).
var denied = []string{
	ast.HTTPSend.Name, ast.NetLookupIPAddr.Name, ast.OPARuntime.Name,
}

// capabilities are OPA's builtins for this version less denied, with no
// network access.
var capabilities = func() *ast.Capabilities {
	c := ast.CapabilitiesForThisVersion()
	c.Builtins = slices.DeleteFunc(c.Builtins, func(b *ast.Builtin) bool { return slices.Contains(denied, b.Name) })
	c.AllowNet = []string{}
	return c
}()

// Put compiles p and stores it as its next version: a policy that does not
// compile is refused with a *CompileError and stores nothing.
func Put(ctx context.Context, s policystore.Store, p policystore.Policy) (policystore.Policy, error) {
	if err := p.Validate(); err != nil {
		return policystore.Policy{}, err
	}
	if _, err := Compile(ctx, p.Name, p.Source); err != nil {
		return policystore.Policy{}, err
	}
	return s.Put(ctx, p)
}

// Compiled is a policy ready to evaluate.
type Compiled struct {
	pkg   string // data.<package>, the document with deny and warn
	query rego.PreparedEvalQuery
}

// Compile parses and compiles a policy's Rego (Rego v1 syntax), which must
// declare a package and a deny rule. Errors are *CompileError with the
// compiler's messages (file name: the policy's name, with line and
// column).
func Compile(ctx context.Context, name, src string) (*Compiled, error) {
	file := name + ".rego"
	bad := func(err error) (*Compiled, error) { return nil, &CompileError{Policy: name, Err: err} }
	mod, err := ast.ParseModuleWithOpts(file, src, ast.ParserOptions{RegoVersion: ast.RegoV1, Capabilities: capabilities})
	if err != nil {
		return bad(err)
	}
	if !slices.ContainsFunc(mod.Rules, func(r *ast.Rule) bool { return ruleName(r) == "deny" }) {
		return bad(fmt.Errorf("%s: no deny rule (a policy fails a plan through `deny contains msg if { ... }`)", file))
	}
	c := ast.NewCompiler().WithCapabilities(capabilities)
	if c.Compile(map[string]*ast.Module{file: mod}); c.Failed() {
		return bad(c.Errors)
	}
	pkg := mod.Package.Path.String()
	q, err := rego.New(rego.Compiler(c), rego.Query(pkg), rego.StrictBuiltinErrors(true), rego.Capabilities(capabilities)).PrepareForEval(ctx)
	if err != nil {
		return bad(err)
	}
	return &Compiled{pkg: pkg, query: q}, nil
}

// ruleName is the rule's name from its reference (deny contains ...).
func ruleName(r *ast.Rule) string {
	ref := r.Head.Ref()
	if len(ref) == 0 {
		return ""
	}
	return strings.Trim(ref[0].String(), `"`)
}

// Verdict is a policy's answer on one input.
type Verdict struct {
	Deny, Warn []string
}

// Eval evaluates the policy on input (a parsed value, see Input).
func (c *Compiled) Eval(ctx context.Context, input ast.Value) (Verdict, error) {
	rs, err := c.query.Eval(ctx, rego.EvalParsedInput(input))
	if err != nil {
		return Verdict{}, err
	}
	if len(rs) == 0 || len(rs[0].Expressions) == 0 {
		return Verdict{}, fmt.Errorf("%s is undefined", c.pkg)
	}
	doc, _ := rs[0].Expressions[0].Value.(map[string]any)
	deny, err := messages(doc["deny"])
	if err != nil {
		return Verdict{}, fmt.Errorf("deny: %w", err)
	}
	warn, err := messages(doc["warn"])
	if err != nil {
		return Verdict{}, fmt.Errorf("warn: %w", err)
	}
	return Verdict{Deny: deny, Warn: warn}, nil
}

// messages reads a deny or warn rule's values: strings, or objects with a
// msg string (as conftest has them).
func messages(v any) ([]string, error) {
	var vals []any
	switch v := v.(type) {
	case nil:
		return nil, nil
	case []any:
		vals = v
	case bool:
		if v {
			return []string{"denied"}, nil
		}
		return nil, nil
	default:
		return nil, fmt.Errorf("want a set of messages, got %T", v)
	}
	out := make([]string, 0, len(vals))
	for _, x := range vals {
		switch x := x.(type) {
		case string:
			out = append(out, x)
		case map[string]any:
			if m, ok := x["msg"].(string); ok {
				out = append(out, m)
				continue
			}
			out = append(out, fmt.Sprint(x))
		default:
			out = append(out, fmt.Sprint(x))
		}
	}
	slices.Sort(out)
	return out, nil
}
