package main

import (
	"context"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi/internals"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/botehq/platform/components/images"
	"github.com/botehq/platform/components/infratest"
)

// The stack tests do not compile the runtime (components/images tests
// the build): each image is a small deterministic stand-in whose digest
// depends on the binary's name and version, pushed to an in-process
// registry that answers for every login server.

const fakeVersion = "v0.0.0-20261206070000-0123456789ab"

func fakeBuild(_ context.Context, cfg *Config) ([]*images.Image, error) {
	var out []*images.Image
	for _, b := range images.Binaries {
		img, err := mutate.Append(mutate.MediaType(empty.Image, types.OCIManifestSchema1),
			mutate.Addendum{Layer: static.NewLayer([]byte(b.Name+" "+fakeVersion+" terraform "+cfg.Terraform.Version), types.OCILayer)})
		if err != nil {
			return nil, err
		}
		p := v1.Platform{OS: "linux", Architecture: "amd64"}
		idx := mutate.AppendManifests(mutate.IndexMediaType(empty.Index, types.OCIImageIndex), mutate.IndexAddendum{Add: img, Descriptor: v1.Descriptor{Platform: &p}})
		d, err := idx.Digest()
		if err != nil {
			return nil, err
		}
		out = append(out, &images.Image{Binary: b, Index: idx, Digest: d, Version: fakeVersion})
	}
	return out, nil
}

// fakeRegistry is the in-process registry every push of the tests goes to.
type fakeRegistry struct {
	mu  sync.Mutex
	srv *httptest.Server
}

var testRegistry fakeRegistry

func newRegistryServer() *httptest.Server {
	return httptest.NewServer(registry.New(registry.Logger(log.New(io.Discard, "", 0))))
}

// reset gives the test a fresh, empty registry.
func (r *fakeRegistry) reset(t *testing.T) {
	r.mu.Lock()
	defer r.mu.Unlock()
	shared, srv := r.srv, newRegistryServer()
	r.srv = srv
	t.Cleanup(func() {
		r.mu.Lock()
		defer r.mu.Unlock()
		r.srv = shared
		srv.Close()
	})
}

// RoundTrip sends every request, whatever its host, to the registry.
func (r *fakeRegistry) RoundTrip(req *http.Request) (*http.Response, error) {
	r.mu.Lock()
	srv := r.srv
	r.mu.Unlock()
	if srv == nil {
		return nil, &url.Error{Op: req.Method, URL: req.URL.String(), Err: http.ErrServerClosed}
	}
	u, _ := url.Parse(srv.URL)
	req = req.Clone(req.Context())
	req.URL.Scheme, req.URL.Host = u.Scheme, u.Host
	return http.DefaultTransport.RoundTrip(req)
}

// has reports whether the registry holds ref (server/repo@digest).
func (r *fakeRegistry) has(t *testing.T, ref string) bool {
	t.Helper()
	d, err := name.NewDigest(ref)
	require.NoError(t, err)
	_, err = remote.Head(d, remote.WithTransport(r))
	return err == nil
}

func (r *fakeRegistry) catalog(t *testing.T) []string {
	t.Helper()
	reg, err := name.NewRegistry("botedevacr.azurecr.io")
	require.NoError(t, err)
	repos, err := remote.Catalog(context.Background(), reg, remote.WithTransport(r))
	require.NoError(t, err)
	return repos
}

// issued records the token ids the fake password issuer was asked for.
var issued struct {
	sync.Mutex
	ids []string
}

func init() {
	testRegistry.srv = newRegistryServer() // shared by every test that does not reset it
	buildImages = fakeBuild
	issuePassword = func(*Config) func(context.Context, string) (string, error) {
		return func(_ context.Context, id string) (string, error) {
			issued.Lock()
			defer issued.Unlock()
			issued.ids = append(issued.ids, id)
			return "password-of-" + id[strings.LastIndex(id, "/")+1:], nil
		}
	}
	pushAuth = func(*Config) func(context.Context, string) ([]remote.Option, error) {
		return func(context.Context, string) ([]remote.Option, error) {
			return []remote.Option{remote.WithTransport(&testRegistry)}, nil
		}
	}
}

var pinned = regexp.MustCompile(`[a-z0-9.-]+\.azurecr\.(io|us|cn)/bote/[a-z]+@sha256:[0-9a-f]{64}`)

// imagesOf collects every pinned image reference in the apps' inputs.
func imagesOf(v any, into map[string]bool) {
	switch v := v.(type) {
	case string:
		for _, m := range pinned.FindAllString(v, -1) {
			into[m] = true
		}
	case map[string]any:
		for _, e := range v {
			imagesOf(e, into)
		}
	case []any:
		for _, e := range v {
			imagesOf(e, into)
		}
	}
}

