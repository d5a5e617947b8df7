package platform

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"sync"
	"time"
)

// balancer stands in for the load balancer in front of replicas in Azure
// (Container Apps ingress): it spreads requests, WebSocket upgrades
// included, over the replicas round robin and passes a request on to the
// next replica when one refuses the connection (killed). It buffers
// request bodies (up to maxBody) so that the retry can send them again.
type balancer struct {
	ln  net.Listener
	srv *http.Server

	mu       sync.Mutex
	backends []*url.URL
	next     int
}

const maxBody = 1 << 20

func newBalancer() (*balancer, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("cannot start a balancer: %w", err)
	}
	b := &balancer{ln: ln}
	b.srv = &http.Server{Handler: b, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = b.srv.Serve(ln) }()
	return b, nil
}

// URL is where clients reach the replicas.
func (b *balancer) URL() string { return "http://" + b.ln.Addr().String() }

// set makes backend i (added if new) the replica at rawURL.
func (b *balancer) set(i int, rawURL string) error {
	u, err := url.Parse(rawURL)
	if err != nil {
		return err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	for len(b.backends) <= i {
		b.backends = append(b.backends, nil)
	}
	b.backends[i] = u
	return nil
}

func (b *balancer) close() { _ = b.srv.Close() }

func (b *balancer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(io.LimitReader(r.Body, maxBody+1))
	if err != nil || len(body) > maxBody {
		http.Error(w, "balancer: cannot buffer the request body", http.StatusBadGateway)
		return
	}
	b.mu.Lock()
	backends := append([]*url.URL(nil), b.backends...)
	start := b.next
	b.next++
	b.mu.Unlock()
	for k := range backends {
		target := backends[(start+k)%len(backends)]
		if target == nil {
			continue
		}
		refused := false
		proxy := &httputil.ReverseProxy{
			Rewrite: func(pr *httputil.ProxyRequest) {
				pr.SetURL(target)
				pr.Out.Host = pr.In.Host
			},
			ErrorHandler: func(w http.ResponseWriter, _ *http.Request, err error) {
				var op *net.OpError
				if errors.As(err, &op) && op.Op == "dial" {
					refused = true // nothing written yet: try the next replica
					return
				}
				http.Error(w, "balancer: "+err.Error(), http.StatusBadGateway)
			},
		}
		r.Body = io.NopCloser(bytes.NewReader(body))
		proxy.ServeHTTP(w, r)
		if !refused {
			return
		}
	}
	http.Error(w, "balancer: no replica answers", http.StatusBadGateway)
}
