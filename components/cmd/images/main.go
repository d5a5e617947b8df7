// Command images builds the runtime's container images into an OCI image
// layout directory (`make images`) or the customer binaries into a release
// directory with SHA256SUMS (`make release`), with the same fixed flags
// and stamped version as the images `pulumi up` pushes.
//
//	images -layout dist/oci [-terraform-version 1.11.4 -terraform-linux-amd64 FILE -terraform-linux-amd64-sha256 HEX ...] [-provider-mirror DIR]
//	images -release dist
//
// Without Terraform sources the agent image is left out (and said so).
// SOURCE_DATE_EPOCH overrides the timestamps (default: the commit time).
package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/botehq/platform/components/images"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr, os.Getenv)
	stop()
	if err != nil && !errors.Is(err, flag.ErrHelp) {
		fmt.Fprintln(os.Stderr, "images:", err)
		os.Exit(1)
	}
}

// run has the shape of every binary's run (runtime/cmd): main alone
// handles signals and the exit code.
func run(ctx context.Context, args []string, _ io.Reader, stdout, stderr io.Writer, getenv func(string) string) error {
	fs := flag.NewFlagSet("images", flag.ContinueOnError)
	fs.SetOutput(stderr)
	runtimeDir := fs.String("runtime", "runtime", "the runtime module's directory")
	layoutDir := fs.String("layout", "", "write the images into this OCI image layout directory")
	releaseDir := fs.String("release", "", "write the release binaries (agent, connector, opsbot for linux/amd64 and linux/arm64) and SHA256SUMS here")
	caCerts := fs.String("ca-certs", images.DefaultCACerts, "CA bundle to put in the images")
	mirror := fs.String("provider-mirror", "", "a filesystem mirror of Terraform providers (terraform providers mirror; make provider-mirror) for the agent image to carry")
	tf := images.Terraform{Platforms: map[string]images.TerraformSource{}}
	fs.StringVar(&tf.Version, "terraform-version", "", "Terraform version the agent image carries")
	srcs := map[string]*images.TerraformSource{}
	for _, p := range images.Platforms {
		s := &images.TerraformSource{}
		srcs[p.String()] = s
		key := "terraform-" + p.OS + "-" + p.Architecture
		fs.StringVar(&s.Path, key, "", "Terraform release zip (or binary) for "+p.String())
		fs.StringVar(&s.SHA256, key+"-sha256", "", "its pinned SHA-256")
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if (*layoutDir == "") == (*releaseDir == "") {
		return errors.New("give -layout DIR or -release DIR")
	}
	dir, err := filepath.Abs(*runtimeDir)
	if err != nil {
		return err
	}
	var epoch *time.Time
	if s := getenv("SOURCE_DATE_EPOCH"); s != "" {
		t, err := images.ParseEpoch(s)
		if err != nil {
			return err
		}
		epoch = &t
	}
	src, err := images.GitSource(ctx, dir, epoch)
	if err != nil {
		return err
	}
	if *releaseDir != "" {
		return release(ctx, dir, src, *releaseDir, stdout)
	}

	cfg := images.Config{RuntimeDir: dir, Source: src, SourceURL: "https://github.com/botehq/platform", CACerts: *caCerts,
		ProviderMirror: *mirror, Logger: slog.New(slog.NewTextHandler(os.Stderr, nil))}
	bins := images.Binaries
	if tf.Version != "" {
		for p, s := range srcs {
			tf.Platforms[p] = *s
		}
		cfg.Terraform = &tf
	} else {
		fmt.Fprintln(stdout, "no -terraform-version: the agent image is left out")
		bins = nil
		for _, b := range images.Binaries {
			if !b.Terraform {
				bins = append(bins, b)
			}
		}
	}
	built, err := images.Build(ctx, cfg, bins...)
	if err != nil {
		return err
	}
	n, err := images.WriteLayout(*layoutDir, "", built)
	if err != nil {
		return err
	}
	for _, img := range built {
		fmt.Fprintf(stdout, "%s\t%s\n", img.Repository("")+":"+img.Tag(), img.Digest)
	}
	fmt.Fprintf(stdout, "%d new image(s) in %s (%d unchanged)\n", n, *layoutDir, len(built)-n)
	return nil
}

// release builds the binaries customers install by hand.
func release(ctx context.Context, runtimeDir string, src images.Source, out string, stdout io.Writer) error {
	out, err := filepath.Abs(out)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(out, 0o755); err != nil {
		return err
	}
	sums := map[string]string{}
	for _, p := range images.Platforms {
		for _, name := range []string{"agent", "connector", "opsbot"} {
			file := fmt.Sprintf("%s_%s_%s_%s", name, src.Version, p.OS, p.Architecture)
			path := filepath.Join(out, file)
			if err := images.Compile(ctx, runtimeDir, src, p, name, path); err != nil {
				return err
			}
			raw, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			sum := sha256.Sum256(raw)
			sums[file] = hex.EncodeToString(sum[:])
		}
	}
	files := make([]string, 0, len(sums))
	for f := range sums {
		files = append(files, f)
	}
	sort.Strings(files)
	var b strings.Builder
	for _, f := range files {
		fmt.Fprintf(&b, "%s  %s\n", sums[f], f)
	}
	if err := os.WriteFile(filepath.Join(out, "SHA256SUMS"), []byte(b.String()), 0o644); err != nil {
		return err
	}
	fmt.Fprint(stdout, b.String())
	return nil
}
