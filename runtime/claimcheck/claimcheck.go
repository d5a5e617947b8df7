// Package claimcheck moves message bodies that are too large for a queue
// message into Azure Blob storage and back (the claim check pattern).
//
// Put stores a body as a block blob named "<yyyymmdd>-<random id>" in one
// container and returns an envelope.Claim: container, blob, size, SHA-256
// and a read-only SAS URL scoped to that single blob, valid for URLTTL. A
// recipient with storage access (gateway, cloud service) fetches by reference
// with Fetch; a recipient without it (an on-premises connector) fetches the
// SAS URL with FetchURL. Both verify size and SHA-256, so a truncated or
// swapped blob is never handed to a handler.
//
// SAS URLs are signed with the account key when the store was opened with a
// connection string (Azurite, local), and with a user delegation key when it
// was opened with an Entra ID credential (Azure; needs the
// "Storage Blob Delegator" role or equivalent). User delegation keys are
// cached and renewed before they expire.
//
// Lifecycle: a recipient that is the only one (targeted message) deletes
// the blob after handling succeeded (Delete). A broadcast shares one blob
// among all subscribers, so nobody can tell when it is no longer needed;
// the container must carry a lifecycle management rule that deletes blobs
// older than the longest message TTL (lifecycle rules act on blob age; the
// date in the name is for people looking at the container).
// Bodies above MaxBodyBytes are refused with ErrBodyTooLarge.
package claimcheck

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/bloberror"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/sas"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/service"

	"github.com/botehq/platform/runtime/envelope"
)

// Defaults.
const (
	DefaultContainer    = "bote-claims"
	DefaultMaxBodyBytes = 100 << 20 // 100 MiB
	DefaultURLTTL       = 15 * time.Minute
)

// Errors callers branch on.
var (
	ErrBodyTooLarge = errors.New("body too large for claim check")
	ErrNotFound     = errors.New("claim check blob not found")
	ErrCorrupt      = errors.New("claim check blob does not match its claim")
	ErrForeignClaim = errors.New("claim refers to another container")
)

// Config opens a Store. Set ConnectionString, or ServiceURL with Credential.
type Config struct {
	// ConnectionString of the storage account (shared key; Azurite).
	ConnectionString string
	// ServiceURL is the blob endpoint (from stack outputs, never built here).
	ServiceURL string
	// Credential is an Entra ID credential for ServiceURL.
	Credential azcore.TokenCredential
	// Container holding claim blobs; DefaultContainer if empty.
	Container string
	// MaxBodyBytes refuses larger bodies; DefaultMaxBodyBytes if zero.
	MaxBodyBytes int64
	// URLTTL is how long a claim's SAS URL is valid; DefaultURLTTL if zero.
	URLTTL time.Duration
	// CreateContainer creates the container if it is missing (local use;
	// in Azure the infrastructure creates it and the app may lack rights).
	CreateContainer bool
	// Now is the clock links are signed by; time.Now if nil. Tests set it
	// to sign links that have already expired.
	Now func() time.Time
}

// Validate reports the first missing or contradictory field.
func (c Config) Validate() error {
	switch {
	case c.ConnectionString != "" && (c.ServiceURL != "" || c.Credential != nil):
		return errors.New("claimcheck config: ConnectionString and ServiceURL/Credential are exclusive")
	case c.ConnectionString == "" && c.ServiceURL == "":
		return errors.New("claimcheck config: ConnectionString or ServiceURL is required")
	case c.ServiceURL != "" && c.Credential == nil:
		return errors.New("claimcheck config: Credential is required with ServiceURL")
	case c.MaxBodyBytes < 0:
		return fmt.Errorf("claimcheck config: MaxBodyBytes %d is negative", c.MaxBodyBytes)
	case c.URLTTL < 0:
		return fmt.Errorf("claimcheck config: URLTTL %s is negative", c.URLTTL)
	case c.URLTTL > 7*24*time.Hour:
		return fmt.Errorf("claimcheck config: URLTTL %s exceeds 7 days (user delegation key limit)", c.URLTTL)
	}
	return nil
}

