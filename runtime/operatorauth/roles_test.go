package operatorauth

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestRoleIncludes(t *testing.T) {
	tests := []struct {
		have, want Role
		ok         bool
	}{
		{RoleReader, RoleReader, true},
		{RoleReader, RoleOperator, false},
		{RoleReader, RoleApprover, false},
		{RoleOperator, RoleReader, true},
		{RoleOperator, RoleOperator, true},
		{RoleOperator, RoleApprover, false},
		{RoleApprover, RoleReader, true},
		{RoleApprover, RoleOperator, true},
		{RoleApprover, RoleApprover, true},
		{"", RoleReader, false},
		{"owner", RoleReader, false},
		{RoleApprover, "", false},
		{RoleApprover, "owner", false},
	}
	for _, tt := range tests {
		assert.Equal(t, tt.ok, tt.have.Includes(tt.want), "%q includes %q", tt.have, tt.want)
	}
}

func TestGrants(t *testing.T) {
	g := Grants{Tenants: map[string]Role{"acme": RoleOperator, "globex": RoleReader}}
	assert.True(t, g.Allows("acme", RoleOperator))
	assert.False(t, g.Allows("acme", RoleApprover))
	assert.True(t, g.Allows("globex", RoleReader))
	assert.False(t, g.Allows("globex", RoleOperator))
	assert.False(t, g.Allows("initech", RoleReader), "no role in a tenant not listed")
	assert.Equal(t, Role(""), g.RoleIn("initech"))
	assert.False(t, g.IsAdmin())
	assert.Equal(t, []string{"acme", "globex"}, g.TenantIDs())
	assert.Equal(t, "acme=operator,globex=reader", g.String())
	assert.False(t, g.Empty())

	admin := Grants{Admin: true}
	assert.True(t, admin.Allows("anything", RoleApprover))
	assert.Equal(t, RoleApprover, admin.RoleIn("x"))
	assert.Nil(t, admin.TenantIDs())
	assert.Equal(t, "admin", admin.String())

	assert.True(t, Grants{}.Empty())
	assert.Equal(t, "none", Grants{}.String())
}

func TestGrantsValidate(t *testing.T) {
	require.NoError(t, Grants{Tenants: map[string]Role{"acme": RoleApprover}}.Validate())
	assert.ErrorContains(t, Grants{Tenants: map[string]Role{"acme": "owner"}}.Validate(), `tenants[acme]: role "owner"`)
	assert.ErrorContains(t, Grants{Tenants: map[string]Role{"a/b": RoleReader}}.Validate(), "tenant id")
}

func TestParseTenantRole(t *testing.T) {
	tenant, role, err := ParseTenantRole("acme=approver")
	require.NoError(t, err)
	assert.Equal(t, "acme", tenant)
	assert.Equal(t, RoleApprover, role)
	for _, bad := range []string{"acme", "acme=", "=reader", "acme=admin", "a b=reader"} {
		_, _, err := ParseTenantRole(bad)
		assert.Error(t, err, bad)
	}
}

func TestKeySetVerifyCarriesGrants(t *testing.T) {
	f := &KeysFile{Version: KeysFileVersion}
	key, err := f.AddKey("alice", "", Grants{Tenants: map[string]Role{"acme": RoleReader}}, time.Now())
	require.NoError(t, err)
	_, err = f.AddKey("bob", "", Grants{Tenants: map[string]Role{"acme": "root"}}, time.Now())
	assert.ErrorContains(t, err, `role "root"`)
	ks := NewKeySet(f)
	p, err := ks.Verify(key)
	require.NoError(t, err)
	assert.True(t, p.Allows("acme", RoleReader))
	assert.False(t, p.Allows("acme", RoleOperator))
	p.Tenants["acme"] = RoleApprover
	p2, err := ks.Verify(key)
	require.NoError(t, err)
	assert.Equal(t, RoleReader, p2.RoleIn("acme"), "a principal's grants are its own copy")

	f.Keys[0].Grants.Tenants["acme"] = "root"
	assert.ErrorContains(t, f.Validate(), "keys[0].tenants[acme]")
}

// A role map value says which claim it matches: an app role value and a
// group object id are different namespaces, so that a group named like an
// app role (or an app role whose value is some group's object id) never
// grants what the other would.
func TestRoleMapMatchesTheNamedClaimOnly(t *testing.T) {
	m, err := ParseRoleMap([]byte(`{"admin":["role:Ops.Admin"],"tenants":{
		"contoso":{"operator":["role:Contoso.Operator"],"reader":["group:8d2f6c1e-0000-0000-0000-00000000000a"]}}}`))
	require.NoError(t, err)
	tests := []struct {
		name          string
		roles, groups []string
		want          Grants
	}{
		{"app role", []string{"Contoso.Operator"}, nil, Grants{Tenants: map[string]Role{"contoso": RoleOperator}}},
		{"group", nil, []string{"8d2f6c1e-0000-0000-0000-00000000000a"}, Grants{Tenants: map[string]Role{"contoso": RoleReader}}},
		{"both: the highest", []string{"Contoso.Operator"}, []string{"8d2f6c1e-0000-0000-0000-00000000000a"}, Grants{Tenants: map[string]Role{"contoso": RoleOperator}}},
		{"admin", []string{"Ops.Admin"}, nil, Grants{Admin: true}},
		{"a group named like the admin role", nil, []string{"Ops.Admin"}, Grants{}},
		{"a group named like an app role", nil, []string{"Contoso.Operator"}, Grants{}},
		{"an app role valued like the group id", []string{"8d2f6c1e-0000-0000-0000-00000000000a"}, nil, Grants{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assert.Equal(t, tt.want, m.Grants(tt.roles, tt.groups))
		})
	}
}

func TestRoleMapValidateNamesTheClaim(t *testing.T) {
	tests := []struct {
		roles, wantErr string
	}{
		{`{"admin":["Ops.Admin"]}`, `admin[0]: "Ops.Admin" must say which claim it matches: "role:Ops.Admin" (an app role) or "group:<object id>"`},
		{`{"tenants":{"contoso":{"reader":["role:x","8d2f6c1e"]}}}`, `tenants[contoso][reader][1]: "8d2f6c1e" must say which claim`},
		{`{"tenants":{"contoso":{"reader":["role:"]}}}`, `tenants[contoso][reader][0]: "role:" names no app role`},
		{`{"admin":["group: "]}`, `admin[0]: "group: " names no group`},
		{`{"admin":["scope:x"]}`, `admin[0]: "scope:x" must say which claim`},
		{`{"admin":[""]}`, `admin[0]: "" must say which claim`},
	}
	for _, tt := range tests {
		_, err := ParseRoleMap([]byte(tt.roles))
		assert.ErrorContains(t, err, tt.wantErr, tt.roles)
	}
}
