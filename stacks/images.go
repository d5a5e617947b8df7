package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	azcloud "github.com/Azure/azure-sdk-for-go/sdk/azcore/cloud"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"

	"github.com/botehq/platform/components/images"
	"github.com/botehq/platform/components/tenant"
)

// runtimeDir is the runtime module, relative to the program's directory
// (Pulumi runs the program in stacks/).
const runtimeDir = "../runtime"

// sourceURL is the label org.opencontainers.image.source.
const sourceURL = "https://github.com/botehq/platform"

// buildImages builds the five runtime images from the repository's
// sources (tests replace it: they check the wiring, components/images
// checks the build).
var buildImages = func(ctx context.Context, cfg *Config) ([]*images.Image, error) {
	var epoch *time.Time
	if s := os.Getenv("SOURCE_DATE_EPOCH"); s != "" {
		t, err := images.ParseEpoch(s)
		if err != nil {
			return nil, err
		}
		epoch = &t
	}
	dir, err := filepath.Abs(runtimeDir)
	if err != nil {
		return nil, err
	}
	src, err := images.GitSource(ctx, dir, epoch)
	if err != nil {
		return nil, err
	}
	tf := cfg.Terraform
	for p, s := range tf.Platforms { // paths in config are relative to the repository root
		if !filepath.IsAbs(s.Path) {
			s.Path = filepath.Join(dir, "..", s.Path)
			tf.Platforms[p] = s
		}
	}
	return images.Build(ctx, images.Config{RuntimeDir: dir, Source: src, SourceURL: sourceURL, Terraform: &tf}, images.Binaries...)
}

// pushAuth authenticates image pushes with the identity running `pulumi
// up` (DefaultAzureCredential against the stack's cloud), exchanged for a
// registry token: no admin user (tests replace it).
var pushAuth = func(cfg *Config) func(ctx context.Context, server string) ([]remote.Option, error) {
	return func(ctx context.Context, server string) ([]remote.Option, error) {
		cred, err := deployerCredential(cfg)
		if err != nil {
			return nil, err
		}
		return images.AzureAuth(cred, "https://"+cfg.Cloud.Suffixes.Management+"/.default", nil)(ctx, server)
	}
}

// issuePassword generates a tenant token's password with the identity
// running `pulumi up` (tests replace it).
var issuePassword = func(cfg *Config) func(ctx context.Context, tokenID string) (string, error) {
	return func(ctx context.Context, tokenID string) (string, error) {
		cred, err := deployerCredential(cfg)
		if err != nil {
			return "", err
		}
		return tenant.GenerateCredentials(cred, cfg.Cloud.Suffixes.Management, nil)(ctx, tokenID)
	}
}

// previousOutputs reads this stack's own outputs from its last update (a
// stack reference to itself; empty on the first update).
func previousOutputs(ctx *pulumi.Context) (*pulumi.StackReference, error) {
	name := fmt.Sprintf("%s/%s/%s", ctx.Organization(), ctx.Project(), ctx.Stack())
	ref, err := pulumi.NewStackReference(ctx, "previous-outputs", &pulumi.StackReferenceArgs{Name: pulumi.String(name)})
	if err != nil {
		return nil, fmt.Errorf("cannot read the stack's last outputs: %w", err)
	}
	return ref, nil
}

// previousPassword is the password the last update exported for a tenant
// ("" when there is none).
func previousPassword(ref *pulumi.StackReference, tenantID string) pulumi.StringOutput {
	return ref.GetOutput(pulumi.String("registryPasswords")).ApplyT(func(v any) string {
		m, _ := v.(map[string]any)
		s, _ := m[tenantID].(string)
		return s
	}).(pulumi.StringOutput)
}

// deployerCredential is the identity running `pulumi up`, against the
// stack's cloud.
func deployerCredential(cfg *Config) (azcore.TokenCredential, error) {
	cred, err := azidentity.NewDefaultAzureCredential(&azidentity.DefaultAzureCredentialOptions{
		ClientOptions: azcore.ClientOptions{Cloud: azcloud.Configuration{ActiveDirectoryAuthorityHost: cfg.Cloud.AuthorityHost}},
		TenantID:      cfg.TenantID,
	})
	if err != nil {
		return nil, fmt.Errorf("cannot set up the Azure identity: %w", err)
	}
	return cred, nil
}