// Store puts and fetches claim-checked bodies.
type Store struct {
	client    *azblob.Client
	container string
	max       int64
	ttl       time.Duration
	delegated bool

	mu      sync.Mutex
	udc     *service.UserDelegationCredential
	udcTill time.Time
	now     func() time.Time
}

// New opens a store.
func New(ctx context.Context, cfg Config) (*Store, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	s := &Store{container: cfg.Container, max: cfg.MaxBodyBytes, ttl: cfg.URLTTL, now: cfg.Now}
	if s.now == nil {
		s.now = time.Now
	}
	if s.container == "" {
		s.container = DefaultContainer
	}
	if s.max == 0 {
		s.max = DefaultMaxBodyBytes
	}
	if s.ttl == 0 {
		s.ttl = DefaultURLTTL
	}
	var err error
	if cfg.ConnectionString != "" {
		s.client, err = azblob.NewClientFromConnectionString(cfg.ConnectionString, nil)
	} else {
		s.client, err = azblob.NewClient(cfg.ServiceURL, cfg.Credential, nil)
		s.delegated = true
	}
	if err != nil {
		return nil, fmt.Errorf("cannot open blob service: %w", err)
	}
	if cfg.CreateContainer {
		_, err := s.client.CreateContainer(ctx, s.container, nil)
		if err != nil && !bloberror.HasCode(err, bloberror.ContainerAlreadyExists) {
			return nil, fmt.Errorf("cannot create container %q: %w", s.container, err)
		}
	}
	return s, nil
}

// MaxBodyBytes is the largest body Put accepts.
func (s *Store) MaxBodyBytes() int64 { return s.max }

// Container is the container claims live in.
func (s *Store) Container() string { return s.container }

// Put stores body and returns its claim, with a fresh SAS URL.
func (s *Store) Put(ctx context.Context, body []byte, contentType string) (*envelope.Claim, error) {
	if int64(len(body)) > s.max {
		return nil, fmt.Errorf("%w: %d bytes, the limit is %d", ErrBodyTooLarge, len(body), s.max)
	}
	sum := sha256.Sum256(body)
	name := s.now().UTC().Format("20060102") + "-" + envelope.NewID()
	opts := &azblob.UploadBufferOptions{Metadata: map[string]*string{"sha256": to.Ptr(hex.EncodeToString(sum[:]))}}
	if contentType != "" {
		opts.HTTPHeaders = &blob.HTTPHeaders{BlobContentType: to.Ptr(contentType)}
	}
	if _, err := s.client.UploadBuffer(ctx, s.container, name, body, opts); err != nil {
		return nil, fmt.Errorf("cannot upload claim blob %s/%s: %w", s.container, name, err)
	}
	c := &envelope.Claim{Container: s.container, Blob: name, Size: int64(len(body)), SHA256: hex.EncodeToString(sum[:])}
	if err := s.Sign(ctx, c, s.ttl); err != nil {
		return nil, err
	}
	return c, nil
}

// Sign sets c.URL to a read-only SAS URL for c's blob valid for ttl.
func (s *Store) Sign(ctx context.Context, c *envelope.Claim, ttl time.Duration) error {
	if err := s.own(c); err != nil {
		return err
	}
	u, expiry, err := s.sign(ctx, c.Blob, sas.BlobPermissions{Read: true}, ttl)
	if err != nil {
		return err
	}
	c.URL, c.URLExpiresAt = u, expiry
	return nil
}

