package main

import (
	"context"
	"io"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/botehq/platform/runtime/cmd/opsbot/exitcode"
)

// TestMCPCommand serves opsbot mcp on pipes as an assistant runs it, with
// the SDK's client: the profile's credential reaches the API, stdout
// carries only the protocol, and the command ends when the client closes
// stdin.
func TestMCPCommand(t *testing.T) {
	url, key := startServer(t)
	env := map[string]string{"OPSBOT_LOCAL_URL": url, "OPSBOT_API_KEY": key, "OPSBOT_TENANT": "contoso", "HOME": t.TempDir()}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cs, done, stderr := startMCP(t, ctx, env, "mcp", "--allow-approve")
	res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "list_tenants"})
	require.NoError(t, err)
	require.False(t, res.IsError)
	assert.Contains(t, res.StructuredContent, "tenants")
	assert.Equal(t, "api-key:cli-test", res.StructuredContent.(map[string]any)["principal"])
	res, err = cs.CallTool(ctx, &mcp.CallToolParams{Name: "approve_run", Arguments: map[string]any{"run": "run-1"}})
	require.NoError(t, err)
	assert.True(t, res.IsError, "the client has no elicitation")
	require.NoError(t, cs.Close())
	select {
	case err := <-done:
		require.NoError(t, err, "stderr: %s", stderr.String())
	case <-time.After(10 * time.Second):
		t.Fatal("opsbot mcp did not end when its stdin closed")
	}
}

// startMCP runs opsbot with args on pipes, as an assistant runs it, and
// connects the SDK's client; done gets run's result once stdin closes.
func startMCP(t *testing.T, ctx context.Context, env map[string]string, args ...string) (cs *mcp.ClientSession, done <-chan error, stderr *syncWriter) {
	t.Helper()
	inR, inW := io.Pipe()
	outR, outW := io.Pipe()
	stderr = &syncWriter{}
	ch := make(chan error, 1)
	go func() {
		err := run(context.Background(), args, inR, outW, stderr, func(k string) string { return env[k] })
		outW.Close()
		ch <- err
	}()
	cs, err := mcp.NewClient(&mcp.Implementation{Name: "test", Version: "1"}, nil).Connect(ctx, &mcp.IOTransport{Reader: outR, Writer: inW}, nil)
	require.NoError(t, err)
	return cs, ch, stderr
}

func TestMCPCommandRefusesBadSetup(t *testing.T) {
	for _, tc := range []struct {
		args []string
		env  map[string]string
		want string
	}{
		{[]string{"mcp"}, map[string]string{"OPSBOT_LOCAL_URL": "http://127.0.0.1:9"}, "api_key: required"},
		{[]string{"mcp", "--allow-aprove"}, nil, "unknown flag: --allow-aprove"},
	} {
		r := runCLI(t, tc.env, tc.args...)
		assert.Equal(t, exitcode.Usage, r.code, r.stderr)
		assert.Contains(t, r.stderr, tc.want)
		assert.Empty(t, r.stdout, "nothing on the protocol's stream")
	}
}

// TestMCPUnreachable: when the ops server cannot be reached, the protocol
// error says what to check, as the CLI does.
func TestMCPUnreachable(t *testing.T) {
	env := map[string]string{"OPSBOT_LOCAL_URL": "http://127.0.0.1:9", "OPSBOT_API_KEY": "obk_cli-test.secret-part", "OPSBOT_TENANT": "contoso", "HOME": t.TempDir()}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cs, done, _ := startMCP(t, ctx, env, "mcp")
	_, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "list_tenants"})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "cannot reach the ops server at http://127.0.0.1:9 (local_url): is it running with --local-listen?")
	assert.NotContains(t, err.Error(), "secret-part")
	require.NoError(t, cs.Close())
	require.NoError(t, <-done)
}
