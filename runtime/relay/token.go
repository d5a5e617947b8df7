package relay

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
)

// Token is an authorization token for the relay: a SAS token
// ("SharedAccessSignature sr=...") or an Entra ID JWT, sent in the
// ServiceBusAuthorization header.
type Token struct {
	Value     string
	ExpiresOn time.Time
}

// Credential produces relay tokens for a resource URI such as
// "http://myns.servicebus.windows.net/myhc/". Implementations must be safe
// for concurrent use.
type Credential interface {
	Token(ctx context.Context, resource string) (Token, error)
}

// DefaultTokenTTL is the lifetime of the SAS tokens this package mints, as in
// Microsoft's SDKs.
const DefaultTokenTTL = time.Hour

// EntraScope is the OAuth2 scope for Azure Relay data-plane tokens. It is the
// same in every cloud.
const EntraScope = "https://relay.azure.net/.default"

// SASCredential signs SAS tokens with a shared access key.
type SASCredential struct {
	keyName string
	key     string
	ttl     time.Duration
	now     func() time.Time
}

// NewSASCredential returns a credential that signs tokens with the rule's
// key name and key, each valid for DefaultTokenTTL.
func NewSASCredential(keyName, key string) *SASCredential {
	return &SASCredential{keyName: keyName, key: key, ttl: DefaultTokenTTL, now: time.Now}
}

// WithTTL returns a copy whose tokens are valid for ttl (at least a second).
func (c *SASCredential) WithTTL(ttl time.Duration) *SASCredential {
	cp := *c
	cp.ttl = max(ttl, time.Second)
	return &cp
}

// Token signs a token for resource.
func (c *SASCredential) Token(_ context.Context, resource string) (Token, error) {
	if c.keyName == "" || c.key == "" {
		return Token{}, fmt.Errorf("cannot sign SAS token: key name and key are required")
	}
	exp := c.now().Add(c.ttl).Truncate(time.Second)
	return Token{Value: SignSAS(resource, c.keyName, c.key, exp), ExpiresOn: exp}, nil
}

// SignSAS computes a SAS token exactly as the service verifies it:
//
//	sr  = urlencode(resource)
//	sig = base64(HMAC-SHA256(key, sr + "\n" + se))
//	SharedAccessSignature sr=<sr>&sig=<urlencode(sig)>&se=<se>&skn=<keyName>
//
// The HMAC key is the UTF-8 bytes of the base64 key string as given (not the
// decoded bytes), as in Microsoft's SDKs. The encoding is that of .NET's
// WebUtility.UrlEncode (upper-case hex, space as '+'), which the .NET SDK uses.
func SignSAS(resource, keyName, key string, expiry time.Time) string {
	sr := urlEncode(resource)
	se := strconv.FormatInt(expiry.Unix(), 10)
	mac := hmac.New(sha256.New, []byte(key))
	mac.Write([]byte(sr + "\n" + se))
	sig := base64.StdEncoding.EncodeToString(mac.Sum(nil))
	return "SharedAccessSignature sr=" + sr + "&sig=" + urlEncode(sig) + "&se=" + se + "&skn=" + urlEncode(keyName)
}

// ResourceURI is the audience a token is signed for: the hybrid connection's
// URI with scheme http, no port, lower case and a trailing slash, as the .NET
// SDK normalizes it. A token for a namespace-level rule signed for
// "http://host/" is also valid; this package signs per entity.
func ResourceURI(host, hybridConnection string) string {
	h := host
	if i := strings.LastIndexByte(h, ':'); i >= 0 && !strings.Contains(h[i:], "]") {
		h = h[:i]
	}
	return strings.ToLower("http://" + h + "/" + strings.Trim(hybridConnection, "/") + "/")
}

// urlEncode is .NET's WebUtility.UrlEncode: letters, digits and "-_.!*()"
// stay, space becomes '+', every other byte is %XX in upper-case hex.
func urlEncode(s string) string {
	const hex = "0123456789ABCDEF"
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', strings.IndexByte("-_.!*()", c) >= 0:
			b.WriteByte(c)
		case c == ' ':
			b.WriteByte('+')
		default:
			b.WriteByte('%')
			b.WriteByte(hex[c>>4])
			b.WriteByte(hex[c&15])
		}
	}
	return b.String()
}

// StaticSAS is a pre-signed SAS token (for example from a connection string's
// SharedAccessSignature). It cannot be renewed; the listener reconnects with
// the same token until it expires.
type StaticSAS struct {
	token   string
	expires time.Time
}

// NewStaticSAS wraps a pre-signed token.
func NewStaticSAS(token string) *StaticSAS {
	s := &StaticSAS{token: token}
	if q, err := url.ParseQuery(strings.TrimPrefix(token, "SharedAccessSignature ")); err == nil {
		if se, err := strconv.ParseInt(q.Get("se"), 10, 64); err == nil {
			s.expires = time.Unix(se, 0)
		}
	}
	return s
}

// Token returns the pre-signed token.
func (s *StaticSAS) Token(context.Context, string) (Token, error) {
	return Token{Value: s.token, ExpiresOn: s.expires}, nil
}

// EntraCredential gets Entra ID tokens for Relay from an azcore
// TokenCredential (azidentity's DefaultAzureCredential, a managed identity,
// workload identity, ...). The principal needs the Azure Relay Listener or
// Sender role. Not available in Azure China.
type EntraCredential struct {
	cred   azcore.TokenCredential
	scopes []string
}

// NewEntraCredential wraps cred with the Relay scope.
func NewEntraCredential(cred azcore.TokenCredential) *EntraCredential {
	return &EntraCredential{cred: cred, scopes: []string{EntraScope}}
}

// Token returns a bearer JWT; Relay takes it raw (no "Bearer " prefix) where
// a SAS token would go, as the .NET SDK sends it.
func (e *EntraCredential) Token(ctx context.Context, _ string) (Token, error) {
	t, err := e.cred.GetToken(ctx, policy.TokenRequestOptions{Scopes: e.scopes})
	if err != nil {
		return Token{}, fmt.Errorf("cannot get Entra ID token for %s: %w", EntraScope, err)
	}
	return Token{Value: t.Token, ExpiresOn: t.ExpiresOn}, nil
}
