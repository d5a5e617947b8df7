package connqueue

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestParseConnectionString(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    ConnectionString
		wantErr string
	}{
		{
			name: "emulator with explicit endpoints",
			in:   "DefaultEndpointsProtocol=http;AccountName=dev;AccountKey=a2V5==;QueueEndpoint=http://127.0.0.1:1/dev/;TableEndpoint=http://127.0.0.1:2/dev;BlobEndpoint=http://127.0.0.1:3/dev;",
			want: ConnectionString{AccountName: "dev", AccountKey: "a2V5==", QueueEndpoint: "http://127.0.0.1:1/dev", TableEndpoint: "http://127.0.0.1:2/dev", BlobEndpoint: "http://127.0.0.1:3/dev"},
		},
		{
			name: "suffix from config (gov cloud)",
			in:   "DefaultEndpointsProtocol=https;AccountName=acct;AccountKey=k;EndpointSuffix=core.usgovcloudapi.net",
			want: ConnectionString{AccountName: "acct", AccountKey: "k", QueueEndpoint: "https://acct.queue.core.usgovcloudapi.net", TableEndpoint: "https://acct.table.core.usgovcloudapi.net", BlobEndpoint: "https://acct.blob.core.usgovcloudapi.net"},
		},
		{name: "no key", in: "AccountName=a;EndpointSuffix=x", wantErr: "AccountKey"},
		{name: "no endpoint", in: "AccountName=a;AccountKey=k", wantErr: "Endpoint"},
		{name: "garbage", in: "AccountName", wantErr: "key=value"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseConnectionString(tt.in)
			if tt.wantErr != "" {
				require.ErrorContains(t, err, tt.wantErr)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tt.want, got)
		})
	}
}

func TestConfigValidate(t *testing.T) {
	for name, c := range map[string]Config{
		"ConnectionString or Client": {},
		"SASLifetime":                {ConnectionString: "x", SASLifetime: 48 * time.Hour},
		"MessageTTL":                 {ConnectionString: "x", MessageTTL: -5},
	} {
		assert.ErrorContains(t, c.Validate(), name)
	}
}
