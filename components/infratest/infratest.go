// Package infratest runs Pulumi programs and components under Pulumi's
// mocks and records what they register, for golden-file and policy tests of
// the components and stacks.
//
// The mock echoes every input, fabricates ids shaped like Azure resource ids
// and the provider-computed outputs the components read (endpoints, keys,
// principal ids) using the cloud table's suffixes for the cloud under test,
// so a sovereign-cloud run sees sovereign-cloud endpoints exactly as a real
// deployment would. Recordings render as sorted, stable JSON.
package infratest

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/google/uuid"
	"github.com/pulumi/pulumi/sdk/v3/go/common/resource"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"
	"github.com/stretchr/testify/require"

	"github.com/botehq/platform/components/azurecloud"
)

var update = flag.Bool("update", false, "rewrite golden files under testdata/")

// Fake values the mock hands out.
const (
	SubscriptionID = "00000000-0000-0000-0000-0000000000aa"
	TenantID       = "00000000-0000-0000-0000-0000000000bb"
	Project        = "bote"
	Stack          = "test"
)

// Resource is one registration.
type Resource struct {
	Type     string `json:"type"`
	Name     string `json:"name"`
	Parent   string `json:"parent,omitempty"` // "type::name" of the parent, "" for the stack
	Provider string `json:"provider,omitempty"`
	Protect  bool   `json:"protect,omitempty"`
	// Aliases are the names it was registered under before: a renamed
	// child keeps its URN through them.
	Aliases []string       `json:"aliases,omitempty"`
	Inputs  map[string]any `json:"inputs,omitempty"`
	// DependsOn are the "type::name" of the resources it waits for
	// (explicit dependsOn and inputs from other resources).
	DependsOn []string       `json:"-"`
	ID        string         `json:"-"`
	Outputs   map[string]any `json:"-"`
	Custom    bool           `json:"-"`
}

// Key is "type::name".
func (r Resource) Key() string { return r.Type + "::" + r.Name }

// BaseType drops the API version from a versioned azure-native type token
// ("azure-native:app/v20240301:ContainerApp" -> "azure-native:app:ContainerApp").
func BaseType(token string) string {
	parts := strings.Split(token, ":")
	if len(parts) == 3 {
		if i := strings.Index(parts[1], "/"); i > 0 {
			parts[1] = parts[1][:i]
		}
	}
	return strings.Join(parts, ":")
}

// Recording is everything a run registered.
type Recording struct {
	mu        sync.Mutex
	cloud     azurecloud.Cloud
	resources []Resource
}

// Resources returns the registrations sorted by type, then name.
func (rec *Recording) Resources() []Resource {
	rec.mu.Lock()
	defer rec.mu.Unlock()
	out := append([]Resource(nil), rec.resources...)
	sort.Slice(out, func(i, j int) bool { return out[i].Key() < out[j].Key() })
	return out
}

// Keys returns the sorted "type::name" of every registration.
func (rec *Recording) Keys() []string {
	var keys []string
	for _, r := range rec.Resources() {
		keys = append(keys, r.Key())
	}
	return keys
}

// OfType returns the registrations of one type token.
func (rec *Recording) OfType(token string) []Resource {
	var out []Resource
	for _, r := range rec.Resources() {
		if r.Type == token {
			out = append(out, r)
		}
	}
	return out
}

// ByID finds the registration whose id is id.
func (rec *Recording) ByID(id string) (Resource, bool) {
	for _, r := range rec.Resources() {
		if r.ID == id {
			return r, true
		}
	}
	return Resource{}, false
}

// JSON renders the recording for a golden file.
func (rec *Recording) JSON() []byte { return JSON(rec.Resources()) }

// JSON renders resources for a golden file.
func JSON(resources []Resource) []byte {
	b, err := json.MarshalIndent(resources, "", "  ")
	if err != nil {
		panic(err) // only plain JSON values are recorded
	}
	return append(b, '\n')
}

// Subtree returns the resource keyed key ("type::name") and everything
// registered below it, sorted.
func (rec *Recording) Subtree(key string) []Resource {
	all := rec.Resources()
	in := map[string]bool{key: true}
	for changed := true; changed; {
		changed = false
		for _, r := range all {
			if !in[r.Key()] && in[r.Parent] {
				in[r.Key()], changed = true, true
			}
		}
	}
	var out []Resource
	for _, r := range all {
		if in[r.Key()] {
			out = append(out, r)
		}
	}
	return out
}

