package opsapi

import (
	"encoding/json"
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// schema is the subset of JSON Schema our OpenAPI document uses.
type schema struct {
	Ref                  string             `json:"$ref"`
	Type                 string             `json:"type"`
	Format               string             `json:"format"`
	Required             []string           `json:"required"`
	Properties           map[string]*schema `json:"properties"`
	AdditionalProperties *schema            `json:"additionalProperties"`
	Items                *schema            `json:"items"`
	Enum                 []any              `json:"enum"`
}

type mediaType struct {
	Schema *schema `json:"schema"`
}

type responseObj struct {
	Ref     string               `json:"$ref"`
	Content map[string]mediaType `json:"content"`
}

type operation struct {
	Responses map[string]responseObj `json:"responses"`
	Security  *[]any                 `json:"security"`
}

type openAPIDoc struct {
	OpenAPI    string                           `json:"openapi"`
	Paths      map[string]map[string]*operation `json:"paths"`
	Components struct {
		Schemas   map[string]*schema     `json:"schemas"`
		Responses map[string]responseObj `json:"responses"`
	} `json:"components"`
}

func loadDoc(t *testing.T) *openAPIDoc {
	t.Helper()
	var doc openAPIDoc
	require.NoError(t, json.Unmarshal(OpenAPIDocument, &doc))
	require.True(t, strings.HasPrefix(doc.OpenAPI, "3.1"), "OpenAPI 3.1")
	return &doc
}

func (d *openAPIDoc) response(r responseObj) responseObj {
	if r.Ref != "" {
		return d.Components.Responses[strings.TrimPrefix(r.Ref, "#/components/responses/")]
	}
	return r
}

func (d *openAPIDoc) resolve(s *schema) *schema {
	for s != nil && s.Ref != "" {
		s = d.Components.Schemas[strings.TrimPrefix(s.Ref, "#/components/schemas/")]
	}
	return s
}

// check validates v (decoded JSON) against s: types, required fields,
// enums, and no fields the document does not name.
func (d *openAPIDoc) check(s *schema, v any, at string) []string {
	s = d.resolve(s)
	if s == nil {
		return []string{at + ": dangling $ref"}
	}
	var errs []string
	if len(s.Enum) > 0 && !slices.Contains(s.Enum, v) {
		errs = append(errs, fmt.Sprintf("%s: %v is not in enum %v", at, v, s.Enum))
	}
	switch s.Type {
	case "object":
		obj, ok := v.(map[string]any)
		if !ok {
			return append(errs, fmt.Sprintf("%s: want object, got %T", at, v))
		}
		for _, r := range s.Required {
			if _, ok := obj[r]; !ok {
				errs = append(errs, fmt.Sprintf("%s: required field %q missing", at, r))
			}
		}
		for k, fv := range obj {
			switch ps, ok := s.Properties[k]; {
			case ok:
				errs = append(errs, d.check(ps, fv, at+"."+k)...)
			case s.AdditionalProperties != nil:
				errs = append(errs, d.check(s.AdditionalProperties, fv, at+"."+k)...)
			case s.Properties != nil:
				errs = append(errs, fmt.Sprintf("%s: field %q is not documented", at, k))
			}
		}
	case "array":
		arr, ok := v.([]any)
		if !ok {
			return append(errs, fmt.Sprintf("%s: want array, got %T", at, v))
		}
		for i, e := range arr {
			errs = append(errs, d.check(s.Items, e, fmt.Sprintf("%s[%d]", at, i))...)
		}
	case "string":
		str, ok := v.(string)
		if !ok {
			return append(errs, fmt.Sprintf("%s: want string, got %T", at, v))
		}
		if s.Format == "date-time" {
			if _, err := time.Parse(time.RFC3339, str); err != nil {
				errs = append(errs, fmt.Sprintf("%s: %q is not a date-time", at, str))
			}
		}
	case "integer":
		n, ok := v.(float64)
		if !ok || n != float64(int64(n)) {
			errs = append(errs, fmt.Sprintf("%s: want integer, got %v", at, v))
		}
	case "boolean":
		if _, ok := v.(bool); !ok {
			errs = append(errs, fmt.Sprintf("%s: want boolean, got %T", at, v))
		}
	case "":
	default:
		errs = append(errs, fmt.Sprintf("%s: schema type %q not supported by this test", at, s.Type))
	}
	return errs
}

// TestOpenAPIMatchesRoutes: every documented path and method is routed, and
// every route is documented, with the same authentication.
func TestOpenAPIMatchesRoutes(t *testing.T) {
	doc := loadDoc(t)
	s, _ := newTestServer(t, nil)
	var documented, routed []string
	for path, ops := range doc.Paths {
		for method, op := range ops {
			key := strings.ToUpper(method) + " " + path
			documented = append(documented, key)
			public := op.Security != nil && len(*op.Security) == 0
			for _, rt := range s.routes {
				if rt.method+" "+rt.path == key {
					assert.Equal(t, rt.public, public, "%s: documented security disagrees with the route", key)
					if !public {
						assert.Contains(t, op.Responses, "401", "%s: authenticated operations document 401", key)
					}
				}
			}
		}
	}
	for _, rt := range s.routes {
		routed = append(routed, rt.method+" "+rt.path)
	}
	sort.Strings(documented)
	sort.Strings(routed)
	assert.Equal(t, routed, documented)
}

// TestOpenAPIResponseShapes calls every documented operation and checks the
// real responses (successes and errors) against the documented schemas.
func TestOpenAPIResponseShapes(t *testing.T) {
	doc := loadDoc(t)
	_, srv := newTestServer(t, nil)
	for path, ops := range doc.Paths {
		for method, op := range ops {
			for code, ro := range op.Responses {
				name := strings.ToUpper(method) + " " + path + " " + code
				t.Run(name, func(t *testing.T) {
					mt, ok := doc.response(ro).Content["application/json"]
					require.True(t, ok, "responses are documented as application/json")
					require.NotNil(t, mt.Schema)
					body, ok := provoke(t, srv.URL, strings.ToUpper(method), path, code)
					if !ok {
						t.Skipf("no way to provoke %s from a test request", code)
					}
					var v any
					require.NoError(t, json.Unmarshal(body, &v), "body: %s", body)
					assert.Empty(t, doc.check(mt.Schema, v, "$"))
				})
			}
		}
	}
}

// provoke makes the server answer path with status code and returns the
// body; for 101 it returns the first WebSocket message.
func provoke(t *testing.T, base, method, path, code string) ([]byte, bool) {
	t.Helper()
	if strings.Contains(path, "/drift") {
		return provokeDrift(t, method, path, code)
	}
	if strings.Contains(path, "/notifications") {
		return provokeNotifications(t, method, path, code)
	}
	if strings.Contains(path, "/policies") {
		return provokePolicies(t, method, path, code)
	}
	if strings.HasPrefix(path, "/v1/tenants/") {
		return provokeRuns(t, method, path, code)
	}
	if strings.HasPrefix(path, "/v1/keys") {
		return provokeKeys(t, method, path, code)
	}
	if path == "/v1/audit" {
		return provokeAudit(t, method, code)
	}
	if path == "/v1/tenants" && (code == "200" || code == "503") {
		if code == "200" {
			base = newRunsFixture(t).srv.URL // the base server has no run store: 503
		}
		r := do(t, method, base+path, goodKey)
		require.Equal(t, code, strconv.Itoa(r.status), "body: %s", r.body)
		return r.body, true
	}
	if path == "/v1/agents" && code == "404" {
		r := do(t, method, newRunsFixture(t).srv.URL+path+"?tenant=nobody", goodKey)
		require.Equal(t, 404, r.status)
		return r.body, true
	}
	switch code {
	case "101":
		_, srv := newTestServer(t, nil)
		c := dialEvents(t, srv, "")
		ev := readEvent(t, c)
		b, err := json.Marshal(ev)
		require.NoError(t, err)
		return b, true
	case "200":
		r := do(t, method, base+path, goodKey)
		require.Equal(t, 200, r.status)
		return r.body, true
	case "400":
		r := do(t, method, base+path+"?interval=forever", goodKey)
		require.Equal(t, 400, r.status)
		return r.body, true
	case "426":
		r := do(t, method, base+path, goodKey)
		require.Equal(t, 426, r.status)
		return r.body, true
	case "401":
		r := do(t, method, base+path, "bad")
		require.Equal(t, 401, r.status)
		return r.body, true
	case "403":
		r := do(t, method, base+path, forbiddenKey)
		require.Equal(t, 403, r.status)
		return r.body, true
	case "500":
		_, srv := newTestServer(t, func(c *Config) { c.Agents = failingAgents{} })
		r := do(t, method, srv.URL+path, goodKey)
		require.Equal(t, 500, r.status)
		return r.body, true
	}
	return nil, false
}

// The schema checker must itself catch drift, or the tests above prove
// nothing.
func TestSchemaCheckCatchesDrift(t *testing.T) {
	doc := loadDoc(t)
	status := &schema{Ref: "#/components/schemas/Status"}
	tests := []struct {
		name string
		body string
		want string
	}{
		{"missing field", `{"version":"1","started_at":"2026-01-01T00:00:00Z","uptime_seconds":1,"relay_connected":true,"time":"2026-01-01T00:00:00Z"}`, `"agent_count" missing`},
		{"undocumented field", `{"version":"1","started_at":"2026-01-01T00:00:00Z","uptime_seconds":1,"relay_connected":true,"agent_count":0,"time":"2026-01-01T00:00:00Z","extra":1}`, `"extra" is not documented`},
		{"wrong type", `{"version":"1","started_at":"2026-01-01T00:00:00Z","uptime_seconds":"1","relay_connected":true,"agent_count":0,"time":"2026-01-01T00:00:00Z"}`, "want integer"},
		{"bad date", `{"version":"1","started_at":"yesterday","uptime_seconds":1,"relay_connected":true,"agent_count":0,"time":"2026-01-01T00:00:00Z"}`, "not a date-time"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var v any
			require.NoError(t, json.Unmarshal([]byte(tt.body), &v))
			assert.Contains(t, strings.Join(doc.check(status, v, "$"), "\n"), tt.want)
		})
	}
	var v any
	require.NoError(t, json.Unmarshal([]byte(`{"agents":[{"id":"a/b","tenant":"a","name":"b","state":"sleeping"}]}`), &v))
	assert.Contains(t, strings.Join(doc.check(&schema{Ref: "#/components/schemas/AgentList"}, v, "$"), "\n"), "not in enum")
}
