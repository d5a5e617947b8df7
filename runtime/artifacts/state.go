package artifacts

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/bloberror"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/container"

	"github.com/botehq/platform/runtime/ids"
	"github.com/botehq/platform/runtime/runs"
	"github.com/botehq/platform/runtime/runspec"
)

// Terraform state of a workspace (local backend) lives in three kinds of
// blob, all under "<tenant>/<workspace>/":
//
//   - "<run>/state-c<claim>.tfstate": what one apply claim uploaded
//     (StagedState names it). The agent writes it through an upload link;
//     nothing reads it until the server accepts that claim's result.
//   - "state/versions/<version>.tfstate": every state the server promoted,
//     written once and never changed, so a bad state can be rolled back.
//   - "state/terraform.tfstate": the current state (CurrentState), what
//     the next plan starts from; only PromoteState writes it, with a
//     condition on what it read, so two promotions never interleave.
//
// Azurite has no blob versioning, and versioning alone would not say
// which run left which state; the copies under versions/ do both.

// ErrConflict: another claim promoted a state while this one did.
var ErrConflict = errors.New("another state was promoted meanwhile")

// Metadata on promoted state blobs.
const (
	metaVersion = "version"
	metaRun     = "run"
	metaClaim   = "claim"
	metaSHA256  = "sha256"
)

// workspaceKey names a workspace's state.
type workspaceKey struct {
	Tenant    ids.TenantID
	Workspace ids.WorkspaceID
}

func (k workspaceKey) prefix() string {
	return string(k.Tenant) + "/" + string(k.Workspace) + "/state/"
}

// CurrentState is the blob of a workspace's current state.
func CurrentState(tenant ids.TenantID, workspace ids.WorkspaceID) string {
	return workspaceKey{tenant, workspace}.prefix() + "terraform.tfstate"
}

// StagedState is the blob one apply claim (run and claim token) uploads
// its state to.
func StagedState(tenant ids.TenantID, workspace ids.WorkspaceID, run, claim string) string {
	return string(tenant) + "/" + string(workspace) + "/" + run + "/state-c" + claim + ".tfstate"
}

func (k workspaceKey) versionBlob(version string) string {
	return k.prefix() + "versions/" + version + ".tfstate"
}

// versionPattern is what version ids look like: "<run>-c<claim>" for a
// promoted state, "before-<run>-c<claim>" for a state found current
// without a version (written before versions were kept).
var versionPattern = regexp.MustCompile(`^(before-)?run-[0-9a-z]{16}-c[0-9]{1,9}$`)

// CheckStateVersion says why v is not a version id (runs.ErrInvalid), or
// nil.
func CheckStateVersion(v string) error {
	if !versionPattern.MatchString(v) {
		return fmt.Errorf("%w: state version %q is not a version id such as run-0123456789abcdef-c5", runs.ErrInvalid, v)
	}
	return nil
}

// StateVersion describes one kept state (opsapi.StateVersion is its
// form in the API).
type StateVersion struct {
	// Version names it for OpenState ("run-…-c5").
	Version string
	// Run and Claim made it (empty for a state kept from before versions).
	Run, Claim string
	// Size in bytes and SHA-256 of the state file.
	Size   int64
	SHA256 string
	// Created is when it was promoted.
	Created time.Time
	// Current: the workspace's state now.
	Current bool
}

// Promotion is one apply claim's state, as its agent reported it.
type Promotion struct {
	Tenant     ids.TenantID
	Workspace  ids.WorkspaceID
	Run, Claim string
	// Size and SHA256 are what the agent reported uploading.
	Size   int64
	SHA256 string
}

// Validate checks the names and the report.
func (p Promotion) Validate() error {
	if err := (RunKey{p.Tenant, p.Workspace, p.Run}).Validate(); err != nil {
		return err
	}
	if !versionPattern.MatchString(p.version()) {
		return fmt.Errorf("claim %q is malformed", p.Claim)
	}
	if p.Size <= 0 || p.Size > runspec.MaxStateBytes {
		return fmt.Errorf("state size %d must be from 1 to %d bytes", p.Size, runspec.MaxStateBytes)
	}
	if len(p.SHA256) != 64 {
		return fmt.Errorf("state SHA-256 %q is malformed", p.SHA256)
	}
	return nil
}

