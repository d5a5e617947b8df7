package policy_test

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	tfjson "github.com/hashicorp/terraform-json"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/botehq/platform/runtime/ids"
	"github.com/botehq/platform/runtime/planrender"
	"github.com/botehq/platform/runtime/policy"
	"github.com/botehq/platform/runtime/policystore"
	"github.com/botehq/platform/runtime/runs"
)

// keptPlan reads a plan terraform made (testdata/plans, regen.sh) and keeps
// of it what the server keeps and policies see (planrender.Keep).
func keptPlan(t testing.TB, name string) []byte {
	t.Helper()
	dir := filepath.Join("testdata", "plans", name)
	raw, err := os.ReadFile(filepath.Join(dir, "plan.json"))
	if os.IsNotExist(err) {
		f, ferr := os.Open(filepath.Join(dir, "plan.json.gz"))
		require.NoError(t, ferr)
		defer f.Close()
		zr, zerr := gzip.NewReader(f)
		require.NoError(t, zerr)
		raw, err = io.ReadAll(zr)
	}
	require.NoError(t, err)
	var p tfjson.Plan
	require.NoError(t, json.Unmarshal(raw, &p))
	out, err := json.Marshal(planrender.Keep(&p))
	require.NoError(t, err)
	return out
}

func example(t testing.TB, name string) string {
	t.Helper()
	src, err := os.ReadFile(filepath.Join("..", "..", "examples", "policies", name+".rego"))
	require.NoError(t, err)
	return string(src)
}

// retype changes the type of the plan's first resource change, to try a
// type restriction on a real plan (terraform here has only its built-in
// provider).
func retype(t *testing.T, plan []byte, typ string) []byte {
	var p map[string]any
	require.NoError(t, json.Unmarshal(plan, &p))
	p["resource_changes"].([]any)[0].(map[string]any)["type"] = typ
	out, err := json.Marshal(p)
	require.NoError(t, err)
	return out
}

// TestExamplePolicies runs the policies of examples/policies against real
// plans.
func TestExamplePolicies(t *testing.T) {
	ctx := context.Background()
	prod := runs.Workspace{Tenant: "contoso", Name: "app", AgentLabels: map[string]string{"env": "prod"}}
	dev := runs.Workspace{Tenant: "contoso", Name: "app", AgentLabels: map[string]string{"env": "dev"}}
	apply := runs.Run{ID: "run-0000000000000000", Tenant: "contoso", Workspace: "app", Operation: runs.OpApply}
	destroy := apply
	destroy.Operation = runs.OpDestroy
	tagged, untagged := keptPlan(t, "tagged"), keptPlan(t, "untagged-destroy")
	for _, tc := range []struct {
		name, policy string
		ws           runs.Workspace
		run          runs.Run
		plan         []byte
		deny, warn   []string
	}{
		{name: "no destroy: creates in prod", policy: "no-destroy-in-production", ws: prod, run: apply, plan: tagged},
		{name: "no destroy: destroys in dev", policy: "no-destroy-in-production", ws: dev, run: apply, plan: untagged},
		{name: "no destroy: destroys in prod", policy: "no-destroy-in-production", ws: prod, run: apply, plan: untagged, deny: []string{
			"terraform_data.old would be destroyed (delete) in production workspace app",
			"terraform_data.replaced would be destroyed (delete, create) in production workspace app",
		}},
		{name: "no destroy: destroy run in a workspace named prod", policy: "no-destroy-in-production", ws: runs.Workspace{Tenant: "contoso", Name: "prod"}, run: destroy, plan: tagged,
			deny: []string{"destroy runs are not allowed in production workspace prod"}},
		{name: "tags: all tagged", policy: "require-tags", ws: dev, run: apply, plan: tagged,
			warn: []string{"terraform_data.db has no environment tag"}},
		{name: "tags: missing", policy: "require-tags", ws: dev, run: apply, plan: untagged, deny: []string{
			"terraform_data.keep is missing the tags cost-center",
			"terraform_data.replaced is missing the tags cost-center, owner",
		}, warn: []string{"terraform_data.new has no environment tag", "terraform_data.replaced has no environment tag"}},
		{name: "types: allowed", policy: "restrict-resource-types", ws: dev, run: apply, plan: tagged},
		{name: "types: not allowed", policy: "restrict-resource-types", ws: dev, run: apply, plan: retype(t, tagged, "azurerm_kubernetes_cluster"), deny: []string{
			"terraform_data.app: resource type azurerm_kubernetes_cluster is not allowed here (allowed: azurerm_key_vault, azurerm_resource_group, azurerm_storage_account, azurerm_storage_container, terraform_data)",
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := policy.Compile(ctx, tc.policy, example(t, tc.policy))
			require.NoError(t, err)
			in, err := policy.Input(tc.run, tc.ws, tc.plan)
			require.NoError(t, err)
			v, err := c.Eval(ctx, in)
			require.NoError(t, err)
			assert.Equal(t, tc.deny, nilIfEmpty(v.Deny), "deny")
			assert.Equal(t, tc.warn, nilIfEmpty(v.Warn), "warn")
		})
	}
}

