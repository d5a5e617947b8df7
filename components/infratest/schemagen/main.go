// Command schemagen trims the azure-native provider's schema to the resource
// types the stacks register, for infratest's conformance check.
//
// The provider's schema.json is not published where our build machines can
// fetch it (the provider plugin is not served, and the schema is generated in
// the provider's CI, not committed). Its Node.js SDK is: @pulumi/azure-native
// on npm is generated from that schema at the same version, and carries, per
// resource, the input properties with their nesting (<module>/<resource>.d.ts
// and types/input.d.ts), which are required, the enum values
// (types/enums/...), the default API version (the doc comment "Uses Azure
// REST API version ...") and the defaults the SDK constructors fill in (the
// "?? <value>" in <resource>.js and the *ProvideDefaults functions in
// types/input.js). schemagen reads those and writes one JSON file.
//
// Replacement semantics are not in any SDK (the provider decides them in its
// Diff from metadata); they are kept by hand, with their source, in
// azure-native-replace.json next to the output.
//
// Usage (make azure-schema does this):
//
//	npm pack @pulumi/azure-native@2.90.0 && tar xzf pulumi-azure-native-2.90.0.tgz
//	go run ./infratest/schemagen -pkg package -out infratest/testdata/azure-native-schema.json
package main

import (
	"context"
	"crypto/sha512"
	"encoding/base64"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"

	"github.com/botehq/platform/components/infratest"
)

// Resources are the type tokens the stacks register (with the versioned
// tokens they use). Add a token here when a component registers a new type.
var Resources = []string{
	"azure-native:app/v20240301:ContainerApp",
	"azure-native:app/v20240301:ManagedEnvironment",
	"azure-native:authorization:RoleAssignment",
	"azure-native:containerregistry:Registry",
	"azure-native:containerregistry:ScopeMap",
	"azure-native:containerregistry:Token",
	"azure-native:insights:Component",
	"azure-native:keyvault:Secret",
	"azure-native:keyvault:Vault",
	"azure-native:managedidentity:UserAssignedIdentity",
	"azure-native:operationalinsights:Workspace",
	"azure-native:relay:HybridConnection",
	"azure-native:relay:HybridConnectionAuthorizationRule",
	"azure-native:relay:Namespace",
	"azure-native:resources:ResourceGroup",
	"azure-native:servicebus:Namespace",
	"azure-native:servicebus:Queue",
	"azure-native:storage:Blob",
	"azure-native:storage:BlobContainer",
	"azure-native:storage:Queue",
	"azure-native:storage:StorageAccount",
	"azure-native:storage:Table",
	"azure-native:web:AppServicePlan",
	"azure-native:web:WebApp",
}

// The schema's types are infratest's, which reads the file.
type (
	Type   = infratest.SchemaType
	Object = infratest.SchemaObject
	Schema = infratest.ProviderSchema
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr, os.Getenv)
	stop()
	if err != nil && !errors.Is(err, flag.ErrHelp) {
		fmt.Fprintln(os.Stderr, "schemagen:", err)
		os.Exit(1)
	}
}

