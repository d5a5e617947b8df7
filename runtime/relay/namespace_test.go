package relay

import (
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestParseNamespace(t *testing.T) {
	tests := []struct {
		name string
		in   string
		opts []NamespaceOption
		want Namespace
		err  string
	}{
		{name: "bare public default", in: "myns", want: Namespace{Host: "myns.servicebus.windows.net"}},
		{name: "bare gov", in: "myns", opts: []NamespaceOption{InCloud(AzureUSGovernment)}, want: Namespace{Host: "myns.servicebus.usgovcloudapi.net"}},
		{name: "bare china", in: "MyNS", opts: []NamespaceOption{InCloud(AzureChina)}, want: Namespace{Host: "myns.servicebus.chinacloudapi.cn"}},
		{name: "bare custom suffix", in: "myns", opts: []NamespaceOption{WithSuffix(".servicebus.cloudapi.de")}, want: Namespace{Host: "myns.servicebus.cloudapi.de"}},
		{name: "gov host kept", in: "myns.servicebus.usgovcloudapi.net", want: Namespace{Host: "myns.servicebus.usgovcloudapi.net"}},
		{name: "host ignores cloud option", in: "myns.servicebus.chinacloudapi.cn", opts: []NamespaceOption{InCloud(AzureUSGovernment)}, want: Namespace{Host: "myns.servicebus.chinacloudapi.cn"}},
		{name: "loopback with port", in: "127.0.0.1:9354", want: Namespace{Host: "127.0.0.1:9354"}},
		{name: "sb url", in: "sb://myns.servicebus.windows.net/", want: Namespace{Host: "myns.servicebus.windows.net"}},
		{name: "https url", in: "https://myns.servicebus.usgovcloudapi.net", want: Namespace{Host: "myns.servicebus.usgovcloudapi.net"}},
		{
			name: "connection string",
			in:   "Endpoint=sb://myns.servicebus.windows.net/;SharedAccessKeyName=send;SharedAccessKey=abc+/=;EntityPath=opsbot",
			want: Namespace{Host: "myns.servicebus.windows.net", KeyName: "send", Key: "abc+/=", EntityPath: "opsbot"},
		},
		{
			name: "connection string gov, any key order and case, unknown keys ignored",
			in:   "entitypath=ops;TransportType=Amqp; sharedaccesskey=k== ;SharedAccessKeyName=listen;Endpoint=sb://contoso.servicebus.usgovcloudapi.net/",
			want: Namespace{Host: "contoso.servicebus.usgovcloudapi.net", KeyName: "listen", Key: "k==", EntityPath: "ops"},
		},
		{
			name: "connection string with signature",
			in:   "Endpoint=sb://myns.servicebus.chinacloudapi.cn/;SharedAccessSignature=SharedAccessSignature sr=a&sig=b&se=1&skn=c",
			want: Namespace{Host: "myns.servicebus.chinacloudapi.cn", SharedAccessSignature: "SharedAccessSignature sr=a&sig=b&se=1&skn=c"},
		},
		{name: "empty", in: " ", err: "empty"},
		{name: "bad label", in: "my_ns", err: "letters, digits"},
		{name: "leading hyphen", in: "-myns", err: "inner hyphens"},
		{name: "host with path", in: "https://myns.servicebus.windows.net/hc", err: "no path"},
		{name: "ftp scheme", in: "ftp://myns.servicebus.windows.net", err: "unsupported scheme"},
		{name: "conn string without endpoint", in: "SharedAccessKeyName=a;SharedAccessKey=b", err: "no Endpoint"},
		{name: "conn string https endpoint", in: "Endpoint=https://myns.servicebus.windows.net/;SharedAccessKeyName=a;SharedAccessKey=b", err: "sb://"},
		{name: "conn string key without name", in: "Endpoint=sb://myns.servicebus.windows.net/;SharedAccessKey=b", err: "both"},
		{name: "conn string garbage part", in: "Endpoint=sb://x.y/;garbage", err: "part 2 is not key=value"},
		{name: "empty port", in: "myns.servicebus.windows.net:", err: "empty port"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseNamespace(tt.in, tt.opts...)
			if tt.err != "" {
				require.ErrorIs(t, err, ErrInvalidNamespace)
				assert.ErrorContains(t, err, tt.err)
				if strings.Contains(tt.in, "=") {
					assert.NotContains(t, err.Error(), "garbage", "a connection string part is never echoed: it may be a key")
				}
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tt.want, got)
		})
	}
}

