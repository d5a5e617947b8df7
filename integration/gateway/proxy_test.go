package gateway

import (
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"sync/atomic"
	"testing"
)

// switchProxy forwards HTTP and WebSocket traffic to a target that can be
// switched, like a load balancer moving traffic off a stopping replica.
type switchProxy struct {
	srv    *httptest.Server
	target atomic.Value // string
}

func newSwitchProxy(t *testing.T, target string) *switchProxy {
	t.Helper()
	p := &switchProxy{}
	p.target.Store(target)
	p.srv = httptest.NewServer(&httputil.ReverseProxy{Rewrite: func(r *httputil.ProxyRequest) {
		u, _ := url.Parse(p.target.Load().(string))
		r.SetURL(u)
	}})
	t.Cleanup(p.srv.Close)
	return p
}

func (p *switchProxy) URL() string { return p.srv.URL }

var _ http.Handler = (*httputil.ReverseProxy)(nil)