func nilIfEmpty(s []string) []string {
	if len(s) == 0 {
		return nil
	}
	return s
}

// TestCompileRefusesBadPolicies: a policy that would fail at evaluation
// time, or do what a policy must not, is refused at upload with the
// compiler's message.
func TestCompileRefusesBadPolicies(t *testing.T) {
	for _, tc := range []struct{ name, src, want string }{
		{"syntax", "package p\ndeny contains msg if {\n", "p.rego:"},
		{"no deny rule", "package p\nallow := true\n", "no deny rule"},
		{"unsafe variable", "package p\ndeny contains msg if { x == 1; msg := \"m\" }\n", "var x is unsafe"},
		{"undefined function", "package p\ndeny contains msg if { msg := nosuch(1) }\n", "undefined function nosuch"},
		{"http.send", "package p\ndeny contains msg if { r := http.send({\"method\": \"get\", \"url\": \"http://169.254.169.254/\"}); msg := r.body }\n", "undefined function http.send"},
		{"opa.runtime", "package p\ndeny contains msg if { msg := opa.runtime().env.HOME }\n", "undefined function opa.runtime"},
		{"rego v0 syntax", "package p\ndeny[msg] { msg := \"x\" }\n", "p.rego:"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := policy.Compile(context.Background(), "p", tc.src)
			var ce *policy.CompileError
			require.ErrorAs(t, err, &ce)
			assert.Contains(t, err.Error(), tc.want)
		})
	}
}

