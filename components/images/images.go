// Package images builds the runtime's container images (gateway, idp,
// opsserver, agent, connector) from this repository's Go sources with
// go-containerregistry as a library: no Docker engine, no base image from
// the internet, the same digest from the same sources.
//
// Every image is an OCI index for linux/amd64 and linux/arm64. Each
// platform's image is, from the bottom:
//
//   - a base layer: /etc/passwd and /etc/group with the non-root user
//     nonroot (65532:65532) the image runs as, its home /home/nonroot,
//     /tmp (1777), /var/lib/bote (owned by nonroot, for the idp's keys and
//     agents' work) and the CA certificates (Config.CACerts, by default
//     the build machine's /etc/ssl/certs/ca-certificates.crt; see
//     docs/infrastructure.md for where they come from and how they are
//     refreshed). No shell and no package manager: none of the binaries
//     needs one.
//   - for the agent only, Terraform at /usr/local/bin/terraform, from a
//     configured file (the release zip or a bare binary) whose SHA-256 must
//     match the pin before it goes in; its version is the label
//     dev.bote.terraform.version.
//   - the binary at /usr/local/bin/<name>, the entrypoint: static
//     (CGO_ENABLED=0), -trimpath, time zone data embedded (-tags
//     timetzdata, so the image needs no /usr/share/zoneinfo), its version
//     and commit stamped into runtime/buildinfo.
//   - its SBOM: SPDX 2.3 JSON from the binary's own build information
//     (every module and version it links, plus Terraform for the agent) at
//     /usr/share/sbom/<name>.spdx.json. Inside the image it travels with
//     every copy and needs no registry support for referrers; the index
//     and manifests carry the annotation dev.bote.sbom with that path.
//
// Reproducible: every timestamp (files, config, history) is
// Config.Created (the commit time of the sources, or SOURCE_DATE_EPOCH),
// tar entries are sorted with fixed owners, builds use fixed flags with
// GOWORK=off against runtime/go.sum, so the digest changes only when the
// sources, the pins or the version change. Push and WriteLayout skip an
// image whose digest is already there.
package images