// Mocks implements pulumi.MockResourceMonitor for one cloud.
type Mocks struct{ rec *Recording }

// NewMocks returns mocks fabricating endpoints of c.
func NewMocks(c azurecloud.Cloud) (*Mocks, *Recording) {
	rec := &Recording{cloud: c}
	return &Mocks{rec: rec}, rec
}

// Call fakes the invokes the components use.
func (m *Mocks) Call(args pulumi.MockCallArgs) (resource.PropertyMap, error) {
	str := func(k string) string {
		if v, ok := args.Args[resource.PropertyKey(k)]; ok && v.IsString() {
			return v.StringValue()
		}
		return ""
	}
	switch args.Token {
	case "azure-native:authorization:getClientConfig":
		return resource.NewPropertyMapFromMap(map[string]any{
			"clientId": "00000000-0000-0000-0000-0000000000cc", "objectId": "00000000-0000-0000-0000-0000000000dd",
			"subscriptionId": SubscriptionID, "tenantId": TenantID,
		}), nil
	case "azure-native:storage:listStorageAccountKeys":
		return resource.NewPropertyMapFromMap(map[string]any{
			"keys": []any{map[string]any{"keyName": "key1", "permissions": "FULL", "value": "mock-key-of-" + str("accountName")}},
		}), nil
	case "azure-native:relay:listHybridConnectionKeys":
		rule := str("authorizationRuleName")
		return resource.NewPropertyMapFromMap(map[string]any{
			"keyName": rule, "primaryKey": "mock-relay-key-" + rule, "secondaryKey": "mock-relay-key2-" + rule,
			"primaryConnectionString": fmt.Sprintf("Endpoint=sb://%s.%s/;SharedAccessKeyName=%s;SharedAccessKey=mock-relay-key-%s;EntityPath=%s",
				str("namespaceName"), m.rec.cloud.Suffixes.ServiceBus, rule, rule, str("hybridConnectionName")),
		}), nil
	case "azure-native:operationalinsights:getSharedKeys":
		return resource.NewPropertyMapFromMap(map[string]any{"primarySharedKey": "mock-workspace-key", "secondarySharedKey": "mock-workspace-key2"}), nil
	}
	return nil, fmt.Errorf("infratest: no mock for invoke %s", args.Token)
}