func TestChecker(t *testing.T) {
	ctx := context.Background()
	store := policystore.NewMemory()
	ws := runs.Workspace{Tenant: "contoso", Name: "app", AgentLabels: map[string]string{"env": "prod"}}
	put := func(p policystore.Policy) {
		p.Tenant = "contoso"
		_, err := policy.Put(ctx, store, p)
		require.NoError(t, err)
	}
	put(policystore.Policy{Name: "no-destroy", Enforcement: runs.Mandatory, Source: example(t, "no-destroy-in-production")})
	put(policystore.Policy{Name: "tags", Enforcement: runs.Advisory, Source: example(t, "require-tags")})
	put(policystore.Policy{Name: "tags", Enforcement: runs.MandatoryOverride, Source: example(t, "require-tags")}) // version 2
	put(policystore.Policy{Name: "other-ws", Workspace: "other", Enforcement: runs.Mandatory, Source: "package x\ndeny contains \"always\"\n"})
	put(policystore.Policy{Name: "gone", Enforcement: runs.Mandatory, Source: "package y\ndeny contains \"always\"\n"})
	_, err := store.Delete(ctx, "contoso", "gone", "bob")
	require.NoError(t, err)
	_, err = policy.Put(ctx, store, policystore.Policy{Tenant: "contoso", Name: "bad", Enforcement: runs.Mandatory, Source: "package z\n"})
	require.Error(t, err, "a policy without deny is not stored")

	c, err := policy.NewChecker(policy.CheckerConfig{Store: store, Workspaces: fixedWorkspace(ws), Now: func() time.Time { return time.Unix(100, 0) }})
	require.NoError(t, err)
	run := runs.Run{ID: "run-0000000000000000", Tenant: "contoso", Workspace: "app", Operation: runs.OpApply}
	got, err := c.Check(ctx, run, keptPlan(t, "untagged-destroy"))
	require.NoError(t, err)
	require.Len(t, got.Results, 2, "other-ws applies elsewhere, gone is deleted, bad was refused: %+v", got.Results)
	assert.Equal(t, "no-destroy", got.Results[0].Policy)
	assert.False(t, got.Results[0].Passed)
	assert.Equal(t, runs.Mandatory, got.Results[0].Enforcement)
	assert.Equal(t, "tags", got.Results[1].Policy)
	assert.Equal(t, 2, got.Results[1].Version)
	assert.Equal(t, runs.MandatoryOverride, got.Results[1].Enforcement)
	assert.Len(t, got.Results[1].Messages, 2)
	assert.True(t, got.Blocks())

	// No plan JSON: every policy fails with the reason.
	got, err = c.Check(ctx, run, nil)
	require.NoError(t, err)
	for _, r := range got.Results {
		assert.False(t, r.Passed)
		assert.Contains(t, r.Error, "plan's JSON is not available")
	}

	// A workspace without policies: nothing to record.
	got, err = c.Check(ctx, runs.Run{ID: run.ID, Tenant: "fabrikam", Workspace: "app"}, keptPlan(t, "tagged"))
	require.NoError(t, err)
	assert.Nil(t, got)
}

// TestEvaluationErrorsFailThePolicy: a runtime error (a builtin given a
// wrong type, conflicting values) fails the policy instead of passing it.
func TestEvaluationErrorsFailThePolicy(t *testing.T) {
	ctx := context.Background()
	store := policystore.NewMemory()
	_, err := policy.Put(ctx, store, policystore.Policy{Tenant: "contoso", Name: "buggy", Enforcement: runs.Mandatory,
		Source: "package b\ndeny contains msg if { some rc in input.plan.resource_changes; msg := concat(\",\", rc.change.after) }\n"})
	require.NoError(t, err)
	c, err := policy.NewChecker(policy.CheckerConfig{Store: store, Workspaces: fixedWorkspace(runs.Workspace{Tenant: "contoso", Name: "app"})})
	require.NoError(t, err)
	got, err := c.Check(ctx, runs.Run{ID: "run-0000000000000000", Tenant: "contoso", Workspace: "app"}, keptPlan(t, "tagged"))
	require.NoError(t, err)
	require.Len(t, got.Results, 1)
	assert.False(t, got.Results[0].Passed)
	assert.Contains(t, got.Results[0].Error, "concat")
}

func TestStoreVersions(t *testing.T) {
	ctx := context.Background()
	s := policystore.NewMemory()
	for i, src := range []string{"package a\ndeny contains \"1\"\n", "package a\ndeny contains \"2\"\n"} {
		p, err := policy.Put(ctx, s, policystore.Policy{Tenant: "contoso", Name: "a", Enforcement: runs.Advisory, Source: src, CreatedBy: "bob"})
		require.NoError(t, err)
		assert.Equal(t, i+1, p.Version)
	}
	d, err := s.Delete(ctx, "contoso", "a", "alice")
	require.NoError(t, err)
	assert.Equal(t, 3, d.Version)
	_, err = s.Get(ctx, "contoso", "a")
	require.ErrorIs(t, err, policystore.ErrNotFound)
	vs, err := s.Versions(ctx, "contoso", "a")
	require.NoError(t, err)
	require.Len(t, vs, 3)
	assert.True(t, vs[2].Deleted)
	p, err := policy.Put(ctx, s, policystore.Policy{Tenant: "contoso", Name: "a", Enforcement: runs.Advisory, Source: "package a\ndeny contains \"4\"\n"})
	require.NoError(t, err)
	assert.Equal(t, 4, p.Version, "versions go on after a delete")
	for _, bad := range []policystore.Policy{
		{Tenant: "contoso", Name: "a", Enforcement: "strict", Source: "package a\ndeny contains 1\n"},
		{Tenant: "contoso", Name: "no/slash", Enforcement: runs.Advisory, Source: "package a\ndeny contains 1\n"},
		{Tenant: "contoso", Name: "a", Enforcement: runs.Advisory, Source: string(bytes.Repeat([]byte("#"), policystore.MaxSourceBytes+1))},
	} {
		_, err := policy.Put(ctx, s, bad)
		assert.Error(t, err)
	}
}