func (p Promotion) version() string { return p.Run + "-c" + p.Claim }

// PromoteState makes the state a claim staged the workspace's current
// state, keeping it as a version. The staged blob must hold exactly
// p.Size bytes with p.SHA256 (else ErrCorrupt; a missing blob is
// ErrNotFound). The current state is replaced only if it is still what
// this call read (ETag); if another claim's state was promoted meanwhile
// the call fails with ErrConflict and changes nothing current. Promoting
// the same claim again is a no-op, so a redelivered result is harmless.
func (s *Store) PromoteState(ctx context.Context, p Promotion) (StateVersion, error) {
	if err := p.Validate(); err != nil {
		return StateVersion{}, fmt.Errorf("%w: cannot promote state: %v", runs.ErrInvalid, err)
	}
	k := workspaceKey{p.Tenant, p.Workspace}
	staged := StagedState(p.Tenant, p.Workspace, p.Run, p.Claim)
	data, err := s.readBlob(ctx, staged, p.Size)
	if err != nil {
		return StateVersion{}, fmt.Errorf("cannot promote the state of run %s claim %s: %w", p.Run, p.Claim, err)
	}
	if sum := sha256.Sum256(data); int64(len(data)) != p.Size || hex.EncodeToString(sum[:]) != p.SHA256 {
		return StateVersion{}, fmt.Errorf("%w: the state run %s claim %s uploaded has %d bytes with SHA-256 %x, its agent reported %d bytes with %s",
			ErrCorrupt, p.Run, p.Claim, len(data), sum, p.Size, p.SHA256)
	}
	current := s.blob(CurrentState(p.Tenant, p.Workspace))
	props, err := current.GetProperties(ctx, nil)
	exists := err == nil
	if err != nil && !bloberror.HasCode(err, bloberror.BlobNotFound) {
		return StateVersion{}, fmt.Errorf("cannot read the current state of %s/%s: %w", p.Tenant, p.Workspace, err)
	}
	if exists && metaValue(props.Metadata, metaVersion) == p.version() {
		return describe(p.version(), props.Metadata, props.ContentLength, props.LastModified, true), nil // promoted before
	}
	if exists && metaValue(props.Metadata, metaVersion) == "" {
		// A state from before versions were kept: keep it before replacing it.
		if err := s.keepUnversioned(ctx, k, "before-"+p.version()); err != nil {
			return StateVersion{}, err
		}
	}
	meta := map[string]*string{
		metaVersion: to.Ptr(p.version()), metaRun: to.Ptr(p.Run), metaClaim: to.Ptr(p.Claim), metaSHA256: to.Ptr(p.SHA256),
	}
	if err := s.putOnce(ctx, k.versionBlob(p.version()), data, meta); err != nil {
		return StateVersion{}, err
	}
	cond := &blob.ModifiedAccessConditions{IfNoneMatch: to.Ptr(azcore.ETagAny)}
	if exists {
		cond = &blob.ModifiedAccessConditions{IfMatch: props.ETag}
	}
	err = s.putCurrent(ctx, p.Tenant, p.Workspace, data, meta, cond)
	if errors.Is(err, ErrConflict) {
		// Someone promoted meanwhile: this claim again (fine), or another.
		now, gerr := current.GetProperties(ctx, nil)
		if gerr == nil && metaValue(now.Metadata, metaVersion) == p.version() {
			return describe(p.version(), now.Metadata, now.ContentLength, now.LastModified, true), nil
		}
		return StateVersion{}, fmt.Errorf("cannot promote the state of run %s claim %s: %w", p.Run, p.Claim, err)
	}
	if err != nil {
		return StateVersion{}, err
	}
	return StateVersion{Version: p.version(), Run: p.Run, Claim: p.Claim, Size: p.Size, SHA256: p.SHA256, Created: time.Now().UTC(), Current: true}, nil
}

