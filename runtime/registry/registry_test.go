package registry

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/go-jose/go-jose/v4"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func jwk(t *testing.T, key any) json.RawMessage {
	t.Helper()
	raw, err := json.Marshal(jose.JSONWebKey{Key: key, KeyID: "k1", Algorithm: "ES256"})
	require.NoError(t, err)
	return raw
}

func ecKey(t *testing.T) *ecdsa.PrivateKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	return k
}

func TestMarshalParseRoundTrip(t *testing.T) {
	k1, k2 := ecKey(t), ecKey(t)
	out, err := Marshal([]Connector{
		{Tenant: "zeta", ID: "c1", JWK: jwk(t, &k1.PublicKey)},
		{Tenant: "alpha", ID: "c2", JWK: jwk(t, &k2.PublicKey), Disabled: true},
	})
	require.NoError(t, err)

	path := filepath.Join(t.TempDir(), "registry.json")
	require.NoError(t, os.WriteFile(path, out, 0o600))
	r, err := Load(path)
	require.NoError(t, err)

	cs := r.Connectors()
	require.Len(t, cs, 2)
	assert.Equal(t, "alpha/c2", cs[0].ClientID(), "sorted by tenant")
	c, ok := r.Lookup("zeta/c1")
	require.True(t, ok)
	assert.True(t, c.PublicKey().Equal(&k1.PublicKey))
	_, ok = r.Lookup("zeta/c2")
	assert.False(t, ok)

	again, err := Marshal(cs)
	require.NoError(t, err)
	assert.Equal(t, string(out), string(again), "canonical form is stable")
}

func TestParseRejects(t *testing.T) {
	k := ecKey(t)
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	require.NoError(t, err)
	p384, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	require.NoError(t, err)
	pub := jwk(t, &k.PublicKey)

	file := func(cs ...Connector) []byte {
		out, err := json.Marshal(File{Version: Version, Connectors: cs})
		require.NoError(t, err)
		return out
	}
	tests := []struct {
		name string
		data []byte
		want string
	}{
		{"not json", []byte("{"), "cannot decode"},
		{"unknown field", []byte(`{"version":1,"connectors":[],"extra":1}`), "unknown field"},
		{"version", []byte(`{"version":2,"connectors":[]}`), "version: got 2"},
		{"private key", file(Connector{Tenant: "t", ID: "c", JWK: jwk(t, k)}), "contains a private key"},
		{"rsa key", file(Connector{Tenant: "t", ID: "c", JWK: jwk(t, &rsaKey.PublicKey)}), "must be an EC P-256"},
		{"p384 key", file(Connector{Tenant: "t", ID: "c", JWK: jwk(t, &p384.PublicKey)}), "must be an EC P-256"},
		{"missing key", file(Connector{Tenant: "t", ID: "c"}), "jwk: missing"},
		{"bad id", file(Connector{Tenant: "t", ID: "c/d", JWK: pub}), "connector id \"c/d\""},
		{"duplicate", file(Connector{Tenant: "t", ID: "c", JWK: pub}, Connector{Tenant: "t", ID: "c", JWK: pub}), "listed twice"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse(tt.data)
			require.Error(t, err)
			assert.Contains(t, err.Error(), tt.want)
		})
	}
}

func TestSplitClientID(t *testing.T) {
	tenant, conn, ok := SplitClientID(ClientID("contoso", "agent-01"))
	assert.True(t, ok)
	assert.Equal(t, "contoso", tenant)
	assert.Equal(t, "agent-01", conn)
	for _, bad := range []string{"", "x", "/c", "t/"} {
		_, _, ok := SplitClientID(bad)
		assert.False(t, ok, bad)
	}
}

func TestRolesAndLabels(t *testing.T) {
	k1, k2, k3 := ecKey(t), ecKey(t), ecKey(t)
	out, err := Marshal([]Connector{
		{Tenant: "contoso", ID: "agent-01", JWK: jwk(t, &k1.PublicKey), Roles: []string{RoleAgent}, Labels: map[string]string{"env": "prod", "pool": "eu"}},
		{Tenant: "contoso", ID: "erp-bridge", JWK: jwk(t, &k2.PublicKey)},
		{Tenant: "contoso", ID: "agent-02", JWK: jwk(t, &k3.PublicKey), Roles: []string{RoleAgent}, Disabled: true},
	})
	require.NoError(t, err)
	assert.Contains(t, string(out), `"roles": [`)
	r, err := Parse(out)
	require.NoError(t, err)

	agent, ok := r.Lookup("contoso/agent-01")
	require.True(t, ok)
	assert.True(t, agent.HasRole(RoleAgent))
	assert.True(t, agent.ActiveAgent())
	assert.Equal(t, map[string]string{"env": "prod", "pool": "eu"}, agent.Labels)

	plain, ok := r.Lookup("contoso/erp-bridge")
	require.True(t, ok)
	assert.False(t, plain.HasRole(RoleAgent), "no roles: a plain connector")
	assert.False(t, plain.ActiveAgent())

	disabled, ok := r.Lookup("contoso/agent-02")
	require.True(t, ok)
	assert.True(t, disabled.HasRole(RoleAgent))
	assert.False(t, disabled.ActiveAgent(), "a disabled agent may not act")
}

func TestValidateGrants(t *testing.T) {
	long := string(make([]byte, MaxLabelValue+1))
	tests := []struct {
		name   string
		roles  []string
		labels map[string]string
		want   string // error substring; "" for valid
	}{
		{"none", nil, nil, ""},
		{"agent", []string{RoleAgent}, nil, ""},
		{"agent with labels", []string{RoleAgent}, map[string]string{"env": "prod", "pool": ""}, ""},
		{"unknown role", []string{"admin"}, nil, `roles[0]: unknown role "admin"`},
		{"role twice", []string{RoleAgent, RoleAgent}, nil, "roles[1]: role \"agent\" is listed twice"},
		{"labels without the agent role", nil, map[string]string{"env": "prod"}, "only an agent has labels"},
		{"bad label key", []string{RoleAgent}, map[string]string{"a b": "x"}, "labels: invalid id: label id \"a b\""},
		{"long label value", []string{RoleAgent}, map[string]string{"env": long}, "longer than 256"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := ValidateGrants(tt.roles, tt.labels)
			if tt.want == "" {
				assert.NoError(t, err)
				return
			}
			assert.ErrorContains(t, err, tt.want)
		})
	}
	// Parse applies the same rules, naming the connector.
	k := ecKey(t)
	doc, err := json.Marshal(File{Version: Version, Connectors: []Connector{{Tenant: "t", ID: "c", JWK: jwk(t, &k.PublicKey), Labels: map[string]string{"env": "prod"}}}})
	require.NoError(t, err)
	_, err = Parse(doc)
	assert.ErrorContains(t, err, "connectors[0] (t/c): labels: only an agent has labels")
}
