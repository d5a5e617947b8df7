package opsapi

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/botehq/platform/runtime/registry"
)

func TestLoadAgentsFile(t *testing.T) {
	tests := []struct {
		name, data, wantErr string
		wantIDs             []string
	}{
		{"ok", `{"version":1,"agents":[{"tenant":"contoso","name":"a1","state":"online","labels":{"env":"prod"}},{"tenant":"contoso","name":"a2","id":"contoso/a2","state":"unknown"}]}`, "", []string{"contoso/a1", "contoso/a2"}},
		{"empty", `{"version":1,"agents":[]}`, "", nil},
		{"not json", `[`, "cannot decode", nil},
		{"unknown field", `{"version":1,"agents":[],"x":1}`, "unknown field", nil},
		{"version", `{"version":3,"agents":[]}`, "version is 3", nil},
		{"bad tenant", `{"version":1,"agents":[{"tenant":"Con toso","name":"a1","state":"online"}]}`, "agents[0].tenant", nil},
		{"bad name", `{"version":1,"agents":[{"tenant":"contoso","name":"a/1","state":"online"}]}`, "agents[0].name", nil},
		{"id mismatch", `{"version":1,"agents":[{"tenant":"contoso","name":"a1","id":"fabrikam/a1","state":"online"}]}`, "agents[0].id", nil},
		{"duplicate", `{"version":1,"agents":[{"tenant":"contoso","name":"a1","state":"online"},{"tenant":"contoso","name":"a1","state":"offline"}]}`, "agents[1]: duplicate", nil},
		{"bad state", `{"version":1,"agents":[{"tenant":"contoso","name":"a1","state":"busy"}]}`, "agents[0].state", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "agents.json")
			require.NoError(t, os.WriteFile(path, []byte(tt.data), 0o600))
			agents, err := LoadAgentsFile(path)
			if tt.wantErr != "" {
				assert.ErrorContains(t, err, tt.wantErr)
				return
			}
			require.NoError(t, err)
			var ids []string
			for _, a := range agents {
				ids = append(ids, a.ID)
			}
			assert.Equal(t, tt.wantIDs, ids)
		})
	}
	_, err := LoadAgentsFile(filepath.Join(t.TempDir(), "missing.json"))
	assert.ErrorContains(t, err, "cannot read agents file")
}

func TestAgentsFromRegistry(t *testing.T) {
	jwk := func() json.RawMessage {
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		require.NoError(t, err)
		b64 := base64.RawURLEncoding.EncodeToString
		b, _ := json.Marshal(map[string]string{"kty": "EC", "crv": "P-256", "x": b64(k.X.FillBytes(make([]byte, 32))), "y": b64(k.Y.FillBytes(make([]byte, 32)))})
		return b
	}
	agent := []string{registry.RoleAgent}
	data, err := registry.Marshal([]registry.Connector{
		{Tenant: "fabrikam", ID: "agent-01", JWK: jwk(), Roles: agent, Labels: map[string]string{"env": "prod"}},
		{Tenant: "contoso", ID: "agent-01", JWK: jwk(), Roles: agent, Disabled: true},
		{Tenant: "contoso", ID: "erp-bridge", JWK: jwk()},
	})
	require.NoError(t, err)
	reg, err := registry.Parse(data)
	require.NoError(t, err)
	assert.Equal(t, []Agent{
		{ID: "contoso/agent-01", Tenant: "contoso", Name: "agent-01", State: AgentDisabled},
		{ID: "fabrikam/agent-01", Tenant: "fabrikam", Name: "agent-01", State: AgentUnknown, Labels: map[string]string{"env": "prod"}},
	}, AgentsFromRegistry(reg), "a connector without the agent role is no agent")

	// RegistryAgents reads the registry in force at each call.
	current := reg
	ra := RegistryAgents(func() *registry.Registry { return current })
	got, err := ra.ListAgents(context.Background(), AgentFilter{Tenant: "fabrikam"})
	require.NoError(t, err)
	require.Len(t, got, 1)
	data, err = registry.Marshal([]registry.Connector{{Tenant: "fabrikam", ID: "agent-01", JWK: jwk()}})
	require.NoError(t, err)
	current, err = registry.Parse(data)
	require.NoError(t, err)
	got, err = ra.ListAgents(context.Background(), AgentFilter{Tenant: "fabrikam"})
	require.NoError(t, err)
	assert.Empty(t, got, "the role was withdrawn")
}

func TestStaticAgentsReturnsCopies(t *testing.T) {
	s := NewStaticAgents([]Agent{{ID: "a/b", Tenant: "a", Name: "b", State: AgentOnline, Labels: map[string]string{"k": "v"}}})
	got, err := s.ListAgents(context.Background(), AgentFilter{})
	require.NoError(t, err)
	got[0].Labels["k"] = "changed"
	again, err := s.ListAgents(context.Background(), AgentFilter{})
	require.NoError(t, err)
	assert.Equal(t, "v", again[0].Labels["k"])
}