// RestoreState makes a kept version the workspace's current state again
// (a rollback); the state it replaces stays kept. Like a promotion it
// replaces the current state only if it is still what this call read
// (else ErrConflict). The caller makes sure no run holds the workspace:
// a saved plan carries the state it was planned on. An unknown version is
// ErrNotFound, a malformed one runs.ErrInvalid.
func (s *Store) RestoreState(ctx context.Context, tenant ids.TenantID, workspace ids.WorkspaceID, version string) (StateVersion, error) {
	if err := stateScope(tenant, workspace); err != nil {
		return StateVersion{}, err
	}
	if err := CheckStateVersion(version); err != nil {
		return StateVersion{}, err
	}
	k := workspaceKey{tenant, workspace}
	kept := s.blob(k.versionBlob(version))
	vprops, err := kept.GetProperties(ctx, nil)
	if bloberror.HasCode(err, bloberror.BlobNotFound) {
		return StateVersion{}, fmt.Errorf("%w: workspace %s has no state version %s", ErrNotFound, workspace, version)
	}
	if err != nil {
		return StateVersion{}, fmt.Errorf("cannot read state version %s: %w", version, err)
	}
	data, err := s.readBlob(ctx, k.versionBlob(version), runspec.MaxStateBytes)
	if err != nil {
		return StateVersion{}, err
	}
	current := s.blob(CurrentState(tenant, workspace))
	props, err := current.GetProperties(ctx, nil)
	exists := err == nil
	switch {
	case err != nil && !bloberror.HasCode(err, bloberror.BlobNotFound):
		return StateVersion{}, fmt.Errorf("cannot read the current state of %s/%s: %w", tenant, workspace, err)
	case exists && metaValue(props.Metadata, metaVersion) == version:
		return describe(version, props.Metadata, props.ContentLength, props.LastModified, true), nil
	case exists && metaValue(props.Metadata, metaVersion) == "":
		if err := s.keepUnversioned(ctx, k, "before-"+version); err != nil {
			return StateVersion{}, err
		}
	}
	meta := map[string]*string{metaVersion: to.Ptr(version)}
	for _, key := range []string{metaRun, metaClaim, metaSHA256} {
		if v := metaValue(vprops.Metadata, key); v != "" {
			meta[key] = to.Ptr(v)
		}
	}
	cond := &blob.ModifiedAccessConditions{IfNoneMatch: to.Ptr(azcore.ETagAny)}
	if exists {
		cond = &blob.ModifiedAccessConditions{IfMatch: props.ETag}
	}
	if err := s.putCurrent(ctx, tenant, workspace, data, meta, cond); err != nil {
		return StateVersion{}, err
	}
	return describe(version, meta, to.Ptr(int64(len(data))), to.Ptr(time.Now().UTC()), true), nil
}

// putCurrent writes the current state on condition; a condition that no
// longer holds is ErrConflict.
func (s *Store) putCurrent(ctx context.Context, tenant ids.TenantID, workspace ids.WorkspaceID, data []byte, meta map[string]*string, cond *blob.ModifiedAccessConditions) error {
	_, err := s.client.UploadBuffer(ctx, s.container, CurrentState(tenant, workspace), data, &azblob.UploadBufferOptions{
		Metadata:         meta,
		HTTPHeaders:      &blob.HTTPHeaders{BlobContentType: to.Ptr("application/json")},
		AccessConditions: &blob.AccessConditions{ModifiedAccessConditions: cond},
	})
	switch {
	case bloberror.HasCode(err, bloberror.ConditionNotMet, bloberror.BlobAlreadyExists):
		return fmt.Errorf("cannot write the current state of %s/%s: %w", tenant, workspace, ErrConflict)
	case err != nil:
		return fmt.Errorf("cannot write the current state of %s/%s: %w", tenant, workspace, err)
	}
	return nil
}

// metaValue reads blob metadata whatever the case of its keys: the SDK
// hands back the canonical header form ("Version") of what was set as
// "version".
func metaValue(meta map[string]*string, key string) string {
	for k, v := range meta {
		if v != nil && strings.EqualFold(k, key) {
			return *v
		}
	}
	return ""
}

func (s *Store) blob(name string) *blob.Client {
	return s.client.ServiceClient().NewContainerClient(s.container).NewBlobClient(name)
}