import (
	"archive/tar"
	"archive/zip"
	"bytes"
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// Binary is one image: the command runtime/cmd/<Name>, pushed as
// <repository prefix>/<Name>.
type Binary struct {
	Name string
	// Terraform puts Terraform in the image (the agent).
	Terraform bool
}

// Binaries are the images the platform ships.
var Binaries = []Binary{{Name: "gateway"}, {Name: "idp"}, {Name: "opsserver"}, {Name: "agent", Terraform: true}, {Name: "connector"}}

// Lookup returns the binary called name.
func Lookup(name string) (Binary, error) {
	for _, b := range Binaries {
		if b.Name == name {
			return b, nil
		}
	}
	return Binary{}, fmt.Errorf("no image %q (want one of gateway, idp, opsserver, agent, connector)", name)
}

// Platforms are the platforms every image is built for.
var Platforms = []v1.Platform{{OS: "linux", Architecture: "amd64"}, {OS: "linux", Architecture: "arm64"}}

// Paths and identities inside the images.
const (
	User       = "65532:65532"
	Home       = "/home/nonroot"
	BinDir     = "/usr/local/bin"
	SBOMDir    = "/usr/share/sbom"
	CACertPath = "/etc/ssl/certs/ca-certificates.crt"
	// DefaultCACerts is where Debian and Ubuntu keep the CA bundle.
	DefaultCACerts = "/etc/ssl/certs/ca-certificates.crt"

	LabelTerraformVersion = "dev.bote.terraform.version"
	AnnotationSBOM        = "dev.bote.sbom"
)

// TerraformSource is the Terraform of one platform: a release archive
// (terraform_<version>_<os>_<arch>.zip) or a bare binary, and the SHA-256
// of that file.
type TerraformSource struct {
	Path   string `json:"path"`
	SHA256 string `json:"sha256"`
}

// Terraform is what the agent image carries.
type Terraform struct {
	// Version goes into the label dev.bote.terraform.version and the SBOM.
	Version string `json:"version"`
	// Platforms maps "linux/amd64" and "linux/arm64" to their source.
	Platforms map[string]TerraformSource `json:"platforms"`
}

// Config is what every build shares.
type Config struct {
	// RuntimeDir is the runtime module's directory (holding go.mod and
	// cmd/).
	RuntimeDir string
	// Source describes the sources: version, revision and time. Required;
	// see GitSource.
	Source Source
	// SourceURL is the label org.opencontainers.image.source.
	SourceURL string
	// CACerts is the CA bundle to install (default DefaultCACerts).
	CACerts string
	// Platforms default to Platforms.
	Platforms []v1.Platform
	// Terraform is required to build the agent.
	Terraform *Terraform
	// ProviderMirror is a provider mirror for the agent image (optional; providermirror.go).
	ProviderMirror string
	Logger         *slog.Logger
}

// Source is what the images are built from.
type Source struct {
	// Version is stamped into the binaries (buildinfo) and labels, e.g.
	// v0.0.0-20261206070000-0123456789ab.
	Version string
	// Revision is the commit, stamped and labelled.
	Revision string
	// Created is every timestamp in the images.
	Created time.Time
}

var (
	sha256Hex = regexp.MustCompile(`^[0-9a-f]{64}$`)
	// versionText is what may go into a version or revision (it becomes
	// a linker flag value and a tag).
	versionText = regexp.MustCompile(`^[0-9A-Za-z][0-9A-Za-z.+_-]{0,127}$`)
)

// Validate checks the configuration; errors name the field.
func (c *Config) Validate() error {
	if c.RuntimeDir == "" {
		return errors.New("RuntimeDir: is required")
	}
	if _, err := os.Stat(filepath.Join(c.RuntimeDir, "go.mod")); err != nil {
		return fmt.Errorf("RuntimeDir: %w", err)
	}
	if !versionText.MatchString(c.Source.Version) {
		return fmt.Errorf("Source.Version: %q is not a version", c.Source.Version)
	}
	if !versionText.MatchString(c.Source.Revision) {
		return fmt.Errorf("Source.Revision: %q is not a revision", c.Source.Revision)
	}
	if c.Source.Created.IsZero() {
		return errors.New("Source.Created: is required")
	}
	if c.Terraform != nil {
		if err := c.Terraform.Validate(c.platforms()); err != nil {
			return fmt.Errorf("Terraform: %w", err)
		}
	}
	return c.validateProviderMirror()
}

// Validate checks that every platform has a pinned source.
func (t *Terraform) Validate(platforms []v1.Platform) error {
	if !versionText.MatchString(t.Version) {
		return fmt.Errorf("version: %q is not a version", t.Version)
	}
	for _, p := range platforms {
		src, ok := t.Platforms[p.String()]
		switch {
		case !ok:
			return fmt.Errorf("platforms: no source for %s", p)
		case src.Path == "":
			return fmt.Errorf("platforms[%s].path: is required", p)
		case !sha256Hex.MatchString(src.SHA256):
			return fmt.Errorf("platforms[%s].sha256: %q is not a lowercase hex SHA-256", p, src.SHA256)
		}
	}
	return nil
}

func (c *Config) platforms() []v1.Platform {
	if len(c.Platforms) > 0 {
		return c.Platforms
	}
	return Platforms
}

func (c *Config) log() *slog.Logger {
	if c.Logger != nil {
		return c.Logger
	}
	return slog.New(slog.DiscardHandler)
}

// Image is one built image.
type Image struct {
	Binary Binary
	Index  v1.ImageIndex
	Digest v1.Hash
	// Version is the version the binary reports (Config.Source.Version).
	Version string
}

// Build builds the images of bins.
func Build(ctx context.Context, cfg Config, bins ...Binary) ([]*Image, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	tmp, err := os.MkdirTemp("", "bote-images-")
	if err != nil {
		return nil, fmt.Errorf("cannot make a build directory: %w", err)
	}
	defer os.RemoveAll(tmp)
	base, err := baseLayer(cfg)
	if err != nil {
		return nil, err
	}
	var out []*Image
	for _, b := range bins {
		if b.Terraform && cfg.Terraform == nil {
			return nil, fmt.Errorf("image %s: Terraform: is required", b.Name)
		}
		start := time.Now()
		idx, err := buildIndex(ctx, cfg, b, base, tmp)
		if err != nil {
			return nil, fmt.Errorf("image %s: %w", b.Name, err)
		}
		d, err := idx.Digest()
		if err != nil {
			return nil, fmt.Errorf("image %s: %w", b.Name, err)
		}
		cfg.log().InfoContext(ctx, "image built", "image", b.Name, "digest", d.String(), "elapsed", time.Since(start).Round(time.Millisecond))
		out = append(out, &Image{Binary: b, Index: idx, Digest: d, Version: cfg.Source.Version})
	}
	return out, nil
}

func buildIndex(ctx context.Context, cfg Config, b Binary, base v1.Layer, tmp string) (v1.ImageIndex, error) {
	labels := map[string]string{
		"org.opencontainers.image.title":    "bote " + b.Name,
		"org.opencontainers.image.version":  cfg.Source.Version,
		"org.opencontainers.image.revision": cfg.Source.Revision,
		"org.opencontainers.image.created":  cfg.Source.Created.UTC().Format(time.RFC3339),
	}
	if cfg.SourceURL != "" {
		labels["org.opencontainers.image.source"] = cfg.SourceURL
	}
	if b.Terraform {
		labels[LabelTerraformVersion] = cfg.Terraform.Version
	}
	sbomPath := SBOMDir + "/" + b.Name + ".spdx.json"
	annotations := map[string]string{AnnotationSBOM: sbomPath}
	for k, v := range labels {
		annotations[k] = v
	}
	idx := mutate.IndexMediaType(empty.Index, types.OCIImageIndex)
	for _, p := range cfg.platforms() {
		img, err := buildImage(ctx, cfg, b, p, base, labels, sbomPath, tmp)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", p, err)
		}
		img = mutate.Annotations(img, annotations).(v1.Image)
		idx = mutate.AppendManifests(idx, mutate.IndexAddendum{Add: img, Descriptor: v1.Descriptor{Platform: &p}})
	}
	return mutate.Annotations(idx, annotations).(v1.ImageIndex), nil
}