// UploadURL returns a write-only SAS URL (create and write; no read, list
// or delete) for one blob of the store's container, valid for ttl: where a
// party outside the cloud (a deployment agent) PUTs an artifact the
// server then references by name. The blob name must not escape the
// container ("..", leading "/").
func (s *Store) UploadURL(ctx context.Context, blobName string, ttl time.Duration) (string, time.Time, error) {
	if err := plainName(blobName); err != nil {
		return "", time.Time{}, fmt.Errorf("cannot sign upload URL: %w", err)
	}
	return s.sign(ctx, blobName, sas.BlobPermissions{Create: true, Write: true}, ttl)
}

// ReadURL returns a read-only SAS URL for one blob of the store's
// container, valid for ttl, for a blob named by convention rather than by
// a claim (it may not exist yet: the reader then gets 404), such as a
// workspace's Terraform state.
func (s *Store) ReadURL(ctx context.Context, blobName string, ttl time.Duration) (string, time.Time, error) {
	if err := plainName(blobName); err != nil {
		return "", time.Time{}, fmt.Errorf("cannot sign read URL: %w", err)
	}
	return s.sign(ctx, blobName, sas.BlobPermissions{Read: true}, ttl)
}

// plainName refuses blob names that could escape the container.
func plainName(blobName string) error {
	if blobName == "" || strings.HasPrefix(blobName, "/") || strings.Contains(blobName, "..") {
		return fmt.Errorf("blob name %q is not a plain name", blobName)
	}
	return nil
}

// sign returns a SAS URL for one blob with perms, valid for ttl.
func (s *Store) sign(ctx context.Context, blobName string, perms sas.BlobPermissions, ttl time.Duration) (string, time.Time, error) {
	start := s.now().UTC().Add(-5 * time.Minute) // clock skew between us and storage
	expiry := s.now().UTC().Add(ttl).Truncate(time.Second)
	bc := s.client.ServiceClient().NewContainerClient(s.container).NewBlobClient(blobName)
	if !s.delegated {
		u, err := bc.GetSASURL(perms, expiry, &blob.GetSASURLOptions{StartTime: &start})
		if err != nil {
			return "", time.Time{}, fmt.Errorf("cannot sign URL for %s/%s: %w", s.container, blobName, err)
		}
		return u, expiry, nil
	}
	udc, err := s.delegation(ctx, expiry)
	if err != nil {
		return "", time.Time{}, err
	}
	qp, err := sas.BlobSignatureValues{
		Protocol:      sas.ProtocolHTTPS,
		StartTime:     start,
		ExpiryTime:    expiry,
		Permissions:   perms.String(),
		ContainerName: s.container,
		BlobName:      blobName,
	}.SignWithUserDelegation(udc)
	if err != nil {
		return "", time.Time{}, fmt.Errorf("cannot sign URL for %s/%s: %w", s.container, blobName, err)
	}
	return bc.URL() + "?" + qp.Encode(), expiry, nil
}

// delegation returns a user delegation credential valid at least until
// needUntil, fetching a new one (valid 7 days, the maximum) when needed.
func (s *Store) delegation(ctx context.Context, needUntil time.Time) (*service.UserDelegationCredential, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.udc != nil && s.udcTill.After(needUntil) {
		return s.udc, nil
	}
	start := s.now().UTC().Add(-5 * time.Minute)
	till := s.now().UTC().Add(7*24*time.Hour - 10*time.Minute)
	udc, err := s.client.ServiceClient().GetUserDelegationCredential(ctx, service.KeyInfo{
		Start:  to.Ptr(start.Format(sas.TimeFormat)),
		Expiry: to.Ptr(till.Format(sas.TimeFormat)),
	}, nil)
	if err != nil {
		return nil, fmt.Errorf("cannot get user delegation key: %w", err)
	}
	s.udc, s.udcTill = udc, till
	return udc, nil
}

func (s *Store) own(c *envelope.Claim) error {
	if c == nil {
		return errors.New("claim is nil")
	}
	if err := c.Validate(); err != nil {
		return err
	}
	if c.Container != s.container {
		return fmt.Errorf("%w: %q, this store uses %q", ErrForeignClaim, c.Container, s.container)
	}
	return nil
}

