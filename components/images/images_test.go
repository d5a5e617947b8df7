package images

import (
	"archive/tar"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"log"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The tests build the smallest useful set (CPU is scarce in CI): the agent,
// the one image with everything (Terraform, SBOM with Terraform), for both
// platforms, then again. The builder copies Terraform's bytes without
// reading them, so the tests pin a small stand-in that answers `terraform
// version -json` like Terraform (the real 90 MB binary made gzip 85 % of
// the test's CPU: every build compresses its layer for both platforms).
// The arm64 image then carries the same stand-in, which is fine for what
// the test checks. `make images` builds all five images from pinned
// release archives.

var source = Source{Version: "v0.0.0-20261206070000-0123456789ab", Revision: "0123456789abcdef0123456789abcdef01234567",
	Created: time.Date(2026, 12, 6, 7, 0, 0, 0, time.UTC)}

func testConfig(t *testing.T) Config {
	t.Helper()
	if _, err := os.Stat(DefaultCACerts); err != nil {
		t.Skipf("no CA bundle at %s: %v", DefaultCACerts, err)
	}
	return Config{RuntimeDir: filepath.Join("..", "..", "runtime"), Source: source, SourceURL: "https://github.com/botehq/platform"}
}

// terraformVersion is the version the stand-in reports.
const terraformVersion = "1.11.4"

// terraformStandIn writes the stand-in and returns it as the pinned
// source of every platform, with its bytes.
func terraformStandIn(t *testing.T) (*Terraform, []byte) {
	t.Helper()
	raw := []byte("#!/bin/sh\n# terraform stand-in for the image tests: answers `terraform version -json`\n" +
		`echo '{"terraform_version":"` + terraformVersion + `","platform":"linux_amd64","provider_selections":{},"terraform_outdated":false}'` + "\n")
	path := filepath.Join(t.TempDir(), "terraform")
	require.NoError(t, os.WriteFile(path, raw, 0o755))
	sum := sha256.Sum256(raw)
	src := TerraformSource{Path: path, SHA256: hex.EncodeToString(sum[:])}
	return &Terraform{Version: terraformVersion, Platforms: map[string]TerraformSource{"linux/amd64": src, "linux/arm64": src}}, raw
}

func TestAgentImageForBothPlatformsIsReproducibleAndRuns(t *testing.T) {
	ctx := context.Background()
	cfg := testConfig(t)
	tf, tfBytes := terraformStandIn(t)
	agent, err := Lookup("agent")
	require.NoError(t, err)

	// A wrong pin refuses the file before anything is built.
	cfg.Terraform = &Terraform{Version: tf.Version, Platforms: map[string]TerraformSource{
		"linux/amd64": {Path: tf.Platforms["linux/amd64"].Path, SHA256: strings.Repeat("0", 64)}, "linux/arm64": tf.Platforms["linux/arm64"]}}
	_, err = Build(ctx, cfg, agent)
	require.ErrorContains(t, err, "the pin is 0000")
	cfg.Terraform = nil
	_, err = Build(ctx, cfg, agent)
	require.ErrorContains(t, err, "Terraform: is required")

	cfg.Terraform = tf
	built, err := Build(ctx, cfg, agent)
	require.NoError(t, err)
	img := built[0]

	m, err := img.Index.IndexManifest()
	require.NoError(t, err)
	var platforms []string
	for _, d := range m.Manifests {
		platforms = append(platforms, d.Platform.String())
	}
	assert.Equal(t, []string{"linux/amd64", "linux/arm64"}, platforms)
	assert.Equal(t, SBOMDir+"/agent.spdx.json", m.Annotations[AnnotationSBOM])

	for _, d := range m.Manifests {
		pimg, err := img.Index.Image(d.Digest)
		require.NoError(t, err)
		cf, err := pimg.ConfigFile()
		require.NoError(t, err)
		assert.Equal(t, d.Platform.Architecture, cf.Architecture)
		assert.Equal(t, []string{"/usr/local/bin/agent"}, cf.Config.Entrypoint)
		assert.Equal(t, "65532:65532", cf.Config.User, "non-root")
		assert.Equal(t, source.Version, cf.Config.Labels["org.opencontainers.image.version"])
		assert.Equal(t, source.Revision, cf.Config.Labels["org.opencontainers.image.revision"])
		assert.Equal(t, "https://github.com/botehq/platform", cf.Config.Labels["org.opencontainers.image.source"])
		assert.Equal(t, tf.Version, cf.Config.Labels[LabelTerraformVersion])
		assert.Equal(t, source.Created, cf.Created.Time.UTC())

		files := extract(t, pimg)
		assert.Contains(t, string(files["etc/passwd"]), "nonroot:x:65532:65532:")
		assert.Contains(t, string(files["etc/ssl/certs/ca-certificates.crt"]), "BEGIN CERTIFICATE")
		assert.NotContains(t, files, "bin/sh", "no shell")
		assert.Equal(t, tfBytes, files["usr/local/bin/terraform"])
		var sbom spdxDocument
		require.NoError(t, json.Unmarshal(files["usr/share/sbom/agent.spdx.json"], &sbom))
		assert.Equal(t, "SPDX-2.3", sbom.SPDXVersion)
		assert.Contains(t, names(sbom), "github.com/hashicorp/terraform-exec", "the SBOM lists the modules the binary links")
		assert.Contains(t, names(sbom), "terraform")

		if d.Platform.Architecture == "amd64" {
			dir := t.TempDir()
			require.NoError(t, os.WriteFile(filepath.Join(dir, "terraform"), files["usr/local/bin/terraform"], 0o755))
			out := run(t, files["usr/local/bin/agent"], "--version", "--terraform", filepath.Join(dir, "terraform"))
			assert.Equal(t, "agent "+source.Version+" commit "+source.Revision+" "+sbomGo(sbom)+"\nterraform "+tf.Version+"\n", out)
		}
	}

	again, err := Build(ctx, cfg, agent)
	require.NoError(t, err)
	assert.Equal(t, img.Digest, again[0].Digest, "the same sources give the same digest")

	changed := cfg
	changed.Source.Revision = strings.Repeat("f", 40)
	other, err := Build(ctx, changed, agent)
	require.NoError(t, err)
	assert.NotEqual(t, img.Digest, other[0].Digest, "another commit is another image")

	t.Run("provider mirror", func(t *testing.T) {
		mirror := t.TempDir()
		d := filepath.Join(mirror, "example.com", "acme", "thing")
		require.NoError(t, os.MkdirAll(d, 0o755))
		for _, arch := range []string{"amd64", "arm64"} {
			require.NoError(t, os.WriteFile(filepath.Join(d, "terraform-provider-thing_1.0.0_linux_"+arch+".zip"), []byte(arch), 0o644))
		}
		withMirror := cfg
		withMirror.ProviderMirror = mirror
		built, err := Build(ctx, withMirror, agent)
		require.NoError(t, err)
		assert.NotEqual(t, img.Digest, built[0].Digest)
		m, err := built[0].Index.IndexManifest()
		require.NoError(t, err)
		for _, desc := range m.Manifests {
			pimg, err := built[0].Index.Image(desc.Digest)
			require.NoError(t, err)
			cf, err := pimg.ConfigFile()
			require.NoError(t, err)
			assert.Contains(t, cf.Config.Env, "BOTE_AGENT_PROVIDER_MIRROR_DIR="+ProviderMirrorDir)
			files := extract(t, pimg)
			arch := desc.Platform.Architecture
			prefix := strings.TrimPrefix(ProviderMirrorDir, "/") + "/example.com/acme/thing/terraform-provider-thing_1.0.0_linux_"
			assert.Equal(t, []byte(arch), files[prefix+arch+".zip"], "each platform carries its own providers")
			other := map[string]string{"amd64": "arm64", "arm64": "amd64"}[arch]
			assert.NotContains(t, files, prefix+other+".zip")
		}
	})

	t.Run("push", func(t *testing.T) {
		srv := httptest.NewServer(registry.New(registry.Logger(discard())))
		t.Cleanup(srv.Close)
		host := strings.TrimPrefix(srv.URL, "http://")
		ref, pushed, err := Push(ctx, img, host, "")
		require.NoError(t, err)
		assert.True(t, pushed)
		assert.Equal(t, host+"/bote/agent@"+img.Digest.String(), ref)
		d, err := name.NewDigest(ref)
		require.NoError(t, err)
		got, err := remote.Index(d)
		require.NoError(t, err)
		gd, err := got.Digest()
		require.NoError(t, err)
		assert.Equal(t, img.Digest, gd)
		_, pushed, err = Push(ctx, img, host, "")
		require.NoError(t, err)
		assert.False(t, pushed, "an unchanged image is not pushed again")
	})

	t.Run("layout", func(t *testing.T) {
		dir := t.TempDir()
		n, err := WriteLayout(dir, "", built)
		require.NoError(t, err)
		assert.Equal(t, 1, n)
		n, err = WriteLayout(dir, "", again)
		require.NoError(t, err)
		assert.Equal(t, 0, n, "an unchanged image is skipped")
		idx, err := os.ReadFile(filepath.Join(dir, "index.json"))
		require.NoError(t, err)
		assert.Contains(t, string(idx), `"org.opencontainers.image.ref.name": "bote/agent:`+source.Version)
	})
}

func TestConfigValidate(t *testing.T) {
	good := Config{RuntimeDir: filepath.Join("..", "..", "runtime"), Source: source}
	for _, tc := range []struct {
		name string
		mut  func(*Config)
		want string
	}{
		{"no runtime dir", func(c *Config) { c.RuntimeDir = "" }, "RuntimeDir"},
		{"not a module", func(c *Config) { c.RuntimeDir = t.TempDir() }, "RuntimeDir"},
		{"bad version", func(c *Config) { c.Source.Version = "v1 -X main.evil=1" }, "Source.Version"},
		{"no time", func(c *Config) { c.Source.Created = time.Time{} }, "Source.Created"},
		{"terraform without arm64", func(c *Config) {
			c.Terraform = &Terraform{Version: "1.11.4", Platforms: map[string]TerraformSource{"linux/amd64": {Path: "tf.zip", SHA256: strings.Repeat("a", 64)}}}
		}, "no source for linux/arm64"},
		{"terraform bad pin", func(c *Config) {
			c.Terraform = &Terraform{Version: "1.11.4", Platforms: map[string]TerraformSource{
				"linux/amd64": {Path: "tf.zip", SHA256: "abc"}, "linux/arm64": {Path: "tf.zip", SHA256: strings.Repeat("a", 64)}}}
		}, "platforms[linux/amd64].sha256"},
		{"provider mirror without arm64", func(c *Config) {
			c.ProviderMirror = t.TempDir()
			d := filepath.Join(c.ProviderMirror, "example.com", "acme", "thing")
			require.NoError(t, os.MkdirAll(d, 0o755))
			require.NoError(t, os.WriteFile(filepath.Join(d, "terraform-provider-thing_1.0.0_linux_amd64.zip"), nil, 0o644))
		}, "has no provider for linux_arm64"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := good
			tc.mut(&c)
			assert.ErrorContains(t, c.Validate(), tc.want)
		})
	}
	assert.NoError(t, good.Validate())
}

// extract returns the image's flattened files by path.
func extract(t *testing.T, img v1.Image) map[string][]byte {
	t.Helper()
	rc := mutate.Extract(img)
	defer rc.Close()
	tr := tar.NewReader(rc)
	files := map[string][]byte{}
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return files
		}
		require.NoError(t, err)
		if h.Typeflag == tar.TypeReg {
			b, err := io.ReadAll(tr)
			require.NoError(t, err)
			files[h.Name] = b
		}
	}
}

// run writes an extracted binary out and runs it.
func run(t *testing.T, bin []byte, args ...string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "bin")
	require.NoError(t, os.WriteFile(path, bin, 0o755))
	out, err := exec.Command(path, args...).CombinedOutput()
	require.NoError(t, err, string(out))
	return string(out)
}

func names(doc spdxDocument) []string {
	var out []string
	for _, p := range doc.Packages {
		out = append(out, p.Name)
	}
	return out
}

func sbomGo(doc spdxDocument) string {
	for _, p := range doc.Packages {
		if p.Name == "stdlib" {
			return p.VersionInfo
		}
	}
	return ""
}

func discard() *log.Logger { return log.New(io.Discard, "", 0) }
