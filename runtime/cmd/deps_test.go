// Package cmd_test guards the architecture through the real dependency graph
// (`go list -deps`), the way Tailscale's depaware does: what each shipped
// binary may link, and which packages must stay self-contained.
package cmd_test

import (
	"os/exec"
	"slices"
	"strings"
	"sync"
	"testing"
)

const module = "github.com/botehq/platform/"

// forbiddenInBinaries may never be linked into anything under runtime/cmd:
// infrastructure code and test tooling stay out of what we ship.
var forbiddenInBinaries = []string{
	"github.com/pulumi/",
	"github.com/testcontainers/",
	"github.com/docker/",
	"github.com/moby/",
	module + "components",
	module + "stacks",
	module + "integration",
}

// goListed memoizes goList: the tests ask for the same binaries' and
// packages' dependencies many times, and each go list loads the module
// anew.
var goListed sync.Map // args joined by NUL → []string

func goList(t *testing.T, args ...string) []string {
	t.Helper()
	key := strings.Join(args, "\x00")
	if out, ok := goListed.Load(key); ok {
		return out.([]string)
	}
	cmd := exec.Command("go", append([]string{"list"}, args...)...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list %s: %v\n%s", strings.Join(args, " "), err, stderr.String())
	}
	list := strings.Fields(string(out))
	goListed.Store(key, list)
	return list
}

func binaries(t *testing.T) []string {
	t.Helper()
	bins := goList(t, "-f", `{{if eq .Name "main"}}{{.ImportPath}}{{end}}`, "./...")
	if len(bins) == 0 {
		t.Fatal("no binaries found under runtime/cmd")
	}
	return bins
}

func TestBinariesLinkNoInfrastructureOrTestTooling(t *testing.T) {
	for _, bin := range binaries(t) {
		reported := map[string]bool{}
		for _, dep := range goList(t, "-deps", bin) {
			for _, bad := range forbiddenInBinaries {
				if strings.HasPrefix(dep, bad) && !reported[bad] {
					reported[bad] = true
					t.Errorf("%s depends on %s (forbidden prefix %s); find the import chain with `go mod why -m` or `go list -deps`", bin, dep, bad)
				}
			}
		}
	}
}

// TestSelfContainedPackages keeps packages meant for reuse outside this
// platform (the Pulumi components derive queue names too) free of the rest
// of the runtime: each depends on nothing of ours but what is listed.
func TestSelfContainedPackages(t *testing.T) {
	for pkg, allowed := range map[string][]string{
		"runtime/relay/...": {"runtime/relay"},
		"runtime/queuename": {"runtime/queuename", "runtime/ids"},
		"runtime/ids":       {"runtime/ids"},
		// What clients check and print without the server's code.
		"runtime/runspec":  {"runtime/runspec", "runtime/ids"},
		"runtime/operator": {"runtime/operator", "runtime/ids"},
	} {
		for _, dep := range goList(t, "-deps", module+pkg) {
			if strings.HasPrefix(dep, module) && !slices.ContainsFunc(allowed, func(root string) bool {
				return dep == module+root || strings.HasPrefix(dep, module+root+"/")
			}) {
				t.Errorf("%s must not depend on %s", pkg, dep)
			}
		}
	}
}

// layerRules keep a package from linking what belongs to another layer
// (issue 12's layer leaks): the stored run model, the run protocol and the
// servers carry Terraform's result as data (runtime/tfresult), never
// through the code that runs Terraform; the artifact store speaks in its
// own references, not in the bus's message types.
var layerRules = map[string][]string{
	"runtime/runs":      {"runtime/tfrun", "github.com/hashicorp/terraform-exec", "runtime/envelope", "runtime/bus"},
	"runtime/runstore":  {"runtime/tfrun", "github.com/hashicorp/terraform-exec", "runtime/envelope", "runtime/bus"},
	"runtime/artifacts": {"runtime/tfrun", "github.com/hashicorp/terraform-exec", "runtime/envelope", "runtime/bus"},
	"runtime/runproto":  {"runtime/tfrun", "github.com/hashicorp/terraform-exec"},
	"runtime/opsserver": {"runtime/tfrun", "github.com/hashicorp/terraform-exec"},
	"runtime/tfresult":  {"runtime/tfrun", "github.com/hashicorp/terraform-exec"},
}

