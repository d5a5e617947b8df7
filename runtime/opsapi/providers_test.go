package opsapi

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// A workspace's provider sources are set at creation, replaced and
// removed by an update, and refused when an agent could not use them.
func TestWorkspaceProviderSources(t *testing.T) {
	f := newRunsFixture(t)
	url := f.srv.URL + "/v1/tenants/fabrikam/workspaces"
	r := doBody(t, "POST", url, "application/json",
		[]byte(`{"name":"gov","providers":{"filesystem_mirror":"/usr/local/share/terraform/plugins","no_direct":true}}`))
	require.Equal(t, 201, r.status, "%s", r.body)
	assert.Equal(t, &ProviderSources{FilesystemMirror: "/usr/local/share/terraform/plugins", NoDirect: true}, decode[Workspace](t, r).Providers)

	r = doBody(t, "PATCH", url+"/gov", "application/json", []byte(`{"providers":{"network_mirror":"https://mirror.example.com/providers/"}}`))
	require.Equal(t, 200, r.status, "%s", r.body)
	assert.Equal(t, &ProviderSources{NetworkMirror: "https://mirror.example.com/providers/"}, decode[Workspace](t, r).Providers)
	r = doBody(t, "PATCH", url+"/gov", "application/json", []byte(`{"description":"unchanged providers"}`))
	assert.NotNil(t, decode[Workspace](t, r).Providers)
	r = doBody(t, "PATCH", url+"/gov", "application/json", []byte(`{"providers":{}}`))
	assert.Nil(t, decode[Workspace](t, r).Providers, "{} removes them")

	for _, tc := range []struct{ body, want string }{
		{`{"name":"x","providers":{"filesystem_mirror":"relative/dir"}}`, "filesystemMirror \"relative/dir\" must be an absolute path"},
		{`{"name":"x","providers":{"network_mirror":"http://mirror.example.com/"}}`, "must be an https URL"},
		{`{"name":"x","providers":{"filesystem_mirror":"/m/$HOME"}}`, `must not contain control characters or "$"`},
	} {
		r := doBody(t, "POST", url, "application/json", []byte(tc.body))
		assert.Equal(t, 400, r.status)
		assert.Contains(t, decode[ErrorBody](t, r).Error.Message, tc.want)
	}
}