// NewResource records a registration and fabricates its id and outputs.
func (m *Mocks) NewResource(args pulumi.MockResourceArgs) (string, resource.PropertyMap, error) {
	// size: one case per mocked resource type.
	c := m.rec.cloud
	in := args.Inputs
	str := func(k string) string {
		if v, ok := in[resource.PropertyKey(k)]; ok && v.IsString() {
			return v.StringValue()
		}
		return ""
	}
	// The physical name: the most specific name input, else the logical
	// name. Ids embed the logical name, which is unique per type, so two
	// queues called alike in different namespaces still differ.
	physical := args.Name
	for _, k := range []string{"roleAssignmentName", "authorizationRuleName", "scopeMapName", "tokenName", "blobName",
		"secretName", "queueName", "tableName", "containerName", "hybridConnectionName", "containerAppName",
		"environmentName", "workspaceName", "resourceName", "vaultName", "registryName", "accountName", "namespaceName", "name"} {
		if v := str(k); v != "" {
			physical = v
			break
		}
	}
	if args.TypeToken == "azure-native:resources:ResourceGroup" && str("resourceGroupName") != "" {
		physical = str("resourceGroupName")
	}
	id := fmt.Sprintf("/subscriptions/%s/resourceGroups/%s/providers/%s/%s", SubscriptionID, str("resourceGroupName"),
		strings.ReplaceAll(strings.TrimPrefix(args.TypeToken, "azure-native:"), ":", "/"), args.Name)
	out := in.Copy()
	set := func(k string, v any) { out[resource.PropertyKey(k)] = resource.NewPropertyValue(v) }
	set("name", physical)
	switch BaseType(args.TypeToken) {
	case "pulumi:providers:azure-native":
		id = "provider-" + args.Name
	case "pulumi:pulumi:StackReference":
		// A stack reading its own last outputs: a first deployment has none.
		id = str("name")
		set("outputs", map[string]any{})
	case "azure-native:resources:ResourceGroup":
		id = fmt.Sprintf("/subscriptions/%s/resourceGroups/%s", SubscriptionID, physical)
	case "azure-native:servicebus:Namespace", "azure-native:relay:Namespace":
		set("serviceBusEndpoint", fmt.Sprintf("https://%s.%s:443/", physical, c.Suffixes.ServiceBus))
	case "azure-native:storage:StorageAccount":
		ep := func(svc string) string { return fmt.Sprintf("https://%s.%s.%s/", physical, svc, c.Suffixes.Storage) }
		set("primaryEndpoints", map[string]any{"blob": ep("blob"), "queue": ep("queue"), "table": ep("table"), "file": ep("file")})
	case "azure-native:keyvault:Vault":
		props := map[string]any{}
		if p, ok := in["properties"]; ok && p.IsObject() {
			props = p.ObjectValue().Mappable()
		}
		props["vaultUri"] = fmt.Sprintf("https://%s.%s/", physical, c.Suffixes.KeyVault)
		set("properties", props)
	case "azure-native:keyvault:Secret":
		uri := fmt.Sprintf("https://%s.%s/secrets/%s", str("vaultName"), c.Suffixes.KeyVault, physical)
		set("properties", map[string]any{"secretUri": uri, "secretUriWithVersion": uri + "/0123456789abcdef"})
	case "azure-native:containerregistry:Registry":
		set("loginServer", physical+"."+c.Suffixes.ContainerRegistry)
	case "azure-native:operationalinsights:Workspace":
		set("customerId", uuid.NewSHA1(uuid.NameSpaceOID, []byte(physical)).String())
	case "azure-native:insights:Component":
		set("connectionString", "InstrumentationKey="+uuid.NewSHA1(uuid.NameSpaceOID, []byte(physical)).String())
	case "azure-native:managedidentity:UserAssignedIdentity":
		set("principalId", uuid.NewSHA1(uuid.NameSpaceOID, []byte("principal/"+physical)).String())
		set("clientId", uuid.NewSHA1(uuid.NameSpaceOID, []byte("client/"+physical)).String())
		set("tenantId", TenantID)
	case "azure-native:app:ManagedEnvironment":
		set("defaultDomain", "mockenv.location.azurecontainerapps.io")
	case "azure-native:web:WebApp":
		set("defaultHostName", physical+"."+c.Suffixes.AppService)
	}
	r := Resource{
		Type: args.TypeToken, Name: args.Name, ID: id, Custom: args.Custom,
		Inputs: plain(in), Outputs: plain(out),
	}
	if args.RegisterRPC != nil {
		r.Parent = urnKey(args.RegisterRPC.GetParent())
		r.Protect = args.RegisterRPC.GetProtect()
		for _, dep := range args.RegisterRPC.GetDependencies() {
			r.DependsOn = append(r.DependsOn, urnKey(dep))
		}
		sort.Strings(r.DependsOn)
		for _, a := range args.RegisterRPC.GetAliases() {
			// Aliases of the type alone are the provider's own (every
			// API version of an azure-native type): not a rename here.
			if name := a.GetSpec().GetName(); name != "" {
				r.Aliases = append(r.Aliases, name)
			}
		}
	}
	if args.Provider != "" {
		// A provider reference is "<urn>::<id>".
		if i := strings.LastIndex(args.Provider, "::"); i > 0 {
			r.Provider = urnKey(args.Provider[:i])
		}
	}
	m.rec.mu.Lock()
	m.rec.resources = append(m.rec.resources, r)
	m.rec.mu.Unlock()
	return id, out, nil
}

// urnKey turns urn:pulumi:stack::project::a$b::name into "b::name"; the
// root stack becomes "".
func urnKey(urn string) string {
	if urn == "" {
		return ""
	}
	parts := strings.Split(urn, "::")
	if len(parts) < 4 {
		return urn
	}
	typ := parts[len(parts)-2]
	if i := strings.LastIndex(typ, "$"); i >= 0 {
		typ = typ[i+1:]
	}
	if typ == "pulumi:pulumi:Stack" {
		return ""
	}
	return typ + "::" + parts[len(parts)-1]
}