// readBlob reads a whole blob of at most max bytes (more is ErrCorrupt).
func (s *Store) readBlob(ctx context.Context, name string, max int64) ([]byte, error) {
	resp, err := s.client.DownloadStream(ctx, s.container, name, nil)
	if bloberror.HasCode(err, bloberror.BlobNotFound, bloberror.ContainerNotFound) {
		return nil, fmt.Errorf("%w: %s", ErrNotFound, name)
	}
	if err != nil {
		return nil, fmt.Errorf("cannot download %s: %w", name, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, max+1))
	if err != nil {
		return nil, fmt.Errorf("cannot download %s: %w", name, err)
	}
	if int64(len(data)) > max {
		return nil, fmt.Errorf("%w: %s is longer than %d bytes", ErrCorrupt, name, max)
	}
	return data, nil
}

// putOnce writes a version blob that must not change once written; an
// existing one with the same content is fine (a retried promotion).
func (s *Store) putOnce(ctx context.Context, name string, data []byte, meta map[string]*string) error {
	_, err := s.client.UploadBuffer(ctx, s.container, name, data, &azblob.UploadBufferOptions{
		Metadata:         meta,
		HTTPHeaders:      &blob.HTTPHeaders{BlobContentType: to.Ptr("application/json")},
		AccessConditions: &blob.AccessConditions{ModifiedAccessConditions: &blob.ModifiedAccessConditions{IfNoneMatch: to.Ptr(azcore.ETagAny)}},
	})
	if bloberror.HasCode(err, bloberror.BlobAlreadyExists, bloberror.ConditionNotMet) {
		have, rerr := s.readBlob(ctx, name, int64(len(data)))
		if rerr == nil && bytes.Equal(have, data) {
			return nil
		}
		return fmt.Errorf("%w: state version %s exists with other content", ErrExists, name)
	}
	if err != nil {
		return fmt.Errorf("cannot keep state version %s: %w", name, err)
	}
	return nil
}

// keepUnversioned copies the current state, written before versions were
// kept, to versions/<version>.
func (s *Store) keepUnversioned(ctx context.Context, k workspaceKey, version string) error {
	data, err := s.readBlob(ctx, CurrentState(k.Tenant, k.Workspace), runspec.MaxStateBytes)
	if err != nil {
		return fmt.Errorf("cannot keep the current state: %w", err)
	}
	sum := sha256.Sum256(data)
	return s.putOnce(ctx, k.versionBlob(version), data, map[string]*string{metaVersion: to.Ptr(version), metaSHA256: to.Ptr(hex.EncodeToString(sum[:]))})
}

func describe(version string, meta map[string]*string, size *int64, created *time.Time, current bool) StateVersion {
	v := StateVersion{Version: version, Current: current}
	v.Run, v.Claim, v.SHA256 = metaValue(meta, metaRun), metaValue(meta, metaClaim), metaValue(meta, metaSHA256)
	if size != nil {
		v.Size = *size
	}
	if created != nil {
		v.Created = created.UTC()
	}
	return v
}

// stateScope refuses a state request that names no workspace (the ids
// themselves are typed: they were checked where they entered).
func stateScope(tenant ids.TenantID, workspace ids.WorkspaceID) error {
	if tenant == "" || workspace == "" {
		return fmt.Errorf("%w: a tenant and a workspace are required", runs.ErrInvalid)
	}
	return nil
}

