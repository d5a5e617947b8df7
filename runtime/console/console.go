// Package console is the operators' web console: pages for tenants and
// workspaces, runs (state history, plan diff, live log, diagnostics,
// outputs, approve and cancel), the agent fleet and the audit log.
//
// The pages are plain HTML, CSS and JavaScript modules embedded in the
// binary (no build step, nothing fetched from elsewhere at run time). They
// call the ops API (/v1/...) on the origin that served them, with the
// credential the operator gave, so the API decides what they may see and
// do; the console only hides what the API would refuse.
//
// Two programs serve it: the ops server on its local listener (on-host
// use, the operator pastes an API key or token), and `opsbot ui` on the
// operator's machine, which forwards /v1 to the ops server through the
// relay with the operator's own credential (cmd/opsbot/ui.go).
package console

import (
	"bytes"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"net/url"
	"strings"

	tfjson "github.com/hashicorp/terraform-json"

	"github.com/botehq/platform/runtime/planrender"
)

//go:embed assets
var assets embed.FS

// Prefix is the path the console is served under.
const Prefix = "/ui/"

// maxPlanBytes bounds the plan read for rendering (the agent's plan is
// smaller: runproto.MaxPlanBytes).
const maxPlanBytes = 64 << 20

// Config configures the console handler.
type Config struct {
	// API serves the ops API (/v1/...): the console renders a run's plan
	// from GET /v1/tenants/{tenant}/runs/{run}/plan asked of it with the
	// browser's own Authorization header. Required.
	API http.Handler
}

// Validate reports the first invalid field.
func (c Config) Validate() error {
	if c.API == nil {
		return errors.New("console config: API is required")
	}
	return nil
}

// New returns the handler of everything under Prefix: the pages, and
// GET /ui/render/tenants/{tenant}/runs/{run}/plan, the run's plan as
// `opsbot runs show --plan` prints it (package planrender).
func New(cfg Config) (http.Handler, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	static, err := fs.Sub(assets, "assets")
	if err != nil {
		return nil, err
	}
	files := http.StripPrefix(Prefix, http.FileServerFS(static))
	mux := http.NewServeMux()
	mux.HandleFunc("GET /ui/render/tenants/{tenant}/runs/{run}/plan", func(w http.ResponseWriter, r *http.Request) {
		renderPlan(w, r, cfg.API)
	})
	mux.Handle("GET /ui/", files)
	mux.HandleFunc("GET /ui", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, Prefix, http.StatusMovedPermanently)
	})
	return secureHeaders(mux), nil
}

// secureHeaders keeps the pages to their own origin: scripts, styles and
// API calls from it only, never framed, no referrer; and no string ever
// reaches an HTML or script sink (Trusted Types, with no policy to make
// one: the pages build elements, see dom.js).
func secureHeaders(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hd := w.Header()
		hd.Set("Content-Security-Policy", "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'; require-trusted-types-for 'script'; trusted-types 'none'")
		hd.Set("X-Content-Type-Options", "nosniff")
		hd.Set("Referrer-Policy", "no-referrer")
		hd.Set("Cache-Control", "no-cache")
		h.ServeHTTP(w, r)
	})
}

// renderPlan asks api for the run's plan with the caller's credential and
// answers it rendered as text; an API refusal is passed on as it is.
func renderPlan(w http.ResponseWriter, r *http.Request, api http.Handler) {
	path := "/v1/tenants/" + url.PathEscape(r.PathValue("tenant")) + "/runs/" + url.PathEscape(r.PathValue("run")) + "/plan"
	req, err := http.NewRequestWithContext(r.Context(), http.MethodGet, path, nil)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	req.RemoteAddr = r.RemoteAddr
	req.Host = r.Host
	for _, k := range []string{"Authorization", "X-Forwarded-For"} {
		if v := r.Header.Get(k); v != "" {
			req.Header.Set(k, v)
		}
	}
	rec := &recorder{header: http.Header{}}
	api.ServeHTTP(rec, req)
	if rec.status == 0 {
		rec.status = http.StatusOK
	}
	w.Header().Set("Cache-Control", "no-store")
	if rec.status != http.StatusOK || rec.overflow {
		if rec.overflow {
			rec.status, rec.body = http.StatusBadGateway, *bytes.NewBufferString(`{"error":{"code":"internal","message":"the plan is too large to render"}}`)
		}
		w.Header().Set("Content-Type", rec.header.Get("Content-Type"))
		w.WriteHeader(rec.status)
		_, _ = w.Write(rec.body.Bytes())
		return
	}
	var p tfjson.Plan
	p.UseJSONNumber(true)
	if err := json.Unmarshal(rec.body.Bytes(), &p); err != nil {
		writeError(w, http.StatusBadGateway, "cannot read the plan: "+err.Error())
		return
	}
	var out strings.Builder
	if err := planrender.Render(&out, &p); err != nil {
		writeError(w, http.StatusInternalServerError, "cannot render the plan: "+err.Error())
		return
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	_, _ = w.Write([]byte(out.String()))
}

// writeError answers in the API's error shape, which the pages read.
func writeError(w http.ResponseWriter, status int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]any{"error": map[string]string{"code": "internal", "message": msg}})
}

// recorder keeps an in-process response, up to maxPlanBytes.
type recorder struct {
	header   http.Header
	status   int
	body     bytes.Buffer
	overflow bool
}

func (r *recorder) Header() http.Header { return r.header }

func (r *recorder) WriteHeader(status int) {
	if r.status == 0 {
		r.status = status
	}
}

func (r *recorder) Write(p []byte) (int, error) {
	r.WriteHeader(http.StatusOK)
	if r.body.Len()+len(p) > maxPlanBytes {
		r.overflow = true
		return 0, fmt.Errorf("response over %d bytes", maxPlanBytes)
	}
	return r.body.Write(p)
}