// plain converts a property map to JSON-able values; secrets render as
// "[secret]" and unknowns as "[unknown]" so goldens never hold secret
// values.
func plain(pm resource.PropertyMap) map[string]any {
	out := make(map[string]any, len(pm))
	for k, v := range pm {
		if k == "__defaults" {
			continue
		}
		out[string(k)] = plainValue(v)
	}
	return out
}

func plainValue(v resource.PropertyValue) any {
	switch {
	case v.IsSecret():
		return "[secret]"
	case v.IsComputed():
		return "[unknown]"
	case v.IsOutput():
		o := v.OutputValue()
		if o.Secret {
			return "[secret]"
		}
		if !o.Known {
			return "[unknown]"
		}
		return plainValue(o.Element)
	case v.IsNull():
		return nil
	case v.IsBool():
		return v.BoolValue()
	case v.IsNumber():
		return v.NumberValue()
	case v.IsString():
		return v.StringValue()
	case v.IsArray():
		arr := make([]any, 0, len(v.ArrayValue()))
		for _, e := range v.ArrayValue() {
			arr = append(arr, plainValue(e))
		}
		return arr
	case v.IsObject():
		return plain(v.ObjectValue())
	case v.IsAsset():
		return map[string]any{"asset": v.AssetValue().Text}
	case v.IsResourceReference():
		return urnKey(string(v.ResourceReferenceValue().URN))
	}
	return fmt.Sprint(v)
}

// Run runs program under mocks for cloud, with config (keys without the
// project prefix, values as their YAML/JSON text), and returns what it
// registered.
func Run(t testing.TB, cloudName string, config map[string]string, program pulumi.RunFunc, opts ...pulumi.RunOption) (*Recording, error) {
	t.Helper()
	c, err := azurecloud.Lookup(cloudName)
	require.NoError(t, err)
	cfg := map[string]string{}
	for k, v := range config {
		if !strings.Contains(k, ":") {
			k = Project + ":" + k
		}
		cfg[k] = v
	}
	raw, err := json.Marshal(cfg)
	require.NoError(t, err)
	t.Setenv(pulumi.EnvConfig, string(raw))
	mocks, rec := NewMocks(c)
	err = pulumi.RunErr(program, append([]pulumi.RunOption{pulumi.WithMocks(Project, Stack, mocks)}, opts...)...)
	return rec, err
}

// Golden compares got with testdata/<name>, rewriting it under -update.
func Golden(t testing.TB, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		require.NoError(t, os.MkdirAll(filepath.Dir(path), 0o755))
		require.NoError(t, os.WriteFile(path, got, 0o644))
		return
	}
	want, err := os.ReadFile(path)
	require.NoError(t, err, "missing golden file; run go test -update")
	if !bytes.Equal(want, got) {
		require.Equal(t, string(want), string(got), "golden %s differs; if intended, run go test -update", path)
	}
}

// Finding is a value that names a forbidden host.
type Finding struct {
	Where string // "type::name inputs.path" or "output name"
	Value string
}

// FindHosts returns every string reachable from the recording's inputs and
// outputs, and from extra (stack outputs), that contains one of markers.
func (rec *Recording) FindHosts(markers []string, extra map[string]any) []Finding {
	var found []Finding
	var walk func(where string, v any)
	walk = func(where string, v any) {
		switch v := v.(type) {
		case string:
			lv := strings.ToLower(v)
			for _, m := range markers {
				if strings.Contains(lv, m) {
					found = append(found, Finding{where, v})
					return
				}
			}
		case map[string]any:
			for k, e := range v {
				walk(where+"."+k, e)
			}
		case []any:
			for i, e := range v {
				walk(fmt.Sprintf("%s[%d]", where, i), e)
			}
		}
	}
	for _, r := range rec.Resources() {
		walk(r.Key()+" inputs", r.Inputs)
		walk(r.Key()+" outputs", r.Outputs)
	}
	for k, v := range extra {
		walk("stack output "+k, v)
	}
	sort.Slice(found, func(i, j int) bool { return found[i].Where < found[j].Where })
	return found
}
