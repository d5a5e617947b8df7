package console_test

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	tfjson "github.com/hashicorp/terraform-json"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/botehq/platform/runtime/console"
	"github.com/botehq/platform/runtime/planrender"
)

// fakeAPI answers the plan route with the planrender test plan of dir to
// "Bearer good" and 403 to anyone else, and records what it was asked.
type fakeAPI struct {
	plan []byte
	asks []*http.Request
}

func (f *fakeAPI) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.asks = append(f.asks, r)
	if r.Header.Get("Authorization") != "Bearer good" {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusForbidden)
		w.Write([]byte(`{"error":{"code":"forbidden","message":"no role"}}`))
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Write(f.plan)
}

// keptPlan is the planrender test plan of dir as a run stores it (Keep),
// and planrender's rendering of it: what the CLI prints.
func keptPlan(t *testing.T, dir string) ([]byte, string) {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("..", "planrender", "testdata", dir, "plan.json"))
	require.NoError(t, err)
	var p tfjson.Plan
	p.UseJSONNumber(true)
	require.NoError(t, json.Unmarshal(data, &p))
	kept, err := json.Marshal(planrender.Keep(&p))
	require.NoError(t, err)
	var out bytes.Buffer
	require.NoError(t, planrender.Render(&out, planrender.Keep(&p)))
	return kept, out.String()
}

func get(t *testing.T, h http.Handler, path, auth string) *httptest.ResponseRecorder {
	t.Helper()
	req := httptest.NewRequest(http.MethodGet, path, nil)
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}

func TestRenderedPlanIsTheCLIs(t *testing.T) {
	for _, dir := range []string{"create", "replace", "update", "destroy"} {
		t.Run(dir, func(t *testing.T) {
			plan, want := keptPlan(t, dir)
			api := &fakeAPI{plan: plan}
			h, err := console.New(console.Config{API: api})
			require.NoError(t, err)
			rec := get(t, h, "/ui/render/tenants/contoso/runs/run-0123456789abcdef/plan", "Bearer good")
			require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
			assert.Equal(t, "text/plain; charset=utf-8", rec.Header().Get("Content-Type"))
			assert.Equal(t, want, rec.Body.String())
			require.Len(t, api.asks, 1)
			assert.Equal(t, "/v1/tenants/contoso/runs/run-0123456789abcdef/plan", api.asks[0].URL.Path)
		})
	}
}

func TestRenderedPlanKeepsTheAPIsRefusal(t *testing.T) {
	plan, _ := keptPlan(t, "create")
	h, err := console.New(console.Config{API: &fakeAPI{plan: plan}})
	require.NoError(t, err)
	for _, auth := range []string{"", "Bearer other"} {
		rec := get(t, h, "/ui/render/tenants/contoso/runs/run-0123456789abcdef/plan", auth)
		assert.Equal(t, http.StatusForbidden, rec.Code)
		assert.JSONEq(t, `{"error":{"code":"forbidden","message":"no role"}}`, rec.Body.String())
	}
}

func TestRenderedPlanBadJSON(t *testing.T) {
	h, err := console.New(console.Config{API: &fakeAPI{plan: []byte(`{"resource_changes": "not a list"}`)}})
	require.NoError(t, err)
	rec := get(t, h, "/ui/render/tenants/contoso/runs/run-0123456789abcdef/plan", "Bearer good")
	assert.Equal(t, http.StatusBadGateway, rec.Code)
	assert.Contains(t, rec.Body.String(), "cannot read the plan")
}

func TestPages(t *testing.T) {
	h, err := console.New(console.Config{API: &fakeAPI{}})
	require.NoError(t, err)
	for _, tt := range []struct {
		path, contentType, contains string
		status                      int
	}{
		{"/ui/", "text/html; charset=utf-8", `<script type="module" src="app.js">`, 200},
		{"/ui/app.js", "text/javascript; charset=utf-8", "import", 200},
		{"/ui/style.css", "text/css; charset=utf-8", "prefers-color-scheme: dark", 200},
		{"/ui/nothing.js", "text/plain; charset=utf-8", "404", 404},
	} {
		rec := get(t, h, tt.path, "")
		assert.Equal(t, tt.status, rec.Code, tt.path)
		assert.Equal(t, tt.contentType, rec.Header().Get("Content-Type"), tt.path)
		assert.Contains(t, rec.Body.String(), tt.contains, tt.path)
		csp := rec.Header().Get("Content-Security-Policy")
		assert.Contains(t, csp, "script-src 'self'", tt.path)
		assert.Contains(t, csp, "frame-ancestors 'none'", tt.path)
		assert.Contains(t, csp, "require-trusted-types-for 'script'; trusted-types 'none'", tt.path)
		assert.Equal(t, "nosniff", rec.Header().Get("X-Content-Type-Options"))
	}
	rec := get(t, h, "/ui", "")
	assert.Equal(t, http.StatusMovedPermanently, rec.Code)
	assert.Equal(t, "/ui/", rec.Header().Get("Location"))
}

// TestNoRemoteResources: the pages load nothing from elsewhere (no CDN, no
// network at run time) and build no markup from strings.
func TestNoRemoteResources(t *testing.T) {
	files, err := filepath.Glob("assets/*")
	require.NoError(t, err)
	require.NotEmpty(t, files)
	for _, f := range files {
		data, err := os.ReadFile(f)
		require.NoError(t, err)
		s := string(data)
		assert.NotRegexp(t, `(?i)(src|href)=["']?(https?:)?//`, s, f)
		assert.NotContains(t, s, "@import", f)
		for _, sink := range []string{"innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval("} {
			assert.False(t, strings.Contains(s, sink), "%s uses %s", f, sink)
		}
	}
}

func TestConfigValidate(t *testing.T) {
	_, err := console.New(console.Config{})
	assert.ErrorContains(t, err, "API is required")
}
