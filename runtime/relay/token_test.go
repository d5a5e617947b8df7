package relay

import (
	"bufio"
	"context"
	"errors"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestSignSASVectors checks tokens against vectors computed with python3 and
// openssl by testdata/sas_vectors.sh, not by this code.
func TestSignSASVectors(t *testing.T) {
	f, err := os.Open("testdata/sas_vectors.txt")
	require.NoError(t, err)
	defer f.Close()
	sc := bufio.NewScanner(f)
	n := 0
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "#") || line == "" {
			continue
		}
		fields := strings.Split(line, "\t")
		require.Len(t, fields, 5, line)
		exp, err := strconv.ParseInt(fields[3], 10, 64)
		require.NoError(t, err)
		t.Run(fields[0], func(t *testing.T) {
			assert.Equal(t, fields[4], SignSAS(fields[0], fields[1], fields[2], time.Unix(exp, 0)))
		})
		n++
	}
	require.NoError(t, sc.Err())
	require.GreaterOrEqual(t, n, 4)
}

func TestResourceURI(t *testing.T) {
	tests := []struct{ host, hc, want string }{
		{"myns.servicebus.windows.net", "opsbot", "http://myns.servicebus.windows.net/opsbot/"},
		{"MyNS.servicebus.usgovcloudapi.net", "/Ops/Relay/", "http://myns.servicebus.usgovcloudapi.net/ops/relay/"},
		{"127.0.0.1:9354", "hc", "http://127.0.0.1/hc/"},
		{"[::1]:9354", "hc", "http://[::1]/hc/"},
	}
	for _, tt := range tests {
		assert.Equal(t, tt.want, ResourceURI(tt.host, tt.hc), tt.host)
	}
}

func TestSASCredentialExpiry(t *testing.T) {
	now := time.Unix(1_700_000_000, 500_000_000)
	c := NewSASCredential("rule", "key").WithTTL(10 * time.Minute)
	c.now = func() time.Time { return now }
	tok, err := c.Token(context.Background(), "http://h/hc/")
	require.NoError(t, err)
	assert.Equal(t, time.Unix(1_700_000_600, 0), tok.ExpiresOn)
	assert.Equal(t, SignSAS("http://h/hc/", "rule", "key", tok.ExpiresOn), tok.Value)

	_, err = NewSASCredential("", "key").Token(context.Background(), "http://h/hc/")
	assert.Error(t, err)
}

func TestStaticSASExpiry(t *testing.T) {
	tok, err := NewStaticSAS("SharedAccessSignature sr=x&sig=y&se=1893456000&skn=z").Token(context.Background(), "")
	require.NoError(t, err)
	assert.Equal(t, time.Unix(1893456000, 0), tok.ExpiresOn)
}

type fakeTokenCredential struct {
	scopes []string
	err    error
}

func (f *fakeTokenCredential) GetToken(_ context.Context, o policy.TokenRequestOptions) (azcore.AccessToken, error) {
	f.scopes = o.Scopes
	return azcore.AccessToken{Token: "eyJ.jwt", ExpiresOn: time.Unix(2_000_000_000, 0)}, f.err
}

func TestEntraCredential(t *testing.T) {
	fc := &fakeTokenCredential{}
	tok, err := NewEntraCredential(fc).Token(context.Background(), "http://h/hc/")
	require.NoError(t, err)
	assert.Equal(t, "eyJ.jwt", tok.Value)
	assert.Equal(t, []string{"https://relay.azure.net/.default"}, fc.scopes)

	fc.err = errors.New("no login")
	_, err = NewEntraCredential(fc).Token(context.Background(), "http://h/hc/")
	assert.ErrorContains(t, err, "no login")
}

func TestTokenCacheReuseAndRenew(t *testing.T) {
	calls := 0
	c := &tokenCache{cred: credFunc(func() Token {
		calls++
		return Token{Value: strconv.Itoa(calls), ExpiresOn: time.Now().Add(time.Hour)}
	})}
	a, _ := c.get(context.Background(), "r")
	b, _ := c.get(context.Background(), "r")
	assert.Equal(t, a, b)
	f, _ := c.fresh(context.Background(), "r")
	assert.NotEqual(t, a.Value, f.Value)
	// A token inside its renewal margin (5 min of an hour) is replaced.
	c.issued = time.Now().Add(-time.Hour)
	c.tok.ExpiresOn = time.Now().Add(time.Minute)
	d, _ := c.get(context.Background(), "r")
	assert.NotEqual(t, f.Value, d.Value)
}

type credFunc func() Token

func (f credFunc) Token(context.Context, string) (Token, error) { return f(), nil }
