package identity

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"path/filepath"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/data/aztables"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/botehq/platform/integration/azurite"
	"github.com/botehq/platform/integration/procs"
	"github.com/botehq/platform/runtime/clientauth"
)

// Two idp replicas behind one issuer (as Container Apps or App Service run
// them): a client assertion used at one must be refused at the other. Each
// replica's memory alone lets the assertion through twice; the shared
// table (Azurite here, the stack's botereplay table in Azure) does not.
func TestReplayRefusedAcrossReplicas(t *testing.T) {
	t.Parallel()
	az := azurite.New(t)
	e := newIDPEnv(t)
	agent := newConnector(t, e.dir, "contoso", "agent-01")
	e.register(t, agent)

	replica := func(name string, extra ...string) string {
		port := procs.FreePort(t)
		p := procs.Start(t, procs.Spec{
			Name: name, Path: e.bin,
			Args: append([]string{
				"--listen", fmt.Sprintf("127.0.0.1:%d", port), "--issuer", e.issuer,
				"--registry", e.registry, "--key-dir", filepath.Join(e.dir, name+"-keys"),
			}, extra...),
		})
		_, err := p.ListenAddr(30 * time.Second)
		require.NoError(t, err)
		return fmt.Sprintf("http://127.0.0.1:%d/oauth2/token", port)
	}
	post := func(tokenURL, assertion string) (int, string) {
		resp, err := http.PostForm(tokenURL, url.Values{
			"grant_type": {"client_credentials"}, "client_assertion_type": {clientauth.AssertionType}, "client_assertion": {assertion},
		})
		require.NoError(t, err)
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		require.NoError(t, err)
		return resp.StatusCode, string(body)
	}
	assertion := func() string {
		a, err := clientauth.NewAssertion(agent.key, agent.clientID(), e.tokenURL(), time.Now())
		require.NoError(t, err)
		return a
	}

	// Without the shared table: one assertion, two tokens.
	a, b := replica("idp-a"), replica("idp-b")
	used := assertion()
	status, body := post(a, used)
	require.Equal(t, http.StatusOK, status, body)
	status, _ = post(b, used)
	assert.Equal(t, http.StatusOK, status, "control: per-replica memory lets the replay through")

	// With it: the second replica refuses.
	shared := []string{"--replay-connection-string", az.ConnectionString}
	c, d := replica("idp-c", shared...), replica("idp-d", shared...)
	used = assertion()
	status, body = post(c, used)
	require.Equal(t, http.StatusOK, status, body)
	status, body = post(d, used)
	assert.Equal(t, http.StatusUnauthorized, status, body)
	assert.Contains(t, body, "already used")
	status, _ = post(c, used)
	assert.Equal(t, http.StatusUnauthorized, status)

	// Concurrent first uses at both replicas: exactly one wins.
	for range 5 {
		used = assertion()
		results := make(chan int, 2)
		for _, u := range []string{c, d} {
			go func() { s, _ := post(u, used); results <- s }()
		}
		got := []int{<-results, <-results}
		assert.ElementsMatch(t, []int{http.StatusOK, http.StatusUnauthorized}, got)
	}

	// The uses are in the table, keyed by a hash (no assertion or jti in
	// clear).
	svc, err := aztables.NewServiceClientFromConnectionString(az.ConnectionString, nil)
	require.NoError(t, err)
	pager := svc.NewClient("botereplay").NewListEntitiesPager(nil)
	n := 0
	for pager.More() {
		page, err := pager.NextPage(context.Background())
		require.NoError(t, err)
		for _, raw := range page.Entities {
			assert.NotContains(t, string(raw), agent.clientID())
		}
		n += len(page.Entities)
	}
	assert.Equal(t, 6, n)
}