// StateVersions lists a workspace's kept states, newest promotion first; the one
// the workspace uses now is Current. A state from before versions were
// kept that is still current is listed as version "current".
func (s *Store) StateVersions(ctx context.Context, tenant ids.TenantID, workspace ids.WorkspaceID) ([]StateVersion, error) {
	if err := stateScope(tenant, workspace); err != nil {
		return nil, err
	}
	k := workspaceKey{tenant, workspace}
	currentVersion := ""
	props, err := s.blob(CurrentState(tenant, workspace)).GetProperties(ctx, nil)
	switch {
	case err == nil && metaValue(props.Metadata, metaVersion) != "":
		currentVersion = metaValue(props.Metadata, metaVersion)
	case err == nil:
		currentVersion = CurrentVersion
	case !bloberror.HasCode(err, bloberror.BlobNotFound):
		return nil, fmt.Errorf("cannot read the current state of %s/%s: %w", tenant, workspace, err)
	}
	var out []StateVersion
	if currentVersion == CurrentVersion {
		out = append(out, describe(CurrentVersion, props.Metadata, props.ContentLength, props.LastModified, true))
	}
	prefix := k.prefix() + "versions/"
	pager := s.client.NewListBlobsFlatPager(s.container, &azblob.ListBlobsFlatOptions{
		Prefix: &prefix, Include: container.ListBlobsInclude{Metadata: true},
	})
	for pager.More() {
		page, err := pager.NextPage(ctx)
		if err != nil {
			return nil, fmt.Errorf("cannot list the state versions of %s/%s: %w", tenant, workspace, err)
		}
		for _, b := range page.Segment.BlobItems {
			version := strings.TrimSuffix(strings.TrimPrefix(*b.Name, prefix), ".tfstate")
			v := describe(version, b.Metadata, b.Properties.ContentLength, b.Properties.CreationTime, version == currentVersion)
			if v.Created.IsZero() && b.Properties.LastModified != nil {
				v.Created = b.Properties.LastModified.UTC()
			}
			out = append(out, v)
		}
	}
	// Runs of a workspace run one at a time in id order, so version ids
	// order promotions (creation times have only seconds in Azurite).
	sort.SliceStable(out, func(i, j int) bool { return versionAfter(out[i].Version, out[j].Version) })
	return out, nil
}

// versionAfter reports whether version a was promoted after b: a later
// run, a later claim of the same run, or the state a "before-" version
// kept.
func versionAfter(a, b string) bool {
	key := func(v string) (string, int, int) {
		if v == CurrentVersion {
			return "~", 0, 0 // an unversioned current state is the newest
		}
		v, before := strings.CutPrefix(v, "before-")
		run, claim, _ := strings.Cut(v, "-c")
		n, _ := strconv.Atoi(claim)
		if before {
			return run, n, 0
		}
		return run, n, 1
	}
	ra, ca, ba := key(a)
	rb, cb, bb := key(b)
	switch {
	case ra != rb:
		return ra > rb
	case ca != cb:
		return ca > cb
	}
	return ba > bb
}

// StateSnapshot names a blob that holds the workspace's current state and
// will hold exactly that for good: its version blob. A plan reads it, so
// its read link never shows a state promoted later. Without any state it
// names a version blob that is never written (the reader gets 404: no
// state); a state from before versions were kept has no snapshot and the
// current blob is named.
func (s *Store) StateSnapshot(ctx context.Context, tenant ids.TenantID, workspace ids.WorkspaceID) (string, error) {
	if err := stateScope(tenant, workspace); err != nil {
		return "", err
	}
	k := workspaceKey{tenant, workspace}
	props, err := s.blob(CurrentState(tenant, workspace)).GetProperties(ctx, nil)
	switch {
	case bloberror.HasCode(err, bloberror.BlobNotFound):
		return k.versionBlob("none"), nil // not a version id: never written
	case err != nil:
		return "", fmt.Errorf("cannot read the current state of %s/%s: %w", tenant, workspace, err)
	}
	if v := metaValue(props.Metadata, metaVersion); v != "" {
		return k.versionBlob(v), nil
	}
	return CurrentState(tenant, workspace), nil
}

// CurrentVersion asks OpenState for the current state.
const CurrentVersion = "current"

// OpenState reads a workspace's current state (version "" or
// CurrentVersion) or a kept version, at most runspec.MaxStateBytes. No state is
// ErrNotFound; a malformed version is runs.ErrInvalid.
func (s *Store) OpenState(ctx context.Context, tenant ids.TenantID, workspace ids.WorkspaceID, version string) ([]byte, error) {
	if err := stateScope(tenant, workspace); err != nil {
		return nil, err
	}
	name := CurrentState(tenant, workspace)
	if version != "" && version != CurrentVersion {
		if err := CheckStateVersion(version); err != nil {
			return nil, err
		}
		name = workspaceKey{tenant, workspace}.versionBlob(version)
	}
	return s.readBlob(ctx, name, runspec.MaxStateBytes)
}