func buildImage(ctx context.Context, cfg Config, b Binary, p v1.Platform, base v1.Layer, labels map[string]string, sbomPath, tmp string) (v1.Image, error) {
	// Terraform first: a wrong pin fails before anything compiles.
	var tf *terraformBinary
	var err error
	if b.Terraform {
		if tf, err = loadTerraform(cfg.Terraform, p); err != nil {
			return nil, err
		}
	}
	bin, err := goBuild(ctx, cfg, b, p, tmp)
	if err != nil {
		return nil, err
	}
	binData, err := os.ReadFile(bin)
	if err != nil {
		return nil, err
	}
	layers := []mutate.Addendum{{Layer: base, History: history(cfg, "base: nonroot user, CA certificates")}}
	if b.Terraform {
		l, err := layer(cfg.Source.Created, []file{{name: BinDir + "/terraform", mode: 0o755, data: tf.data}})
		if err != nil {
			return nil, err
		}
		layers = append(layers, mutate.Addendum{Layer: l, History: history(cfg, "terraform "+cfg.Terraform.Version)})
	}
	env := []string{"PATH=" + BinDir, "HOME=" + Home, "SSL_CERT_FILE=" + CACertPath}
	if layers, env, err = withProviderMirror(cfg, b, p, layers, env); err != nil {
		return nil, err
	}
	l, err := layer(cfg.Source.Created, []file{{name: BinDir + "/" + b.Name, mode: 0o755, data: binData}})
	if err != nil {
		return nil, err
	}
	layers = append(layers, mutate.Addendum{Layer: l, History: history(cfg, b.Name+" "+cfg.Source.Version)})
	sbom, err := SBOM(bin, b.Name, cfg.Source, tf)
	if err != nil {
		return nil, err
	}
	l, err = layer(cfg.Source.Created, []file{{name: sbomPath, mode: 0o644, data: sbom}})
	if err != nil {
		return nil, err
	}
	layers = append(layers, mutate.Addendum{Layer: l, History: history(cfg, "sbom")})

	img := mutate.ConfigMediaType(mutate.MediaType(empty.Image, types.OCIManifestSchema1), types.OCIConfigJSON)
	if img, err = mutate.Append(img, layers...); err != nil {
		return nil, err
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture, cf.Variant = p.OS, p.Architecture, p.Variant
	cf.Created = v1.Time{Time: cfg.Source.Created}
	cf.Config = v1.Config{
		Entrypoint: []string{BinDir + "/" + b.Name},
		User:       User,
		WorkingDir: Home,
		Env:        env,
		Labels:     labels,
	}
	return mutate.ConfigFile(img, cf)
}

func history(cfg Config, what string) v1.History {
	return v1.History{Created: v1.Time{Time: cfg.Source.Created}, CreatedBy: "bote images: " + what}
}

// goBuild compiles b's command for p into tmp/<os>-<arch>/<b.Name>.
func goBuild(ctx context.Context, cfg Config, b Binary, p v1.Platform, tmp string) (string, error) {
	out := filepath.Join(tmp, p.OS+"-"+p.Architecture, b.Name)
	return out, Compile(ctx, cfg.RuntimeDir, cfg.Source, p, b.Name, out)
}

// Compile builds runtime/cmd/<name> (runtimeDir is the runtime module) for
// p into out, as a release binary: static, trimmed, time zone data
// embedded, version and commit stamped into runtime/buildinfo, with an
// environment that overrides the caller's so local settings cannot change
// the output.
func Compile(ctx context.Context, runtimeDir string, src Source, p v1.Platform, name, out string) error {
	const bi = "github.com/botehq/platform/runtime/buildinfo"
	cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-tags", "timetzdata",
		"-ldflags", fmt.Sprintf("-s -w -buildid= -X %s.version=%s -X %s.commit=%s", bi, src.Version, bi, src.Revision),
		"-o", out, "./cmd/"+name)
	cmd.Dir = runtimeDir
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS="+p.OS, "GOARCH="+p.Architecture, "GOAMD64=v1", "GOARM64=v8.0",
		"GOWORK=off", "GOFLAGS=-mod=readonly -buildvcs=false", "GOEXPERIMENT=")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("cannot build %s for %s: %w\n%s", name, p, err, stderr.String())
	}
	return nil
}