// Fetch downloads a claim's body with the store's credentials and verifies
// it. Only claims in the store's own container are fetched.
func (s *Store) Fetch(ctx context.Context, c *envelope.Claim) ([]byte, error) {
	if err := s.own(c); err != nil {
		return nil, err
	}
	if c.Size > s.max {
		return nil, fmt.Errorf("%w: claim of %d bytes, the limit is %d", ErrBodyTooLarge, c.Size, s.max)
	}
	resp, err := s.client.DownloadStream(ctx, c.Container, c.Blob, nil)
	if err != nil {
		if bloberror.HasCode(err, bloberror.BlobNotFound, bloberror.ContainerNotFound) {
			return nil, fmt.Errorf("%w: %s/%s", ErrNotFound, c.Container, c.Blob)
		}
		return nil, fmt.Errorf("cannot download claim blob %s/%s: %w", c.Container, c.Blob, err)
	}
	defer resp.Body.Close()
	return readVerified(resp.Body, c)
}

// Delete removes a claim's blob; a blob already gone is not an error.
func (s *Store) Delete(ctx context.Context, c *envelope.Claim) error {
	if err := s.own(c); err != nil {
		return err
	}
	_, err := s.client.DeleteBlob(ctx, c.Container, c.Blob, nil)
	if err != nil && !bloberror.HasCode(err, bloberror.BlobNotFound) {
		return fmt.Errorf("cannot delete claim blob %s/%s: %w", c.Container, c.Blob, err)
	}
	return nil
}

// FetchURL downloads a claim's body through its SAS URL (no storage
// credentials needed) and verifies it. max bounds what is accepted whatever
// the claim says; client may be nil for http.DefaultClient.
func FetchURL(ctx context.Context, client *http.Client, c *envelope.Claim, max int64) ([]byte, error) {
	if c == nil || c.URL == "" {
		return nil, errors.New("claim has no URL")
	}
	if err := c.Validate(); err != nil {
		return nil, err
	}
	if c.Size > max {
		return nil, fmt.Errorf("%w: claim of %d bytes, the limit is %d", ErrBodyTooLarge, c.Size, max)
	}
	if client == nil {
		client = http.DefaultClient
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.URL, nil)
	if err != nil {
		return nil, fmt.Errorf("cannot fetch claim: %w", err)
	}
	req.Header.Set("x-ms-version", sas.Version)
	resp, err := client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("cannot fetch claim %s/%s: %w", c.Container, c.Blob, err)
	}
	defer resp.Body.Close()
	switch {
	case resp.StatusCode == http.StatusNotFound:
		return nil, fmt.Errorf("%w: %s/%s", ErrNotFound, c.Container, c.Blob)
	case resp.StatusCode != http.StatusOK:
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return nil, fmt.Errorf("cannot fetch claim %s/%s: HTTP %d: %s", c.Container, c.Blob, resp.StatusCode, bytes.TrimSpace(msg))
	}
	return readVerified(resp.Body, c)
}

// readVerified reads at most c.Size+1 bytes and checks size and hash.
func readVerified(r io.Reader, c *envelope.Claim) ([]byte, error) {
	body, err := io.ReadAll(io.LimitReader(r, c.Size+1))
	if err != nil {
		return nil, fmt.Errorf("cannot read claim blob %s/%s: %w", c.Container, c.Blob, err)
	}
	if int64(len(body)) != c.Size {
		return nil, fmt.Errorf("%w: %s/%s has %d+ bytes, claim says %d", ErrCorrupt, c.Container, c.Blob, len(body), c.Size)
	}
	sum := sha256.Sum256(body)
	if hex.EncodeToString(sum[:]) != c.SHA256 {
		return nil, fmt.Errorf("%w: %s/%s SHA-256 differs", ErrCorrupt, c.Container, c.Blob)
	}
	return body, nil
}
