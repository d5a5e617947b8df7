package tenant

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"

	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi/internals"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/botehq/platform/components/azurecloud"
	"github.com/botehq/platform/components/infratest"
)

// runWithPassword runs the tenant with a password source and returns the
// password output, whether it is secret, and the token ids Issue got.
func runWithPassword(t *testing.T, previous string, dryRun bool) (string, bool, []string) {
	t.Helper()
	var mu sync.Mutex
	var issued []string
	var pw string
	var secret bool
	_, err := infratest.Run(t, "public", nil, func(ctx *pulumi.Context) error {
		c, _ := azurecloud.Lookup("public")
		p, err := azurecloud.NewProvider(ctx, "azure", c, azurecloud.ProviderArgs{})
		if err != nil {
			return err
		}
		tn, err := New(ctx, "tenant-Contoso", &Args{
			Spec: spec(), ResourceGroupName: pulumi.String("rg"),
			StorageAccountName: pulumi.String("botedevst"), RegistryName: pulumi.String("botedevacr"),
			Password: &TokenPassword{Previous: pulumi.String(previous).ToStringOutput(), Issue: func(_ context.Context, id string) (string, error) {
				mu.Lock()
				defer mu.Unlock()
				issued = append(issued, id)
				return "issued-password", nil
			}},
		}, pulumi.Providers(p))
		if err != nil {
			return err
		}
		res, err := internals.UnsafeAwaitOutput(context.Background(), tn.RegistryPassword)
		if err != nil {
			return err
		}
		pw, _ = res.Value.(string)
		secret = res.Secret
		return nil
	}, func(info *pulumi.RunInfo) { info.DryRun = dryRun })
	require.NoError(t, err)
	return pw, secret, issued
}

func TestTokenPasswordIsIssuedOnceByUpAndKeptAfterwards(t *testing.T) {
	pw, secret, issued := runWithPassword(t, "", false)
	assert.Equal(t, "issued-password", pw)
	assert.True(t, secret, "the password is a secret output")
	require.Len(t, issued, 1)
	assert.Contains(t, issued[0], "containerregistry/Token/tenant-Contoso-agent-pull-token")

	pw, _, issued = runWithPassword(t, "from-the-last-up", false)
	assert.Equal(t, "from-the-last-up", pw, "a later up keeps the password agents already use")
	assert.Empty(t, issued)

	pw, _, issued = runWithPassword(t, "", true)
	assert.Empty(t, pw)
	assert.Empty(t, issued, "a preview issues nothing")
}

func TestGenerateFollowsTheLongRunningOperation(t *testing.T) {
	const tokenID = "/subscriptions/s/resourceGroups/rg/providers/Microsoft.ContainerRegistry/registries/botedevacr/tokens/contoso-pull"
	var srv *httptest.Server
	srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer entra" {
			http.Error(w, "no", http.StatusUnauthorized)
			return
		}
		switch {
		case r.Method == http.MethodPost && r.URL.Path == "/subscriptions/s/resourceGroups/rg/providers/Microsoft.ContainerRegistry/registries/botedevacr/generateCredentials":
			var body map[string]string
			require.NoError(t, json.NewDecoder(r.Body).Decode(&body))
			assert.Equal(t, map[string]string{"tokenId": tokenID, "name": "password1"}, body)
			assert.Equal(t, apiVersion, r.URL.Query().Get("api-version"))
			w.Header().Set("Location", srv.URL+"/operation/1")
			w.Header().Set("Retry-After", "0")
			w.WriteHeader(http.StatusAccepted)
		case r.Method == http.MethodGet && r.URL.Path == "/operation/1":
			_, _ = w.Write([]byte(`{"username":"contoso-pull","passwords":[{"name":"password1","value":"s3cret"}]}`))
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(srv.Close)
	got, err := generate(context.Background(), srv.Client(), srv.URL, "entra", tokenID)
	require.NoError(t, err)
	assert.Equal(t, "s3cret", got)

	_, err = generate(context.Background(), srv.Client(), srv.URL, "stolen", tokenID)
	assert.ErrorContains(t, err, "401")
	_, err = generate(context.Background(), srv.Client(), srv.URL, "entra", "/subscriptions/s/not-a-token")
	assert.ErrorContains(t, err, "is not a registry token id")
}
