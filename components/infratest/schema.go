package infratest

import (
	_ "embed"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"sort"
	"strings"
	"testing"
)

// The azure-native provider's schema, trimmed to the types the stacks
// register (testdata/azure-native-schema.json, written by ./schemagen from
// the provider's SDK of the same version), and the properties whose change
// makes the provider replace a resource (testdata/azure-native-replace.json,
// kept by hand, each entry with its source). See docs/infrastructure.md,
// "Conformance with the provider's schema".
var (
	//go:embed testdata/azure-native-schema.json
	schemaJSON []byte
	//go:embed testdata/azure-native-replace.json
	replaceJSON []byte
)

// SchemaType is a property's type in the trimmed schema.
type SchemaType struct {
	// Type is string, number, integer, boolean, array, object, asset or any.
	Type                 string      `json:"type"`
	Ref                  string      `json:"ref,omitempty"`
	Items                *SchemaType `json:"items,omitempty"`
	AdditionalProperties *SchemaType `json:"additionalProperties,omitempty"`
	Enum                 []string    `json:"enum,omitempty"`
	// StrictEnum: only the enum values are accepted (the SDK types the
	// property as the enum alone, not "string | enum").
	StrictEnum bool `json:"strictEnum,omitempty"`
}

// SchemaObject is a resource's inputs or a nested input type.
type SchemaObject struct {
	APIVersion string                 `json:"apiVersion,omitempty"`
	Properties map[string]*SchemaType `json:"properties"`
	Required   []string               `json:"required,omitempty"`
	Defaults   map[string]any         `json:"defaults,omitempty"`
	// ReplaceOnChanges are the top-level inputs whose change replaces the
	// resource (from azure-native-replace.json).
	ReplaceOnChanges []string `json:"-"`
}

// ProviderSchema is the trimmed azure-native schema.
type ProviderSchema struct {
	Source    map[string]string        `json:"source"`
	Resources map[string]*SchemaObject `json:"resources"`
	Types     map[string]*SchemaObject `json:"types"`
}

type replaceFile struct {
	Resources map[string]struct {
		ReplaceOnChanges []string `json:"replaceOnChanges"`
	} `json:"resources"`
}

// Schema loads the trimmed schema with the replacement rules.
func Schema(t testing.TB) *ProviderSchema {
	t.Helper()
	var s ProviderSchema
	if err := json.Unmarshal(schemaJSON, &s); err != nil {
		t.Fatalf("cannot read the trimmed schema: %v", err)
	}
	var r replaceFile
	if err := json.Unmarshal(replaceJSON, &r); err != nil {
		t.Fatalf("cannot read the replacement rules: %v", err)
	}
	for tok, res := range s.Resources {
		rr, ok := r.Resources[tok]
		if !ok {
			t.Fatalf("azure-native-replace.json has no entry for %s", tok)
		}
		for _, p := range rr.ReplaceOnChanges {
			if _, known := res.Properties[p]; !known {
				t.Fatalf("azure-native-replace.json: %s has no input %q", tok, p)
			}
		}
		res.ReplaceOnChanges = rr.ReplaceOnChanges
	}
	return &s
}

// Conform checks every azure-native resource in rec against the schema of
// its type token (its API version): every input is a property of the type,
// nested as the schema nests it, of its type, enum values among the enum's,
// required inputs present, and the defaults the SDK constructors set are
// set. It returns the violations, sorted.
func (s *ProviderSchema) Conform(rec *Recording) []string {
	var bad []string
	for _, r := range rec.Resources() {
		if !r.Custom || !strings.HasPrefix(r.Type, "azure-native:") {
			continue
		}
		res, ok := s.Resources[r.Type]
		if !ok {
			bad = append(bad, fmt.Sprintf("%s: type %s is not in the trimmed schema (add it to schemagen's Resources and run make azure-schema)", r.Key(), r.Type))
			continue
		}
		bad = append(bad, s.object(r.Key()+" inputs", res, r.Inputs, module(r.Type))...)
	}
	sort.Strings(bad)
	return bad
}

// module returns "app/v20240301" for "azure-native:app/v20240301:ContainerApp".
func module(token string) string {
	parts := strings.Split(token, ":")
	if len(parts) != 3 {
		return ""
	}
	return parts[1]
}

func (s *ProviderSchema) object(where string, obj *SchemaObject, v map[string]any, mod string) []string {
	var bad []string
	for _, req := range obj.Required {
		if _, ok := v[req]; !ok {
			bad = append(bad, fmt.Sprintf("%s: required input %q is missing", where, req))
		}
	}
	for k, want := range obj.Defaults {
		if _, ok := v[k]; !ok {
			bad = append(bad, fmt.Sprintf("%s.%s: unset, but the SDK constructor sets its default %v", where, k, want))
		}
	}
	for _, k := range slices.Sorted(maps.Keys(v)) {
		p, ok := obj.Properties[k]
		if !ok {
			bad = append(bad, fmt.Sprintf("%s.%s: not an input of the schema (%s)", where, k, strings.Join(slices.Sorted(maps.Keys(obj.Properties)), ", ")))
			continue
		}
		bad = append(bad, s.value(where+"."+k, p, v[k], mod)...)
	}
	return bad
}