// run has the shape of every binary's run (runtime/cmd): main alone
// handles signals and the exit code.
func run(_ context.Context, args []string, _ io.Reader, _, stderr io.Writer, _ func(string) string) error {
	fs := flag.NewFlagSet("schemagen", flag.ContinueOnError)
	fs.SetOutput(stderr)
	pkg := fs.String("pkg", "package", "the unpacked @pulumi/azure-native npm package")
	out := fs.String("out", "infratest/testdata/azure-native-schema.json", "output file")
	tarball := fs.String("tarball", "", "the npm tarball the package was unpacked from (its integrity is recorded)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	return generate(*pkg, *out, *tarball)
}

// generate writes the schema of the package unpacked in pkg to out.
func generate(pkg, out, tarball string) error {
	// size: the generator's pipeline (load, resolve, fill, write) in order over one gen.
	var meta struct {
		Name    string `json:"name"`
		Version string `json:"version"`
	}
	raw, err := os.ReadFile(filepath.Join(pkg, "package.json"))
	if err != nil {
		return err
	}
	if err := json.Unmarshal(raw, &meta); err != nil {
		return fmt.Errorf("cannot read package.json: %w", err)
	}
	g := &gen{pkg: pkg, raw: map[string]string{}, enums: map[string][]string{}}
	if err := g.loadInputs(); err != nil {
		return err
	}
	s := Schema{
		Source: map[string]string{
			"package": meta.Name + "@" + meta.Version,
			"from":    "npm pack " + meta.Name + "@" + meta.Version + " (the Node.js SDK generated from the provider schema of that version)",
			"refresh": "make azure-schema (at the repository root)",
			"tarball": "https://registry.npmjs.org/" + meta.Name + "/-/" + meta.Name[strings.Index(meta.Name, "/")+1:] + "-" + meta.Version + ".tgz",
		},
		Resources: map[string]*Object{},
		Types:     map[string]*Object{},
	}
	if tarball != "" {
		raw, err := os.ReadFile(tarball)
		if err != nil {
			return err
		}
		sum := sha512.Sum512(raw)
		s.Source["integrity"] = "sha512-" + base64.StdEncoding.EncodeToString(sum[:]) // as npm reports it
	}
	for _, tok := range Resources {
		obj, err := g.resource(tok)
		if err != nil {
			return fmt.Errorf("%s: %w", tok, err)
		}
		s.Resources[tok] = obj
	}
	// Every input type reachable from the resources.
	var visit func(t *Type) error
	visit = func(t *Type) error {
		if t == nil {
			return nil
		}
		if t.Ref != "" && !strings.HasPrefix(t.Ref, "enum:") {
			if _, done := s.Types[t.Ref]; !done {
				obj, err := g.inputType(t.Ref)
				if err != nil {
					return err
				}
				s.Types[t.Ref] = obj
				for _, p := range obj.Properties {
					if err := visit(p); err != nil {
						return err
					}
				}
			}
		}
		if err := visit(t.Items); err != nil {
			return err
		}
		return visit(t.AdditionalProperties)
	}
	for _, r := range s.Resources {
		for _, p := range r.Properties {
			if err := visit(p); err != nil {
				return err
			}
		}
	}
	if err := g.fillEnums(s); err != nil {
		return err
	}
	if err := g.nestedDefaults(s); err != nil {
		return err
	}
	b, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(out, append(b, '\n'), 0o644)
}

type gen struct {
	pkg   string
	raw   map[string]string   // "app/v20240301:ConfigurationArgs" -> interface body
	enums map[string][]string // "app/v20240301:ActiveRevisionsMode" -> values
}

// split parses a token into module path ("app/v20240301") and name.
func split(tok string) (module, name string, err error) {
	parts := strings.Split(tok, ":")
	if len(parts) != 3 || parts[0] != "azure-native" {
		return "", "", fmt.Errorf("not an azure-native token: %q", tok)
	}
	return parts[1], parts[2], nil
}

var apiVersion = regexp.MustCompile(`Uses Azure REST API version ([0-9]{4}-[0-9]{2}-[0-9]{2}(-preview)?)`)

func (g *gen) resource(tok string) (*Object, error) {
	module, name, err := split(tok)
	if err != nil {
		return nil, err
	}
	base := filepath.Join(g.pkg, filepath.FromSlash(module), strings.ToLower(name[:1])+name[1:])
	dts, err := os.ReadFile(base + ".d.ts")
	if err != nil {
		return nil, err
	}
	obj, err := parseInterface(string(dts), name+"Args", module)
	if err != nil {
		return nil, err
	}
	obj.APIVersion = moduleAPIVersion(module)
	if m := apiVersion.FindStringSubmatch(string(dts)); m != nil && obj.APIVersion == "" {
		obj.APIVersion = m[1]
	}
	js, err := os.ReadFile(base + ".js")
	if err != nil {
		return nil, err
	}
	obj.Defaults = jsDefaults(string(js), `resourceInputs\["(\w+)"\] = \(_\w+ = \(args \? args\.\w+ : undefined\)\) !== null && _\w+ !== void 0 \? _\w+ : ([^;]+);`)
	return obj, nil
}

var versionedModule = regexp.MustCompile(`/v(\d{4})(\d{2})(\d{2})(preview)?$`)

// moduleAPIVersion reads the API version of a versioned module
// ("app/v20240301" -> "2024-03-01"); "" for a default-version module.
func moduleAPIVersion(module string) string {
	m := versionedModule.FindStringSubmatch(module)
	if m == nil {
		return ""
	}
	v := m[1] + "-" + m[2] + "-" + m[3]
	if m[4] != "" {
		v += "-preview"
	}
	return v
}
