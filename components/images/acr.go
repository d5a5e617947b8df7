package images

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// acrTokenUser is the user name Azure Container Registry expects with a
// refresh token obtained by exchanging a Microsoft Entra token.
const acrTokenUser = "00000000-0000-0000-0000-000000000000"

// AzureAuth authenticates pushes to Azure Container Registry with a
// Microsoft Entra identity (the identity running `pulumi up`; it needs
// AcrPush on the registry, which Owner and Contributor include): the
// Entra token for the cloud's Resource Manager (scope, e.g.
// "https://management.usgovcloudapi.net/.default") is exchanged at
// https://<registry>/oauth2/exchange for a registry refresh token. No
// admin user and no stored password.
func AzureAuth(cred azcore.TokenCredential, scope string, client *http.Client) func(ctx context.Context, server string) ([]remote.Option, error) {
	if client == nil {
		client = http.DefaultClient
	}
	return func(ctx context.Context, server string) ([]remote.Option, error) {
		tok, err := cred.GetToken(ctx, policy.TokenRequestOptions{Scopes: []string{scope}})
		if err != nil {
			return nil, fmt.Errorf("cannot get a Microsoft Entra token for %s: %w", scope, err)
		}
		refresh, err := exchange(ctx, client, "https://"+server, server, tok.Token)
		if err != nil {
			return nil, err
		}
		return []remote.Option{remote.WithAuth(&authn.Basic{Username: acrTokenUser, Password: refresh})}, nil
	}
}

// exchange trades an Entra access token for a registry refresh token.
func exchange(ctx context.Context, client *http.Client, base, service, accessToken string) (string, error) {
	form := url.Values{"grant_type": {"access_token"}, "service": {service}, "access_token": {accessToken}}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, base+"/oauth2/exchange", strings.NewReader(form.Encode()))
	if err != nil {
		return "", err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := client.Do(req)
	if err != nil {
		return "", fmt.Errorf("cannot exchange the Entra token at %s: %w", service, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("cannot exchange the Entra token at %s: %s: %s", service, resp.Status, strings.TrimSpace(string(body)))
	}
	var out struct {
		RefreshToken string `json:"refresh_token"`
	}
	if err := json.Unmarshal(body, &out); err != nil || out.RefreshToken == "" {
		return "", fmt.Errorf("cannot exchange the Entra token at %s: no refresh_token in the answer", service)
	}
	return out.RefreshToken, nil
}
