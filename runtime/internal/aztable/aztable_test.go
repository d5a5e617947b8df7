package aztable_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/data/aztables"

	"github.com/botehq/platform/runtime/internal/aztable"
)

// tableService answers every create with status and, on failure, code.
func tableService(t *testing.T, status int, code string) *aztables.ServiceClient {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost || !strings.HasSuffix(r.URL.Path, "/Tables") {
			t.Errorf("unexpected request %s %s", r.Method, r.URL.Path)
		}
		w.Header().Set("Content-Type", "application/json")
		if code != "" {
			w.Header().Set("x-ms-error-code", code)
		}
		w.WriteHeader(status)
		if code != "" {
			fmt.Fprintf(w, `{"odata.error":{"code":%q,"message":{"lang":"en-US","value":"%s"}}}`, code, code)
		} else {
			fmt.Fprint(w, `{"TableName":"things"}`)
		}
	}))
	t.Cleanup(srv.Close)
	svc, err := aztables.NewServiceClientWithNoCredential(srv.URL+"/", &aztables.ClientOptions{
		ClientOptions: policy.ClientOptions{Retry: policy.RetryOptions{MaxRetries: -1}},
	})
	if err != nil {
		t.Fatal(err)
	}
	return svc
}

func TestCreate(t *testing.T) {
	for _, tc := range []struct {
		name    string
		status  int
		code    string
		wantErr string
	}{
		{name: "created", status: http.StatusCreated},
		{name: "already exists", status: http.StatusConflict, code: string(aztables.TableAlreadyExists)},
		{name: "being deleted", status: http.StatusConflict, code: string(aztables.TableBeingDeleted), wantErr: "cannot create table things"},
		{name: "forbidden", status: http.StatusForbidden, code: "AuthorizationFailure", wantErr: "cannot create table things"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := aztable.Create(context.Background(), tableService(t, tc.status, tc.code), "things")
			if tc.wantErr == "" {
				if err != nil {
					t.Fatalf("Create: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) || !strings.Contains(err.Error(), tc.code) {
				t.Fatalf("Create error = %v, want %q naming %s", err, tc.wantErr, tc.code)
			}
		})
	}
}

func TestStatusCodeAndTimeKey(t *testing.T) {
	if got := aztable.StatusCode(&azcore.ResponseError{StatusCode: 412}); got != 412 {
		t.Errorf("StatusCode of a 412 = %d", got)
	}
	if got := aztable.StatusCode(fmt.Errorf("wrapped: %w", &azcore.ResponseError{StatusCode: 404})); got != 404 {
		t.Errorf("StatusCode of a wrapped 404 = %d", got)
	}
	if got := aztable.StatusCode(errors.New("dial tcp: refused")); got != 0 {
		t.Errorf("StatusCode of a network error = %d", got)
	}
	a := time.Date(2026, 1, 2, 3, 4, 5, 6, time.FixedZone("x", 3600))
	b := a.Add(time.Nanosecond * 1000)
	if aztable.TimeKey(a) >= aztable.TimeKey(b) || aztable.TimeKey(a) != "2026-01-02T02:04:05.000000006Z" || aztable.TimeKey(time.Time{}) != "" {
		t.Errorf("TimeKey: %q, %q", aztable.TimeKey(a), aztable.TimeKey(b))
	}
}

// TestDataChunks: data larger than a property is split over several,
// never inside a UTF-8 sequence, and joined back whole.
func TestDataChunks(t *testing.T) {
	for _, data := range []string{"", "small", strings.Repeat("ü", aztable.ChunkBytes), strings.Repeat("a", 2*aztable.ChunkBytes+1)} {
		e := map[string]any{"PartitionKey": "p", "RowKey": "r"}
		aztable.SetData(e, []byte(data))
		for k, v := range e {
			if s, ok := v.(string); ok && strings.HasPrefix(k, "Data") && (len(s) > aztable.ChunkBytes || !utf8.ValidString(s)) {
				t.Errorf("%s: %d bytes, valid UTF-8 %v", k, len(s), utf8.ValidString(s))
			}
		}
		raw, err := json.Marshal(e)
		if err != nil {
			t.Fatal(err)
		}
		got, _, err := aztable.GetData(raw)
		if err != nil || string(got) != data {
			t.Errorf("round trip of %d bytes: got %d bytes, %v", len(data), len(got), err)
		}
	}
}

func TestName(t *testing.T) {
	for _, tc := range []struct{ prefix, want string }{
		{"", "botenotify"},
		{"prod", "prodnotify"},
	} {
		if got := aztable.Name(tc.prefix, "notify", "botenotify"); got != tc.want {
			t.Errorf("Name(%q) = %q, want %q", tc.prefix, got, tc.want)
		}
	}
}
