package images

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// DefaultRepositoryPrefix is where the images live in a registry:
// <registry>/bote/<name>.
const DefaultRepositoryPrefix = "bote"

// Repository is the image's repository under prefix ("bote/agent").
func (img *Image) Repository(prefix string) string {
	if prefix == "" {
		prefix = DefaultRepositoryPrefix
	}
	return prefix + "/" + img.Binary.Name
}

// Tag is the human-readable tag pushed beside the digest: the version,
// with "+" (not allowed in tags) as "_".
func (img *Image) Tag() string { return strings.ReplaceAll(img.Version, "+", "_") }

// Push pushes img to <registry>/<repository> by digest, tagged with its
// version, unless the registry already has that digest. It returns the
// pinned reference and whether anything was pushed.
func Push(ctx context.Context, img *Image, registry, prefix string, opts ...remote.Option) (string, bool, error) {
	repo, err := name.NewRepository(registry + "/" + img.Repository(prefix))
	if err != nil {
		return "", false, fmt.Errorf("cannot push %s: %w", img.Binary.Name, err)
	}
	ref := repo.Digest(img.Digest.String())
	opts = append([]remote.Option{remote.WithContext(ctx)}, opts...)
	if _, err := remote.Head(ref, opts...); err == nil {
		return ref.String(), false, nil
	}
	if err := remote.WriteIndex(repo.Tag(img.Tag()), img.Index, opts...); err != nil {
		return "", false, fmt.Errorf("cannot push %s to %s: %w", img.Binary.Name, repo, err)
	}
	return ref.String(), true, nil
}

// WriteLayout adds the images to the OCI image layout at dir (made when
// missing), each named by the annotation org.opencontainers.image.ref.name
// "<repository>:<tag>"; an image whose digest is already there is skipped.
// It returns how many were added.
func WriteLayout(dir, prefix string, imgs []*Image) (int, error) {
	p, err := layout.FromPath(dir)
	if errors.Is(err, os.ErrNotExist) || (err == nil && !exists(filepath.Join(dir, "index.json"))) {
		p, err = layout.Write(dir, empty.Index)
	}
	if err != nil {
		return 0, fmt.Errorf("cannot open the image layout %s: %w", dir, err)
	}
	have := map[v1.Hash]bool{}
	if idx, err := p.ImageIndex(); err == nil {
		if m, err := idx.IndexManifest(); err == nil {
			for _, d := range m.Manifests {
				have[d.Digest] = true
			}
		}
	}
	added := 0
	for _, img := range imgs {
		if have[img.Digest] {
			continue
		}
		ann := map[string]string{"org.opencontainers.image.ref.name": img.Repository(prefix) + ":" + img.Tag()}
		if err := p.AppendIndex(img.Index, layout.WithAnnotations(ann)); err != nil {
			return added, fmt.Errorf("cannot write %s to %s: %w", img.Binary.Name, dir, err)
		}
		added++
	}
	return added, nil
}

func exists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}
