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
	"bufio"
	"crypto/sha512"
	"encoding/base64"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"

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
	pkg := flag.String("pkg", "package", "the unpacked @pulumi/azure-native npm package")
	out := flag.String("out", "infratest/testdata/azure-native-schema.json", "output file")
	tarball := flag.String("tarball", "", "the npm tarball the package was unpacked from (its integrity is recorded)")
	flag.Parse()
	if err := run(*pkg, *out, *tarball); err != nil {
		fmt.Fprintln(os.Stderr, "schemagen:", err)
		os.Exit(1)
	}
}

func run(pkg, out, tarball string) error {
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

// jsDefaults collects name -> literal default from the generated JS.
func jsDefaults(js, pattern string) map[string]any {
	out := map[string]any{}
	for _, m := range regexp.MustCompile(pattern).FindAllStringSubmatch(js, -1) {
		var v any
		if err := json.Unmarshal([]byte(strings.TrimSpace(m[2])), &v); err == nil {
			out[m[1]] = v
		}
	}
	if len(out) == 0 {
		return nil
	}
	return out
}

var (
	interfaceStart = regexp.MustCompile(`^\s*(?:export )?interface (\w+) \{$`)
	namespaceStart = regexp.MustCompile(`^(\s*)(?:export declare )?namespace (\w+) \{$`)
	comment        = regexp.MustCompile(`(?s)/\*.*?\*/`)
)

// parseInterface finds "interface <name> {" in a resource's .d.ts.
func parseInterface(src, name, module string) (*Object, error) {
	src = comment.ReplaceAllString(src, "")
	i := strings.Index(src, "interface "+name+" {")
	if i < 0 {
		return nil, fmt.Errorf("interface %s not found", name)
	}
	body := src[i+len("interface "+name+" {"):]
	end := matchingBrace(body)
	return parseBody(body[:end], module)
}

// matchingBrace returns the index of the brace closing an already opened one.
func matchingBrace(s string) int {
	depth := 1
	for i, c := range s {
		switch c {
		case '{':
			depth++
		case '}':
			depth--
			if depth == 0 {
				return i
			}
		}
	}
	return len(s)
}

// parseBody parses "name?: type;" members.
func parseBody(body, module string) (*Object, error) {
	obj := &Object{Properties: map[string]*Type{}}
	depth, start := 0, 0
	var members []string
	for i, c := range body {
		switch c {
		case '{', '<', '(':
			depth++
		case '}', '>', ')':
			depth--
		case ';':
			if depth == 0 {
				members = append(members, strings.TrimSpace(body[start:i]))
				start = i + 1
			}
		}
	}
	for _, m := range members {
		if m == "" {
			continue
		}
		colon := strings.Index(m, ":")
		if colon < 0 {
			return nil, fmt.Errorf("cannot parse member %q", m)
		}
		name, optional := strings.CutSuffix(strings.TrimSpace(m[:colon]), "?")
		t, err := parseType(strings.Join(strings.Fields(m[colon+1:]), " "), module)
		if err != nil {
			return nil, fmt.Errorf("member %s: %w", name, err)
		}
		obj.Properties[name] = t
		if !optional {
			obj.Required = append(obj.Required, name)
		}
	}
	sort.Strings(obj.Required)
	return obj, nil
}

var mapType = regexp.MustCompile(`^\{ \[key: string\]: (.*); \}$`)

// parseType parses the SDK's TypeScript type of an input.
func parseType(s, module string) (*Type, error) {
	s = strings.TrimSpace(s)
	if inner, ok := strings.CutPrefix(s, "pulumi.Input<"); ok && strings.HasSuffix(s, ">") && matchingAngle(inner) == len(inner)-1 {
		return parseType(inner[:len(inner)-1], module)
	}
	if inner, ok := strings.CutSuffix(s, "[]"); ok {
		items, err := parseType(inner, module)
		if err != nil {
			return nil, err
		}
		return &Type{Type: "array", Items: items}, nil
	}
	if m := mapType.FindStringSubmatch(s); m != nil {
		v, err := parseType(m[1], module)
		if err != nil {
			return nil, err
		}
		return &Type{Type: "object", AdditionalProperties: v}, nil
	}
	switch s {
	case "string", "boolean", "any":
		return &Type{Type: s}, nil
	case "number":
		return &Type{Type: "number"}, nil
	case "pulumi.asset.Asset | pulumi.asset.Archive":
		return &Type{Type: "asset"}, nil
	}
	if c, err := strconv.Unquote(s); err == nil {
		return &Type{Type: "string", Enum: []string{c}, StrictEnum: true}, nil // a discriminator
	}
	if e, ok := strings.CutPrefix(s, "string | enums."); ok {
		return &Type{Type: "string", Ref: "enum:" + tsRef(e)}, nil
	}
	if e, ok := strings.CutPrefix(s, "enums."); ok {
		return &Type{Type: "string", Ref: "enum:" + tsRef(e), StrictEnum: true}, nil
	}
	if r, ok := strings.CutPrefix(s, "inputs."); ok {
		return &Type{Type: "object", Ref: tsRef(r)}, nil
	}
	return nil, fmt.Errorf("unknown type %q", s)
}

// matchingAngle returns the index of the '>' closing an opened '<'.
func matchingAngle(s string) int {
	depth := 1
	for i, c := range s {
		switch c {
		case '<':
			depth++
		case '>':
			depth--
			if depth == 0 {
				return i
			}
		}
	}
	return -1
}

// tsRef turns "app.v20240301.ConfigurationArgs" into "app/v20240301:ConfigurationArgs".
func tsRef(s string) string {
	i := strings.LastIndex(s, ".")
	return strings.ReplaceAll(s[:i], ".", "/") + ":" + s[i+1:]
}

// inputType parses one interface of types/input.d.ts.
func (g *gen) inputType(ref string) (*Object, error) {
	body, ok := g.raw[ref]
	if !ok {
		return nil, fmt.Errorf("input type %s not found", ref)
	}
	module, _, _ := strings.Cut(ref, ":")
	obj, err := parseBody(comment.ReplaceAllString(body, ""), module)
	if err != nil {
		return nil, fmt.Errorf("input type %s: %w", ref, err)
	}
	return obj, nil
}

// loadInputs reads every interface of types/input.d.ts, keyed by
// namespace path and name.
func (g *gen) loadInputs() error {
	f, err := os.Open(filepath.Join(g.pkg, "types", "input.d.ts"))
	if err != nil {
		return err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<24)
	var stack []namespace
	var cur *strings.Builder
	var curName string
	curDepth := 0
	for sc.Scan() {
		line := sc.Text()
		if t := strings.TrimSpace(line); strings.HasPrefix(t, "*") || strings.HasPrefix(t, "/*") {
			continue // doc comments may hold unbalanced braces
		}
		if cur != nil {
			cur.WriteString(line)
			cur.WriteByte('\n')
			curDepth += strings.Count(line, "{") - strings.Count(line, "}")
			if curDepth == 0 {
				body := cur.String()
				g.raw[namespacePath(stack)+":"+curName] = body[:strings.LastIndex(body, "}")]
				cur = nil
			}
			continue
		}
		if m := namespaceStart.FindStringSubmatch(line); m != nil {
			for len(stack) > 0 && stack[len(stack)-1].indent >= len(m[1]) {
				stack = stack[:len(stack)-1]
			}
			stack = append(stack, namespace{len(m[1]), m[2]})
			continue
		}
		if m := interfaceStart.FindStringSubmatch(line); m != nil {
			indent := len(line) - len(strings.TrimLeft(line, " "))
			for len(stack) > 0 && stack[len(stack)-1].indent >= indent {
				stack = stack[:len(stack)-1]
			}
			cur, curName, curDepth = &strings.Builder{}, m[1], 1
		}
	}
	return sc.Err()
}

type namespace struct {
	indent int
	name   string
}

func namespacePath(stack []namespace) string {
	parts := make([]string, len(stack))
	for i, n := range stack {
		parts[i] = n.name
	}
	return strings.Join(parts, "/")
}

var enumValue = regexp.MustCompile(`readonly \w+: ("[^"]*"|[0-9.]+|true|false);`)

// fillEnums resolves every "enum:" reference to its values.
func (g *gen) fillEnums(s Schema) error {
	var fill func(t *Type) error
	fill = func(t *Type) error {
		if t == nil {
			return nil
		}
		if e, ok := strings.CutPrefix(t.Ref, "enum:"); ok {
			values, err := g.enum(e)
			if err != nil {
				return err
			}
			t.Enum, t.Ref = values, ""
		}
		if err := fill(t.Items); err != nil {
			return err
		}
		return fill(t.AdditionalProperties)
	}
	for _, objs := range []map[string]*Object{s.Resources, s.Types} {
		for _, o := range objs {
			for _, p := range o.Properties {
				if err := fill(p); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

func (g *gen) enum(ref string) ([]string, error) {
	if v, ok := g.enums[ref]; ok {
		return v, nil
	}
	module, name, _ := strings.Cut(ref, ":")
	src, err := os.ReadFile(filepath.Join(g.pkg, "types", "enums", filepath.FromSlash(module), "index.d.ts"))
	if err != nil {
		return nil, err
	}
	text := comment.ReplaceAllString(string(src), "")
	i := strings.Index(text, "export declare const "+name+": {")
	if i < 0 {
		return nil, fmt.Errorf("enum %s not found", ref)
	}
	body := text[i:]
	body = body[:strings.Index(body, "};")]
	var values []string
	for _, m := range enumValue.FindAllStringSubmatch(body, -1) {
		v := m[1]
		if u, err := strconv.Unquote(v); err == nil {
			v = u
		}
		values = append(values, v)
	}
	sort.Strings(values)
	g.enums[ref] = values
	return values, nil
}

// nestedDefaults reads the *ProvideDefaults functions of types/input.js for
// the input types in s.
func (g *gen) nestedDefaults(s Schema) error {
	js, err := os.ReadFile(filepath.Join(g.pkg, "types", "input.js"))
	if err != nil {
		return err
	}
	text := string(js)
	// Functions are emitted inside "(function (<module>) {" blocks; find the
	// function by its module's assignment line, e.g.
	// "v20240301.configurationArgsProvideDefaults = configurationArgsProvideDefaults;".
	for ref, obj := range s.Types {
		module, name, _ := strings.Cut(ref, ":")
		fn := strings.ToLower(name[:1]) + name[1:] + "ProvideDefaults"
		parts := strings.Split(module, "/")
		owner := parts[len(parts)-1]
		assign := "    " + owner + "." + fn + " = " + fn + ";"
		end := -1
		for off := 0; ; {
			i := strings.Index(text[off:], assign)
			if i < 0 {
				break
			}
			// The assignment must sit at this module's nesting depth:
			// 4 spaces per namespace level.
			lineStart := strings.LastIndex(text[:off+i+4], "\n") + 1
			if off+i+4-lineStart == 4*len(parts) {
				end = off + i
				break
			}
			off += i + len(assign)
		}
		if end < 0 {
			continue
		}
		start := strings.LastIndex(text[:end], "function "+fn+"(val) {")
		if start < 0 {
			continue
		}
		obj.Defaults = jsDefaults(text[start:end], `(\w+): \(_\w+ = \(val\.\w+\)\) !== null && _\w+ !== void 0 \? _\w+ : ([^,}]+)`)
	}
	return nil
}