// terraformBinary is a verified Terraform for one platform.
type terraformBinary struct {
	version, archiveSHA256 string
	data                   []byte
}

// loadTerraform reads the platform's source, checks the pin, and takes the
// binary out of a release zip.
func loadTerraform(t *Terraform, p v1.Platform) (*terraformBinary, error) {
	src := t.Platforms[p.String()]
	raw, err := os.ReadFile(src.Path)
	if err != nil {
		return nil, fmt.Errorf("terraform: %w", err)
	}
	sum := sha256.Sum256(raw)
	if got := hex.EncodeToString(sum[:]); got != src.SHA256 {
		return nil, fmt.Errorf("terraform: %s has SHA-256 %s, the pin is %s: refusing it", src.Path, got, src.SHA256)
	}
	tb := &terraformBinary{version: t.Version, archiveSHA256: src.SHA256, data: raw}
	if !bytes.HasPrefix(raw, []byte("PK\x03\x04")) {
		return tb, nil
	}
	zr, err := zip.NewReader(bytes.NewReader(raw), int64(len(raw)))
	if err != nil {
		return nil, fmt.Errorf("terraform: %s: %w", src.Path, err)
	}
	f, err := zr.Open("terraform")
	if err != nil {
		return nil, fmt.Errorf("terraform: %s holds no terraform binary: %w", src.Path, err)
	}
	defer f.Close()
	if tb.data, err = io.ReadAll(f); err != nil {
		return nil, fmt.Errorf("terraform: %s: %w", src.Path, err)
	}
	return tb, nil
}

