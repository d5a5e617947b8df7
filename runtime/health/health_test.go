package health

import (
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestEndpoints(t *testing.T) {
	reg := NewRegistry()
	c := prometheus.NewCounter(prometheus.CounterOpts{Name: "bote_test_total", Help: "test"})
	reg.MustRegister(c)
	c.Add(3)
	var down atomic.Bool
	down.Store(true)
	mux := http.NewServeMux()
	Handle(mux, reg, func() error {
		if down.Load() {
			return errors.New("relay not connected")
		}
		return nil
	})
	srv := httptest.NewServer(mux)
	defer srv.Close()
	get := func(path string) (int, string) {
		t.Helper()
		resp, err := http.Get(srv.URL + path)
		require.NoError(t, err)
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	code, body := get("/healthz")
	assert.Equal(t, 200, code)
	assert.Equal(t, "ok\n", body)
	code, body = get("/readyz")
	assert.Equal(t, 503, code)
	assert.Equal(t, "not ready: relay not connected\n", body)
	down.Store(false)
	code, body = get("/readyz")
	assert.Equal(t, 200, code)
	assert.Equal(t, "ready\n", body)
	code, body = get("/metrics")
	assert.Equal(t, 200, code)
	assert.Contains(t, body, "bote_test_total 3")
	assert.True(t, strings.Contains(body, "go_goroutines") && strings.Contains(body, "process_"), "Go and process collectors")
}