func (s *ProviderSchema) value(where string, t *SchemaType, v any, mod string) []string {
	if v == nil || placeholder(v) {
		return nil
	}
	kind := func(want string) []string {
		return []string{fmt.Sprintf("%s: %T %v is not a %s", where, v, v, want)}
	}
	switch t.Type {
	case "any":
		return nil
	case "string":
		str, ok := v.(string)
		if !ok {
			return kind("string")
		}
		if len(t.Enum) > 0 && !slices.Contains(t.Enum, str) {
			if t.StrictEnum || !slices.ContainsFunc(t.Enum, func(e string) bool { return strings.EqualFold(e, str) }) {
				return []string{fmt.Sprintf("%s: %q is not one of %v", where, str, t.Enum)}
			}
		}
	case "number", "integer":
		if _, ok := v.(float64); !ok {
			return kind("number")
		}
	case "boolean":
		if _, ok := v.(bool); !ok {
			return kind("boolean")
		}
	case "asset":
		if m, ok := v.(map[string]any); !ok || m["asset"] == nil {
			return kind("asset")
		}
	case "array":
		arr, ok := v.([]any)
		if !ok {
			return kind("array")
		}
		var bad []string
		for i, e := range arr {
			bad = append(bad, s.value(fmt.Sprintf("%s[%d]", where, i), t.Items, e, mod)...)
		}
		return bad
	case "object":
		m, ok := v.(map[string]any)
		if !ok {
			return kind("object")
		}
		if t.Ref != "" {
			obj, ok := s.Types[t.Ref]
			if !ok {
				return []string{fmt.Sprintf("%s: type %s is not in the trimmed schema", where, t.Ref)}
			}
			return s.object(where, obj, m, mod)
		}
		var bad []string
		for k, e := range m {
			if t.AdditionalProperties != nil {
				bad = append(bad, s.value(where+"."+k, t.AdditionalProperties, e, mod)...)
			}
		}
		return bad
	default:
		return []string{fmt.Sprintf("%s: the schema's type %q is not understood", where, t.Type)}
	}
	return nil
}

// placeholder reports the mocks' renderings of secret and unknown values.
func placeholder(v any) bool { return v == "[secret]" || v == "[unknown]" }

// Change is what `pulumi up` would do to one resource going from one
// recording to the next.
type Change struct {
	Key string
	// Op is "create", "delete", "update" or "replace".
	Op string
	// Properties are the changed top-level inputs; for a replacement, those
	// that force it.
	Properties []string
}

func (c Change) String() string {
	if len(c.Properties) == 0 {
		return c.Op + " " + c.Key
	}
	return c.Op + " " + c.Key + " (" + strings.Join(c.Properties, ", ") + ")"
}

// Plan lists what an update from before to after does to each resource,
// deciding update versus replace from the schema's replace-on-change
// inputs, as the provider does, not from the mocks (which update anything
// in place). Unchanged resources are left out; the list is sorted by key.
func (s *ProviderSchema) Plan(before, after *Recording) []Change {
	old := map[string]Resource{}
	for _, r := range before.Resources() {
		old[r.Key()] = r
	}
	var out []Change
	for _, r := range after.Resources() {
		o, existed := old[r.Key()]
		delete(old, r.Key())
		if !existed {
			out = append(out, Change{Key: r.Key(), Op: "create"})
			continue
		}
		var changed []string
		for _, k := range slices.Sorted(maps.Keys(union(o.Inputs, r.Inputs))) {
			a, _ := json.Marshal(o.Inputs[k])
			b, _ := json.Marshal(r.Inputs[k])
			if string(a) != string(b) {
				changed = append(changed, k)
			}
		}
		if len(changed) == 0 {
			continue
		}
		var replaceOn []string
		if res, ok := s.Resources[r.Type]; ok {
			for _, k := range changed {
				if slices.Contains(res.ReplaceOnChanges, k) {
					replaceOn = append(replaceOn, k)
				}
			}
		}
		if len(replaceOn) > 0 {
			out = append(out, Change{Key: r.Key(), Op: "replace", Properties: replaceOn})
		} else {
			out = append(out, Change{Key: r.Key(), Op: "update", Properties: changed})
		}
	}
	for _, k := range slices.Sorted(maps.Keys(old)) {
		out = append(out, Change{Key: k, Op: "delete"})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Key < out[j].Key })
	return out
}

func union(a, b map[string]any) map[string]any {
	out := map[string]any{}
	for k, v := range a {
		out[k] = v
	}
	for k, v := range b {
		out[k] = v
	}
	return out
}