// file is one tar entry.
type file struct {
	name     string
	mode     int64
	dir      bool
	uid, gid int
	data     []byte
}

// layer makes a deterministic layer: entries in name order, fixed times,
// numeric owners only.
func layer(created time.Time, files []file) (v1.Layer, error) {
	files = slices.Clone(files)
	slices.SortFunc(files, func(a, b file) int { return strings.Compare(a.name, b.name) })
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, f := range files {
		h := &tar.Header{
			Name: strings.TrimPrefix(f.name, "/"), Mode: f.mode, Uid: f.uid, Gid: f.gid,
			ModTime: created, Format: tar.FormatPAX, Typeflag: tar.TypeReg, Size: int64(len(f.data)),
		}
		if f.dir {
			h.Typeflag, h.Size, h.Name = tar.TypeDir, 0, h.Name+"/"
		}
		if err := tw.WriteHeader(h); err != nil {
			return nil, err
		}
		if _, err := tw.Write(f.data); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	data := buf.Bytes()
	return tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(data)), nil },
		tarball.WithMediaType(types.OCILayer))
}

// baseLayer is what every image shares: users, directories, CA
// certificates.
func baseLayer(cfg Config) (v1.Layer, error) {
	certs, err := os.ReadFile(cmp.Or(cfg.CACerts, DefaultCACerts))
	if err != nil {
		return nil, fmt.Errorf("CACerts: %w", err)
	}
	if !bytes.Contains(certs, []byte("-----BEGIN CERTIFICATE-----")) {
		return nil, fmt.Errorf("CACerts: %s holds no PEM certificate", cmp.Or(cfg.CACerts, DefaultCACerts))
	}
	const nonroot = 65532
	dir := func(name string, mode fs.FileMode, owner int) file {
		return file{name: name, mode: int64(mode), dir: true, uid: owner, gid: owner}
	}
	return layer(cfg.Source.Created, []file{
		dir("/etc", 0o755, 0), dir("/etc/ssl", 0o755, 0), dir("/etc/ssl/certs", 0o755, 0),
		{name: CACertPath, mode: 0o644, data: certs},
		{name: "/etc/passwd", mode: 0o644, data: []byte("root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n")},
		{name: "/etc/group", mode: 0o644, data: []byte("root:x:0:\nnonroot:x:65532:\n")},
		dir("/home", 0o755, 0), dir(Home, 0o700, nonroot),
		dir("/root", 0o700, 0),
		dir("/tmp", 0o1777, 0),
		dir("/usr", 0o755, 0), dir("/usr/local", 0o755, 0), dir(BinDir, 0o755, 0),
		dir("/usr/share", 0o755, 0), dir(SBOMDir, 0o755, 0),
		dir("/var", 0o755, 0), dir("/var/lib", 0o755, 0), dir("/var/lib/bote", 0o700, nonroot),
	})
}

// ParseEpoch reads SOURCE_DATE_EPOCH (seconds since 1970).
func ParseEpoch(s string) (time.Time, error) {
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < 0 {
		return time.Time{}, fmt.Errorf("SOURCE_DATE_EPOCH %q: want seconds since 1970", s)
	}
	return time.Unix(n, 0).UTC(), nil
}
