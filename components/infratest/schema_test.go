package infratest

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func record(rs ...Resource) *Recording {
	rec := &Recording{}
	for _, r := range rs {
		r.Custom = true
		rec.resources = append(rec.resources, r)
	}
	return rec
}

// The check finds what the real provider would refuse or do differently.
func TestConformFindsViolations(t *testing.T) {
	s := Schema(t)
	ok := Resource{Type: "azure-native:storage:Blob", Name: "b", Inputs: map[string]any{
		"accountName": "a", "containerName": "c", "resourceGroupName": "rg", "type": "Block",
		"source": map[string]any{"asset": "x"},
	}}
	require.Empty(t, s.Conform(record(ok)))

	bad := func(mutate func(in map[string]any)) []string {
		in := map[string]any{}
		for k, v := range ok.Inputs {
			in[k] = v
		}
		mutate(in)
		return s.Conform(record(Resource{Type: ok.Type, Name: "b", Inputs: in}))
	}
	assert.Contains(t, bad(func(in map[string]any) { in["sourceUri"] = "x" })[0], `inputs.sourceUri: not an input of the schema`)
	assert.Contains(t, bad(func(in map[string]any) { in["type"] = "Page" })[0], `inputs.type: "Page" is not one of [Append Block]`)
	assert.Contains(t, bad(func(in map[string]any) { delete(in, "containerName") })[0], `required input "containerName" is missing`)
	assert.Contains(t, bad(func(in map[string]any) { delete(in, "type") })[0], `inputs.type: unset, but the SDK constructor sets its default Block`)
	assert.Contains(t, bad(func(in map[string]any) { in["metadata"] = "x" })[0], `inputs.metadata: string x is not a object`)

	nested := s.Conform(record(Resource{Type: "azure-native:app/v20240301:ContainerApp", Name: "ca", Inputs: map[string]any{
		"resourceGroupName": "rg",
		"configuration":     map[string]any{"activeRevisionsMode": "Single", "secrets": []any{map[string]any{"name": "s", "keyVaultURL": "https://v"}}},
	}}))
	require.Len(t, nested, 1)
	assert.Contains(t, nested[0], "inputs.configuration.secrets[0].keyVaultURL: not an input of the schema")

	unknown := s.Conform(record(Resource{Type: "azure-native:storage:FileShare", Name: "f"}))
	require.Len(t, unknown, 1)
	assert.Contains(t, unknown[0], "is not in the trimmed schema")
}

// A changed replace-on-change input replaces; others update in place.
func TestPlanDecidesReplaceFromTheSchema(t *testing.T) {
	s := Schema(t)
	blob := func(name, source string) Resource {
		return Resource{Type: "azure-native:storage:Blob", Name: name, Inputs: map[string]any{"source": map[string]any{"asset": source}, "contentType": "a"}}
	}
	before := record(blob("b", "v1"), blob("gone", "x"))
	after := record(blob("b", "v2"), blob("new", "x"))
	assert.Equal(t, []Change{
		{Key: "azure-native:storage:Blob::b", Op: "replace", Properties: []string{"source"}},
		{Key: "azure-native:storage:Blob::gone", Op: "delete"},
		{Key: "azure-native:storage:Blob::new", Op: "create"},
	}, s.Plan(before, after))
	ct := blob("b", "v1")
	ct.Inputs["contentType"] = "b"
	assert.Equal(t, []Change{{Key: "azure-native:storage:Blob::b", Op: "update", Properties: []string{"contentType"}}}, s.Plan(record(blob("b", "v1")), record(ct)))
}