type fixedWorkspace runs.Workspace

func (w fixedWorkspace) GetWorkspace(ctx context.Context, tenant ids.TenantID, name ids.WorkspaceID) (runs.Workspace, error) {
	if tenant != w.Tenant || name != w.Name {
		return runs.Workspace{}, runs.ErrNotFound
	}
	return runs.Workspace(w), nil
}

// BenchmarkEvaluate1000Resources measures one evaluation of each example
// policy on a plan of 1,000 resources (testdata/plans/large), input
// conversion included, as the server does after a plan.
func BenchmarkEvaluate1000Resources(b *testing.B) {
	ctx := context.Background()
	plan := keptPlan(b, "large")
	ws := runs.Workspace{Tenant: "contoso", Name: "app", AgentLabels: map[string]string{"env": "prod"}}
	run := runs.Run{ID: "run-0000000000000000", Tenant: "contoso", Workspace: "app", Operation: runs.OpApply}
	b.ReportMetric(float64(len(plan)), "plan-bytes")
	b.Run("input", func(b *testing.B) {
		for b.Loop() {
			if _, err := policy.Input(run, ws, plan); err != nil {
				b.Fatal(err)
			}
		}
	})
	for _, name := range []string{"no-destroy-in-production", "require-tags", "restrict-resource-types"} {
		c, err := policy.Compile(ctx, name, example(b, name))
		require.NoError(b, err)
		in, err := policy.Input(run, ws, plan)
		require.NoError(b, err)
		b.Run(name, func(b *testing.B) {
			for b.Loop() {
				if _, err := c.Eval(ctx, in); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// TestEvaluationMemoryIsBounded: a policy whose strings double with each
// line (here to 512 MiB; forty lines would be terabytes, allocated faster
// than any timeout) is stopped once it has allocated MaxMemory and fails
// with that error, instead of taking the server's memory.
func TestEvaluationMemoryIsBounded(t *testing.T) {
	ctx := context.Background()
	src := "package bomb\ndeny contains msg if {\n\ts0 := \"" + strings.Repeat("x", 64) + "\"\n"
	for i := 1; i <= 23; i++ {
		src += fmt.Sprintf("\ts%d := concat(\"\", [s%d, s%d])\n", i, i-1, i-1)
	}
	src += "\tmsg := sprintf(\"%d bytes\", [count(s23)])\n}\n"
	store := policystore.NewMemory()
	_, err := policy.Put(ctx, store, policystore.Policy{Tenant: "contoso", Name: "bomb", Enforcement: runs.Mandatory, Source: src})
	require.NoError(t, err)
	c, err := policy.NewChecker(policy.CheckerConfig{Store: store, Workspaces: fixedWorkspace(runs.Workspace{Tenant: "contoso", Name: "app"}),
		MaxMemory: 16 << 20})
	require.NoError(t, err)
	got, err := c.Check(ctx, runs.Run{ID: "run-0000000000000000", Tenant: "contoso", Workspace: "app"}, keptPlan(t, "tagged"))
	require.NoError(t, err)
	require.Len(t, got.Results, 1)
	assert.False(t, got.Results[0].Passed)
	assert.Empty(t, got.Results[0].Messages)
	assert.Contains(t, got.Results[0].Error, "more memory than a policy may (16 MiB)")
}
