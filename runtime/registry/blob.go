package registry

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blob"
)

// maxRegistryBytes bounds the registry document read from a blob.
const maxRegistryBytes = 16 << 20

// BlobSource reads the registry blob the Pulumi stack publishes
// (stack output registryBlobUrl). It asks for the blob only when its ETag
// changed. The URL comes from configuration as given: the idp never builds
// a storage hostname, so it works in every Azure cloud.
type BlobSource struct {
	client *blob.Client
	etag   string
}

// NewBlobSource reads blobURL with cred (the app's managed
// identity in Azure). A nil cred is allowed only for a URL that carries a
// SAS token.
func NewBlobSource(blobURL string, cred azcore.TokenCredential) (*BlobSource, error) {
	u, err := url.Parse(blobURL)
	if err != nil || u.Scheme == "" || u.Host == "" {
		return nil, fmt.Errorf("registry blob URL %q is not an absolute URL", blobURL)
	}
	var c *blob.Client
	if cred == nil {
		if u.Query().Get("sig") == "" {
			return nil, errors.New("registry blob URL has no SAS token and no credential was given")
		}
		c, err = blob.NewClientWithNoCredential(blobURL, nil)
	} else {
		c, err = blob.NewClient(blobURL, cred, nil)
	}
	if err != nil {
		return nil, fmt.Errorf("cannot create registry blob client: %w", err)
	}
	return &BlobSource{client: c}, nil
}

func (b *BlobSource) String() string {
	u, err := url.Parse(b.client.URL())
	if err != nil {
		return "registry blob"
	}
	u.RawQuery = "" // never log a SAS token
	return u.String()
}

// Fetch implements Source.
func (b *BlobSource) Fetch(ctx context.Context) ([]byte, bool, error) {
	props, err := b.client.GetProperties(ctx, nil)
	if err != nil {
		return nil, false, fmt.Errorf("cannot read connector registry blob properties: %w", err)
	}
	if props.ETag != nil && string(*props.ETag) == b.etag {
		return nil, false, nil
	}
	if props.ContentLength != nil && *props.ContentLength > maxRegistryBytes {
		return nil, false, fmt.Errorf("connector registry blob is %d bytes, over the %d byte limit", *props.ContentLength, maxRegistryBytes)
	}
	opts := &blob.DownloadStreamOptions{}
	if props.ETag != nil {
		// Read exactly the version whose ETag we record.
		opts.AccessConditions = &blob.AccessConditions{ModifiedAccessConditions: &blob.ModifiedAccessConditions{IfMatch: props.ETag}}
	}
	resp, err := b.client.DownloadStream(ctx, opts)
	if err != nil {
		return nil, false, fmt.Errorf("cannot download connector registry blob: %w", err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxRegistryBytes+1))
	if err != nil {
		return nil, false, fmt.Errorf("cannot read connector registry blob: %w", err)
	}
	if len(data) > maxRegistryBytes {
		return nil, false, fmt.Errorf("connector registry blob is over the %d byte limit", maxRegistryBytes)
	}
	if resp.ETag != nil {
		b.etag = string(*resp.ETag)
	}
	return data, true, nil
}

// Watch watches the registry file at path or, when blobURL is set, the
// registry blob the stack publishes (read with the Azure identity of the
// process unless the URL carries a SAS token). Exactly one must be given.
func Watch(path, blobURL string, poll time.Duration, logger *slog.Logger) (*Watcher, error) {
	switch {
	case path != "" && blobURL != "":
		return nil, errors.New("registry: give a file or a blob URL, not both")
	case blobURL == "":
		return NewWatcher(path, poll, logger)
	}
	var cred azcore.TokenCredential
	if u, err := url.Parse(blobURL); err == nil && u.Query().Get("sig") == "" {
		c, err := azidentity.NewDefaultAzureCredential(nil)
		if err != nil {
			return nil, fmt.Errorf("cannot get an Azure credential to read the registry blob: %w", err)
		}
		cred = c
	}
	src, err := NewBlobSource(blobURL, cred)
	if err != nil {
		return nil, err
	}
	return NewWatcherFrom(src, poll, logger)
}