func TestLayers(t *testing.T) {
	for pkg, forbidden := range layerRules {
		for _, dep := range goList(t, "-deps", module+pkg) {
			for _, bad := range forbidden {
				if strings.HasPrefix(bad, "runtime/") {
					bad = module + bad
				}
				if dep == bad || strings.HasPrefix(dep, bad+"/") {
					t.Errorf("%s links %s; find the import chain with `go list -deps`", pkg, dep)
				}
			}
		}
	}
}

func TestComponentsLinkNoTestTooling(t *testing.T) {
	for _, dep := range goList(t, "-deps", module+"components/...", module+"stacks/...") {
		for _, bad := range []string{"github.com/testcontainers/", module + "integration"} {
			if strings.HasPrefix(dep, bad) {
				t.Errorf("Pulumi code depends on %s", dep)
			}
		}
	}
}

// The samples (module examples/) are what a developer's program looks
// like: they link the client libraries and nothing of the test tooling or
// the infrastructure code.
func TestExamplesLinkNoTestTooling(t *testing.T) {
	bad := append([]string{"github.com/stretchr/testify"}, forbiddenInBinaries...)
	for _, dep := range goList(t, "-deps", module+"examples/...") {
		for _, b := range bad {
			if strings.HasPrefix(dep, b) {
				t.Errorf("the samples depend on %s", dep)
			}
		}
	}
}

// serverOnly are packages only the servers (ops server, gateway, idp) may
// link: the ops server, the run manager and its stores, the ops API server,
// operator authentication, secrets, the audit log, the cloud side and the drivers of
// the gateway bus, the gateway process, the token issuer.
var serverOnly = []string{
	"runtime/opsserver", "runtime/runs", "runtime/runstore", "runtime/artifacts", "runtime/dispatch", "runtime/opsapi",
	"runtime/operatorauth", "runtime/secretstore", "runtime/audit",
	"runtime/botecloud", "runtime/bus", "runtime/gatewayserver", "runtime/idp",
	"runtime/signingkeys", "runtime/replay",
	"runtime/policy", "runtime/policystore", "github.com/open-policy-agent/opa", "runtime/notify", "runtime/drift", "github.com/robfig/cron",
}

// clientBinaries are the binaries customers and operators install. Each
// links nothing in serverOnly nor its own forbidden list, except what it
// still links today (stillLinked, issue 12: to be removed). An entry of
// stillLinked the binary no longer links fails the test too, so the list
// only shrinks.
var clientBinaries = map[string]struct{ forbidden, stillLinked []string }{
	"agent": {},
	"connector": {
		forbidden: []string{"runtime/tfrun", "github.com/hashicorp/terraform-exec"},
	},
	"opsbot": {
		forbidden: []string{"runtime/tfrun", "github.com/hashicorp/terraform-exec", "github.com/Azure/azure-sdk-for-go/sdk/storage/azblob"},
	},
}

func TestClientBinariesLinkNoServerCode(t *testing.T) {
	full := func(p string) string {
		if strings.HasPrefix(p, "runtime/") {
			return module + p
		}
		return p
	}
	under := func(dep, root string) bool { return dep == full(root) || strings.HasPrefix(dep, full(root)+"/") }
	for bin, rule := range clientBinaries {
		deps := goList(t, "-deps", module+"runtime/cmd/"+bin)
		for _, root := range append(slices.Clone(serverOnly), rule.forbidden...) {
			i := slices.IndexFunc(deps, func(dep string) bool { return under(dep, root) })
			if i >= 0 && !slices.Contains(rule.stillLinked, root) {
				t.Errorf("%s links %s (server-only %s); find the import chain with `go list -deps`", bin, deps[i], root)
			}
		}
		for _, root := range rule.stillLinked {
			if !slices.ContainsFunc(deps, func(dep string) bool { return under(dep, root) }) {
				t.Errorf("%s no longer links %s: remove it from clientBinaries[%q].stillLinked", bin, root, bin)
			}
		}
	}
}

// TestOnlyOpsbotLinksTheMCPSDK keeps the Model Context Protocol SDK (and
// its schema and OAuth packages) in the one binary that serves it, opsbot
// mcp (package opsmcp): the servers and the agent have no use for it.
func TestOnlyOpsbotLinksTheMCPSDK(t *testing.T) {
	for _, bin := range binaries(t) {
		linked := slices.ContainsFunc(goList(t, "-deps", bin), func(dep string) bool {
			return strings.HasPrefix(dep, "github.com/modelcontextprotocol/") || dep == module+"runtime/opsmcp"
		})
		if want := strings.HasSuffix(bin, "/cmd/opsbot"); linked != want {
			t.Errorf("%s: links the MCP SDK = %v, want %v", bin, linked, want)
		}
	}
}