func TestUpPushesTheBuiltImagesAndTheAppsRunExactlyThoseDigests(t *testing.T) {
	for _, stack := range []string{"dev", "gov"} {
		t.Run(stack, func(t *testing.T) {
			testRegistry.reset(t)
			rec, exports, err := deployed(t, stackConfig(t, stack))
			require.NoError(t, err)
			server := exports["registryLoginServer"].(string)
			want := map[string]string{}
			fake, err := fakeBuild(context.Background(), &Config{Terraform: images.Terraform{Version: "1.11.4"}})
			require.NoError(t, err)
			for _, img := range fake {
				want[img.Binary.Name] = server + "/bote/" + img.Binary.Name + "@" + img.Digest.String()
				assert.True(t, testRegistry.has(t, want[img.Binary.Name]), "%s was pushed", img.Binary.Name)
			}
			assert.Equal(t, map[string]string{"gateway": want["gateway"], "idp": want["idp"], "opsserver": want["opsserver"],
				"agent": want["agent"], "connector": want["connector"]}, toStrings(exports["images"]))
			assert.Equal(t, fakeVersion, exports["imageVersion"])
			assert.NotEmpty(t, exports["gatewayUrl"])
			assert.Equal(t, exports["gatewayUrl"], exports["workerUrl"], "the output's name before the rename, kept for one more release")

			apps := map[string]bool{}
			for _, r := range rec.Resources() {
				if strings.Contains(r.Type, "ContainerApp") || strings.Contains(r.Type, "WebApp") {
					imagesOf(r.Inputs, apps)
				}
			}
			var got []string
			for ref := range apps {
				got = append(got, ref)
			}
			sort.Strings(got)
			assert.Equal(t, []string{want["gateway"], want["idp"], want["opsserver"]}, got, "every app runs its built digest, nothing else")

			passwords := toStrings(exports["registryPasswords"])
			for id, tn := range exports["tenants"].(map[string]any) {
				assert.Equal(t, want["agent"], tn.(map[string]any)["agentImage"], id)
				assert.Equal(t, want["connector"], tn.(map[string]any)["connectorImage"], id)
				assert.Equal(t, "password-of-tenant-"+id+"-agent-pull-token", passwords[id], "the first up issues each tenant's token password")
			}
		})
	}
}

func TestPreviewPushesNothingAndIssuesNoPassword(t *testing.T) {
	testRegistry.reset(t)
	issued.Lock()
	issued.ids = nil
	issued.Unlock()
	rec, err := infratest.Run(t, "public", stackConfig(t, "dev"), func(ctx *pulumi.Context) error {
		_, err := deploy(ctx)
		return err
	}, func(info *pulumi.RunInfo) { info.DryRun = true })
	require.NoError(t, err)
	assert.Empty(t, testRegistry.catalog(t), "a preview never pushes")

	// ...but it shows the digests `up` would deploy.
	fake, err := fakeBuild(context.Background(), &Config{Terraform: images.Terraform{Version: "1.11.4"}})
	require.NoError(t, err)
	var want []string
	for _, img := range fake {
		if n := img.Binary.Name; n == "gateway" || n == "idp" || n == "opsserver" {
			want = append(want, "botedevacr.azurecr.io/bote/"+n+"@"+img.Digest.String())
		}
	}
	apps := map[string]bool{}
	for _, r := range rec.Resources() {
		if strings.Contains(r.Type, "ContainerApp") {
			imagesOf(r.Inputs, apps)
		}
	}
	var got []string
	for ref := range apps {
		got = append(got, ref)
	}
	assert.ElementsMatch(t, want, got)
	issued.Lock()
	defer issued.Unlock()
	assert.Empty(t, issued.ids, "a preview issues no token password")
}

func toStrings(v any) map[string]string {
	if m, ok := v.(map[string]string); ok {
		return m
	}
	out := map[string]string{}
	for k, e := range v.(map[string]any) {
		out[k], _ = e.(string)
	}
	return out
}

func TestRegistryPasswordsAreASecretOutput(t *testing.T) {
	var secret bool
	_, err := infratest.Run(t, "public", stackConfig(t, "dev"), func(ctx *pulumi.Context) error {
		out, err := deploy(ctx)
		if err != nil {
			return err
		}
		res, err := internals.UnsafeAwaitOutput(context.Background(), pulumi.ToOutput(out["registryPasswords"]))
		secret = res.Secret
		return err
	})
	require.NoError(t, err)
	assert.True(t, secret)
}