func TestConnectionStringRoundTrip(t *testing.T) {
	ns := Namespace{Host: "127.0.0.1:9354", KeyName: "listen", Key: "a+b/c==", EntityPath: "hc"}
	got, err := ParseNamespace(ns.ConnectionString())
	require.NoError(t, err)
	assert.Equal(t, ns, got)
	assert.IsType(t, &SASCredential{}, got.Credential())
	assert.Nil(t, Namespace{Host: "h"}.Credential())
}

func TestCloudByName(t *testing.T) {
	for in, want := range map[string]Cloud{"public": AzurePublic, "AzureUSGovernment": AzureUSGovernment, "usgovernment": AzureUSGovernment, "AzureChinaCloud": AzureChina, "china": AzureChina} {
		got, err := CloudByName(in)
		require.NoError(t, err, in)
		assert.Equal(t, want, got, in)
	}
	_, err := CloudByName("germany")
	assert.Error(t, err)
}

func TestAppPath(t *testing.T) {
	tests := []struct{ path, hc, want string }{
		{"/hc", "hc", "/"},
		{"/hc/", "hc", "/"},
		{"/HC/v1/status", "hc", "/v1/status"},
		{"/ops/relay/v1/runs", "ops/relay", "/v1/runs"},
		{"/hcx/v1", "hc", "/hcx/v1"},
	}
	for _, tt := range tests {
		assert.Equal(t, tt.want, stripEntity(tt.path, tt.hc), tt.path)
	}
}

func TestClassifyStatus(t *testing.T) {
	tests := []struct {
		op   string
		code int
		desc string
		want error
		perm bool
	}{
		{"listen", 401, "InvalidSignature", ErrUnauthorized, true},
		{"listen", 403, "'Listen' claim(s) are required", ErrUnauthorized, true},
		{"listen", 403, "QuotaExceeded: limit reached", ErrQuotaExceeded, false},
		{"listen", 404, "EndpointNotFound", ErrNotFound, true},
		{"connect", 404, "There are no listeners connected for the endpoint", ErrNoListener, false},
		{"request", 502, "Bad Gateway", ErrNoListener, false},
		{"request", 504, "", ErrTimeout, false},
		{"listen", 500, "", ErrServiceError, false},
	}
	for _, tt := range tests {
		e := newStatusError(tt.op, tt.code, tt.desc)
		assert.ErrorIs(t, e, tt.want, "%s %d", tt.op, tt.code)
		assert.Equal(t, tt.perm, e.Permanent(), "%s %d", tt.op, tt.code)
	}
}

func TestBackoff(t *testing.T) {
	l := &Listener{cfg: ListenerConfig{MinBackoff: 100 * time.Millisecond, MaxBackoff: time.Second}}
	for i := 0; i < 50; i++ {
		assert.LessOrEqual(t, l.backoff(0), l.cfg.MinBackoff/2)
		d := l.backoff(10)
		assert.GreaterOrEqual(t, d, l.cfg.MaxBackoff*3/4)
		assert.LessOrEqual(t, d, l.cfg.MaxBackoff*5/4)
		d2 := l.backoff(2)
		assert.GreaterOrEqual(t, d2, 150*time.Millisecond)
		assert.LessOrEqual(t, d2, 250*time.Millisecond)
	}
}
