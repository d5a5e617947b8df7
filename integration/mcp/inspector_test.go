package mcp_test

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/botehq/platform/integration/procs"
)

// inspector runs the MCP Inspector's CLI (@modelcontextprotocol/
// inspector-cli, pinned in the repository's package-lock.json; `make deps`)
// against opsbot mcp on the platform: the protocol's reference client, a
// TypeScript implementation independent of the Go SDK, which needs no
// network. It returns the method's JSON answer.
func inspector(t *testing.T, args ...string) map[string]any {
	t.Helper()
	root, err := procs.RepoRoot()
	require.NoError(t, err)
	cli := filepath.Join(root, "node_modules", "@modelcontextprotocol", "inspector-cli", "build", "cli.js")
	if _, err := os.Stat(cli); err != nil {
		t.Fatalf("the MCP Inspector is not installed in %s/node_modules: run `make deps` (npm ci) in the repository root", root)
	}
	opsbot, err := exec.LookPath(filepath.Join(os.Getenv("BOTE_BIN_DIR"), "opsbot"))
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	// The opsbot command's environment (the platform's relay, key and
	// tenant) is the inspector's, which passes it on to the server.
	base, err := plat.OpsbotCmd(ctx, tenant)
	require.NoError(t, err)
	cmd := exec.CommandContext(ctx, "node", append([]string{cli, "--cli", opsbot, "mcp"}, args...)...)
	// The CLI finds its own package.json (its client name and version) by
	// a path relative to the working directory: run it from its build
	// directory. opsbot mcp needs no working directory of its own here.
	cmd.Env, cmd.Dir = base.Env, filepath.Dir(cli)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	require.NoError(t, cmd.Run(), "inspector %v:\n%s\n%s", args, stdout.String(), stderr.String())
	var out map[string]any
	require.NoError(t, json.Unmarshal(stdout.Bytes(), &out), "inspector %v printed:\n%s", args, stdout.String())
	return out
}

// TestInspectorConformance lists and calls opsbot mcp's tools, resources
// and prompts with the MCP Inspector: what it checks (the handshake,
// schemas, results against output schemas) holds for a client that is
// not ours.
func TestInspectorConformance(t *testing.T) {
	plat.Expect(t, 0, tenant, "workspaces", "create", "inspected")

	// Each call starts the inspector and opsbot (about 1.5 s): in parallel.
	t.Run("tools", func(t *testing.T) {
		t.Parallel()
		tools := inspector(t, "--method", "tools/list")["tools"].([]any)
		hints := map[string]map[string]any{}
		for _, tool := range tools {
			tm := tool.(map[string]any)
			require.NotNil(t, tm["outputSchema"], tm["name"])
			hints[tm["name"].(string)] = tm["annotations"].(map[string]any)
		}
		assert.Len(t, hints, 9, "no approve_run without --allow-approve")
		assert.Equal(t, true, hints["list_runs"]["readOnlyHint"])
		assert.Equal(t, false, hints["plan"]["destructiveHint"])
		assert.Equal(t, true, hints["cancel_run"]["destructiveHint"])
	})
	t.Run("resources", func(t *testing.T) {
		t.Parallel()
		templates := inspector(t, "--method", "resources/templates/list")["resourceTemplates"].([]any)
		assert.Len(t, templates, 2)
	})
	t.Run("prompts", func(t *testing.T) {
		t.Parallel()
		prompt := inspector(t, "--method", "prompts/get", "--prompt-name", "safe_change", "--prompt-args", "workspace=inspected", "dir=/tmp/x")
		assert.Contains(t, prompt["messages"].([]any)[0].(map[string]any)["content"].(map[string]any)["text"], "opsbot apply <run id>")
	})
	// A real call through the relay: the structured content matches the
	// output schema (the inspector's SDK validates it).
	t.Run("call", func(t *testing.T) {
		t.Parallel()
		res := inspector(t, "--method", "tools/call", "--tool-name", "list_workspaces")
		var wss struct {
			Workspaces []struct{ Name string } `json:"workspaces"`
		}
		data, _ := json.Marshal(res["structuredContent"])
		require.NoError(t, json.Unmarshal(data, &wss))
		assert.Contains(t, wss.Workspaces, struct{ Name string }{"inspected"})
	})
}
