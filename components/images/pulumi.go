package images

import (
	"context"
	"fmt"

	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"
)

// Pusher pushes built images into the stack's registry during `pulumi up`
// and never during a preview. Its Push is gateway.Images.Push.
//
// The images are built while the program runs (preview too: the build is
// deterministic, so a preview shows the exact digests `up` deploys and an
// unchanged build shows no change to any app). The push runs once the
// registry's login server is known, i.e. after the registry exists; the
// apps take the login server from Push's result and so wait for it.
type Pusher struct {
	Ctx    *pulumi.Context
	Images []*Image
	// Prefix of the repositories (default DefaultRepositoryPrefix).
	Prefix string
	// Remote returns the options to push to a login server: its
	// authentication (AzureAuth) and, in tests, a transport.
	Remote func(ctx context.Context, server string) ([]remote.Option, error)
}

// Ref is the image of bin pinned by digest, without the registry
// ("bote/gateway@sha256:...").
func (p *Pusher) Ref(bin string) (string, error) {
	for _, img := range p.Images {
		if img.Binary.Name == bin {
			return img.Repository(p.Prefix) + "@" + img.Digest.String(), nil
		}
	}
	return "", fmt.Errorf("no image %q was built", bin)
}

// Version is the version the images were built from.
func (p *Pusher) Version() string {
	if len(p.Images) == 0 {
		return ""
	}
	return p.Images[0].Version
}

// Push pushes every image to loginServer (skipping those already there)
// and returns loginServer, resolved once they are all in.
func (p *Pusher) Push(loginServer pulumi.StringOutput) pulumi.StringOutput {
	return loginServer.ApplyTWithContext(p.Ctx.Context(), func(ctx context.Context, server string) (string, error) {
		if p.Ctx.DryRun() {
			return server, nil
		}
		var opts []remote.Option
		if p.Remote != nil {
			var err error
			if opts, err = p.Remote(ctx, server); err != nil {
				return "", fmt.Errorf("cannot push images to %s: %w", server, err)
			}
		}
		for _, img := range p.Images {
			ref, pushed, err := Push(ctx, img, server, p.Prefix, opts...)
			if err != nil {
				return "", err
			}
			msg := "image already in the registry: " + ref
			if pushed {
				msg = "image pushed: " + ref
			}
			_ = p.Ctx.Log.Info(msg, nil)
		}
		return server, nil
	}).(pulumi.StringOutput)
}
