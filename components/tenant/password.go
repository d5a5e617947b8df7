package tenant

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"
)

// TokenPassword gives the tenant's pull token a password, exported as a
// secret output. The azure-native provider has no resource for it (ACR
// creates token passwords only through the registry's generateCredentials
// action, pulumi-azure-native#3099), so the password is issued by the
// program during `pulumi up`, once: Previous is the password an earlier
// `pulumi up` exported for this tenant (the stack reads its own last
// outputs), and Issue is called only when there is none. A preview issues
// nothing.
type TokenPassword struct {
	Previous pulumi.StringOutput
	// Issue generates password1 of the token (GenerateCredentials).
	Issue func(ctx context.Context, tokenID string) (string, error)
}

// apiVersion of Microsoft.ContainerRegistry's generateCredentials.
const apiVersion = "2023-07-01"

// GenerateCredentials returns TokenPassword.Issue for Azure Resource
// Manager at management (e.g. "management.azure.com"): it POSTs
// <registry id>/generateCredentials for password1 of the token, follows the
// long-running operation, and returns the password value.
func GenerateCredentials(cred azcore.TokenCredential, management string, client *http.Client) func(ctx context.Context, tokenID string) (string, error) {
	if client == nil {
		client = &http.Client{Timeout: time.Minute}
	}
	base := "https://" + management
	return func(ctx context.Context, tokenID string) (string, error) {
		tok, err := cred.GetToken(ctx, policy.TokenRequestOptions{Scopes: []string{base + "/.default"}})
		if err != nil {
			return "", fmt.Errorf("cannot get a Microsoft Entra token for %s: %w", management, err)
		}
		return generate(ctx, client, base, tok.Token, tokenID)
	}
}

func generate(ctx context.Context, client *http.Client, base, bearer, tokenID string) (string, error) {
	i := strings.Index(strings.ToLower(tokenID), "/tokens/")
	if i < 0 {
		return "", fmt.Errorf("cannot generate a password: %q is not a registry token id", tokenID)
	}
	body, _ := json.Marshal(map[string]string{"tokenId": tokenID, "name": "password1"})
	url := base + tokenID[:i] + "/generateCredentials?api-version=" + apiVersion
	resp, err := armDo(ctx, client, http.MethodPost, url, bearer, body)
	for err == nil && resp.status == http.StatusAccepted {
		// A long-running operation: poll where Azure says, as often as it says.
		next := resp.header.Get("Azure-AsyncOperation")
		if loc := resp.header.Get("Location"); loc != "" {
			next = loc // the Location answers with the result itself
		}
		if next == "" {
			return "", fmt.Errorf("cannot generate a password for %s: 202 without a Location", tokenID)
		}
		wait := 2 * time.Second
		if s, convErr := strconv.Atoi(resp.header.Get("Retry-After")); convErr == nil && s >= 0 && s < 60 {
			wait = time.Duration(s) * time.Second
		}
		select {
		case <-ctx.Done():
			return "", ctx.Err()
		case <-time.After(wait):
		}
		resp, err = armDo(ctx, client, http.MethodGet, next, bearer, nil)
	}
	if err != nil {
		return "", fmt.Errorf("cannot generate a password for %s: %w", tokenID, err)
	}
	var out struct {
		Passwords []struct {
			Name  string `json:"name"`
			Value string `json:"value"`
		} `json:"passwords"`
	}
	if err := json.Unmarshal(resp.body, &out); err != nil {
		return "", fmt.Errorf("cannot generate a password for %s: %w", tokenID, err)
	}
	for _, p := range out.Passwords {
		if p.Name == "password1" && p.Value != "" {
			return p.Value, nil
		}
	}
	return "", fmt.Errorf("cannot generate a password for %s: the answer holds no password1", tokenID)
}

type armResponse struct {
	status int
	header http.Header
	body   []byte
}

func armDo(ctx context.Context, client *http.Client, method, url, bearer string, body []byte) (*armResponse, error) {
	req, err := http.NewRequestWithContext(ctx, method, url, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+bearer)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK && resp.StatusCode != http.StatusAccepted {
		return nil, fmt.Errorf("%s %s: %s: %s", method, req.URL.Path, resp.Status, strings.TrimSpace(string(data)))
	}
	return &armResponse{status: resp.StatusCode, header: resp.Header, body: data}, nil
}
