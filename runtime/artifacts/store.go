package artifacts

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"strings"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/streaming"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/appendblob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/bloberror"

	"github.com/botehq/platform/runtime/ids"
	"github.com/botehq/platform/runtime/runs"
	"github.com/botehq/platform/runtime/tfarchive"
)

// DefaultContainer holds run artifacts unless Config says otherwise.
const DefaultContainer = "boteruns"

// MaxAppendBlock is the most one log append sends in one block.
const MaxAppendBlock = 4 << 20

// More errors callers branch on.
var (
	// ErrNotFound: no such artifact.
	ErrNotFound = errors.New("artifact not found")
	// ErrCorrupt: an artifact's bytes do not match its reference.
	ErrCorrupt = errors.New("artifact does not match its reference")
	// ErrForeign: a reference to another tenant's run or another container.
	ErrForeign = errors.New("artifact belongs elsewhere")
	// ErrExists: artifacts are written once.
	ErrExists = errors.New("artifact already exists")
	// ErrLogGap: a log append starts past the log's end (an earlier batch is
	// missing); retry after the earlier one.
	ErrLogGap = errors.New("log append leaves a gap")
)

// Store keeps run artifacts in one Blob container.
type Store struct {
	client    *azblob.Client
	container string
}

// New returns a store on container (DefaultContainer if empty) of client,
// which the caller builds from a connection string, or from the blob
// endpoint in the stack outputs and an Entra ID credential. create makes
// the container if it is missing (local use; in Azure the infrastructure
// creates it).
func New(ctx context.Context, client *azblob.Client, container string, create bool) (*Store, error) {
	if client == nil {
		return nil, errors.New("artifacts: blob client is nil")
	}
	if container == "" {
		container = DefaultContainer
	}
	if create {
		_, err := client.CreateContainer(ctx, container, nil)
		if err != nil && !bloberror.HasCode(err, bloberror.ContainerAlreadyExists) {
			return nil, fmt.Errorf("cannot create container %q: %w", container, err)
		}
	}
	return &Store{client: client, container: container}, nil
}

// Container is the container artifacts live in.
func (s *Store) Container() string { return s.container }

// RunKey names the run an artifact belongs to.
type RunKey struct {
	Tenant    ids.TenantID
	Workspace ids.WorkspaceID
	Run       string
}

// Validate checks the run id the blob names are built from (the tenant and
// workspace ids are typed: they were checked where they entered).
func (k RunKey) Validate() error {
	if k.Tenant == "" || k.Workspace == "" {
		return fmt.Errorf("run %s names no tenant or workspace", k.Run)
	}
	if !runs.ValidRunID(k.Run) {
		return fmt.Errorf("run id %q is malformed", k.Run)
	}
	return nil
}

// Kind is what an artifact holds.
type Kind string

// Artifact kinds.
const (
	Bundle  Kind = "bundle"  // the configuration to run (Pack)
	Workdir Kind = "workdir" // the working directory with the saved plan (Pack with Workdir)
	Log     Kind = "log"     // the run's log lines (an append blob)
	Plan    Kind = "plan"    // the saved plan as JSON (planrender.Keep)
)

// blobName is "<tenant>/<workspace>/<run>/<kind>[-<upload id>.tar.gz|.json]":
// every name starts with its tenant, which Open checks against the
// caller's tenant. Each upload gets a fresh name, so an upload that failed
// half way never blocks its retry and a stored archive is never replaced.
func (k RunKey) blobName(kind Kind) string {
	name := string(k.Tenant) + "/" + string(k.Workspace) + "/" + k.Run + "/" + string(kind)
	if kind != Log {
		var id [6]byte
		_, _ = rand.Read(id[:]) // never fails (crypto/rand)
		name += "-" + hex.EncodeToString(id[:]) + kind.ext()
	}
	return name
}

func (k Kind) ext() string {
	if k == Plan {
		return ".json"
	}
	return ".tar.gz"
}

func (k Kind) contentType() string {
	if k == Plan {
		return "application/json"
	}
	return "application/gzip"
}

// Put uploads an archive (Bundle or Workdir) or a plan from r, at most max bytes,
// and returns its reference (no URL; sign one with a claimcheck.Store on
// the same container to hand it to an agent). An artifact is written once
// under a fresh name and read back only if its SHA-256 matches: the plan
// that was approved is the plan that is applied.
func (s *Store) Put(ctx context.Context, key RunKey, kind Kind, r io.Reader, max int64) (*runs.Artifact, error) {
	if err := key.Validate(); err != nil {
		return nil, err
	}
	if kind != Bundle && kind != Workdir && kind != Plan {
		return nil, fmt.Errorf("cannot put a %q artifact: only %q, %q and %q are uploaded whole", kind, Bundle, Workdir, Plan)
	}
	name := key.blobName(kind)
	hr := &hashReader{r: r, h: sha256.New(), max: max}
	_, err := s.client.UploadStream(ctx, s.container, name, hr, &azblob.UploadStreamOptions{
		Concurrency:      2,
		HTTPHeaders:      &blob.HTTPHeaders{BlobContentType: to.Ptr(kind.contentType())},
		AccessConditions: &blob.AccessConditions{ModifiedAccessConditions: &blob.ModifiedAccessConditions{IfNoneMatch: to.Ptr(azcore.ETagAny)}},
	})
	var le *tfarchive.LimitError
	switch {
	case errors.As(err, &le):
		return nil, fmt.Errorf("cannot upload %s of run %s: %w", kind, key.Run, le)
	case bloberror.HasCode(err, bloberror.BlobAlreadyExists, bloberror.ConditionNotMet):
		return nil, fmt.Errorf("%s of run %s: %w", kind, key.Run, ErrExists)
	case err != nil:
		return nil, fmt.Errorf("cannot upload %s of run %s: %w", kind, key.Run, err)
	}
	return &runs.Artifact{Container: s.container, Blob: name, Size: hr.n, SHA256: hex.EncodeToString(hr.h.Sum(nil))}, nil
}

type hashReader struct {
	r   io.Reader
	h   hash.Hash
	n   int64
	max int64
}

func (h *hashReader) Read(p []byte) (int, error) {
	n, err := h.r.Read(p)
	h.h.Write(p[:n])
	h.n += int64(n)
	if h.n > h.max {
		return n, &tfarchive.LimitError{What: "compressed size", Limit: h.max, Value: h.n}
	}
	return n, err
}

// own checks that c is an artifact of tenant in this store.
func (s *Store) own(tenant ids.TenantID, c *runs.Artifact) error {
	if err := c.Validate(); err != nil {
		return err
	}
	if c.Container != s.container || !strings.HasPrefix(c.Blob, string(tenant)+"/") || strings.Contains(c.Blob, "..") {
		return fmt.Errorf("%w: %s/%s is not an artifact of tenant %s", ErrForeign, c.Container, c.Blob, tenant)
	}
	return nil
}

// Open streams an artifact of tenant. The reader fails with ErrCorrupt at
// the end if size or SHA-256 differ from c, so unpack into a scratch
// directory and use it only once the reader reached EOF cleanly.
func (s *Store) Open(ctx context.Context, tenant ids.TenantID, c *runs.Artifact) (io.ReadCloser, error) {
	if err := s.own(tenant, c); err != nil {
		return nil, err
	}
	resp, err := s.client.DownloadStream(ctx, c.Container, c.Blob, nil)
	if err != nil {
		if bloberror.HasCode(err, bloberror.BlobNotFound, bloberror.ContainerNotFound) {
			return nil, fmt.Errorf("%w: %s", ErrNotFound, c.Blob)
		}
		return nil, fmt.Errorf("cannot download %s: %w", c.Blob, err)
	}
	return &verifyReader{rc: resp.Body, h: sha256.New(), claim: c}, nil
}

type verifyReader struct {
	rc    io.ReadCloser
	h     hash.Hash
	n     int64
	claim *runs.Artifact
}

func (v *verifyReader) Read(p []byte) (int, error) {
	n, err := v.rc.Read(p)
	v.h.Write(p[:n])
	v.n += int64(n)
	if v.n > v.claim.Size {
		return n, fmt.Errorf("%w: %s is longer than %d bytes", ErrCorrupt, v.claim.Blob, v.claim.Size)
	}
	if errors.Is(err, io.EOF) {
		if v.n != v.claim.Size {
			return n, fmt.Errorf("%w: %s has %d bytes, expected %d", ErrCorrupt, v.claim.Blob, v.n, v.claim.Size)
		}
		if hex.EncodeToString(v.h.Sum(nil)) != v.claim.SHA256 {
			return n, fmt.Errorf("%w: %s SHA-256 differs", ErrCorrupt, v.claim.Blob)
		}
	}
	return n, err
}

func (v *verifyReader) Close() error { return v.rc.Close() }

// Lines encodes log lines for AppendLog, one per line; a line's own
// newlines are kept as separate lines.
func Lines(lines []string) []byte {
	var b bytes.Buffer
	for _, l := range lines {
		b.WriteString(strings.TrimSuffix(l, "\n"))
		b.WriteByte('\n')
	}
	return b.Bytes()
}

// AppendLog appends data (whole lines, see Lines) to a run's log and
// returns the log's new length. at is where the caller believes the log
// ends (the length an earlier AppendLog returned, 0 for the first batch),
// which makes a redelivered batch harmless: if the log already holds
// [at, at+len(data)) the append is skipped. A batch starting past the end
// fails with ErrLogGap. at < 0 appends wherever the end is.
func (s *Store) AppendLog(ctx context.Context, key RunKey, at int64, data []byte) (int64, error) {
	if err := key.Validate(); err != nil {
		return 0, err
	}
	ab := s.client.ServiceClient().NewContainerClient(s.container).NewAppendBlobClient(key.blobName(Log))
	end := at
	for len(data) > 0 {
		n := min(len(data), MaxAppendBlock)
		next, err := s.appendBlock(ctx, ab, key, end, data[:n])
		if err != nil {
			return 0, err
		}
		end, data = next, data[n:]
	}
	if end < 0 { // nothing appended, position unknown
		return s.logSize(ctx, ab)
	}
	return end, nil
}

func (s *Store) appendBlock(ctx context.Context, ab *appendblob.Client, key RunKey, at int64, block []byte) (int64, error) {
	opts := &appendblob.AppendBlockOptions{}
	if at >= 0 {
		opts.AppendPositionAccessConditions = &appendblob.AppendPositionAccessConditions{AppendPosition: to.Ptr(at)}
	}
	for attempt := 0; ; attempt++ {
		resp, err := ab.AppendBlock(ctx, streaming.NopCloser(bytes.NewReader(block)), opts)
		switch {
		case err == nil:
			off, perr := parseOffset(resp.BlobAppendOffset)
			if perr != nil {
				return 0, perr
			}
			return off + int64(len(block)), nil
		case bloberror.HasCode(err, bloberror.BlobNotFound) && attempt == 0:
			_, cerr := ab.Create(ctx, &appendblob.CreateOptions{
				HTTPHeaders:      &blob.HTTPHeaders{BlobContentType: to.Ptr("text/plain; charset=utf-8")},
				AccessConditions: &blob.AccessConditions{ModifiedAccessConditions: &blob.ModifiedAccessConditions{IfNoneMatch: to.Ptr(azcore.ETagAny)}},
			})
			if cerr != nil && !bloberror.HasCode(cerr, bloberror.BlobAlreadyExists, bloberror.ConditionNotMet) {
				return 0, fmt.Errorf("cannot create log of run %s: %w", key.Run, cerr)
			}
		case bloberror.HasCode(err, bloberror.AppendPositionConditionNotMet):
			size, serr := s.logSize(ctx, ab)
			switch {
			case serr != nil:
				return 0, serr
			case size >= at+int64(len(block)):
				return at + int64(len(block)), nil // delivered before
			case size < at:
				return 0, fmt.Errorf("%w: run %s log ends at %d, batch starts at %d", ErrLogGap, key.Run, size, at)
			}
			return 0, fmt.Errorf("run %s log ends at %d, inside the batch [%d, %d): batches overlap", key.Run, size, at, at+int64(len(block)))
		default:
			return 0, fmt.Errorf("cannot append to log of run %s: %w", key.Run, err)
		}
	}
}

func parseOffset(s *string) (int64, error) {
	var off int64
	if s == nil {
		return 0, errors.New("append response has no offset")
	}
	if _, err := fmt.Sscan(*s, &off); err != nil {
		return 0, fmt.Errorf("append response offset %q: %w", *s, err)
	}
	return off, nil
}

func (s *Store) logSize(ctx context.Context, ab *appendblob.Client) (int64, error) {
	props, err := ab.GetProperties(ctx, nil)
	switch {
	case bloberror.HasCode(err, bloberror.BlobNotFound):
		return 0, nil
	case err != nil:
		return 0, fmt.Errorf("cannot read log size: %w", err)
	case props.ContentLength == nil:
		return 0, errors.New("log size unknown")
	}
	return *props.ContentLength, nil
}

// ReadLog returns up to max bytes of a run's log from offset, cut at the
// last whole line, and the offset to continue from. A follower calls it
// again with that offset; a log not written yet reads as empty.
func (s *Store) ReadLog(ctx context.Context, key RunKey, offset int64, max int) ([]byte, int64, error) {
	if err := key.Validate(); err != nil {
		return nil, offset, err
	}
	if offset < 0 || max <= 0 {
		return nil, offset, fmt.Errorf("cannot read log from %d, %d bytes: both must be positive", offset, max)
	}
	resp, err := s.client.DownloadStream(ctx, s.container, key.blobName(Log), &azblob.DownloadStreamOptions{
		Range: azblob.HTTPRange{Offset: offset, Count: int64(max)},
	})
	switch {
	case bloberror.HasCode(err, bloberror.BlobNotFound, bloberror.InvalidRange):
		return nil, offset, nil // nothing (new) yet
	case err != nil:
		return nil, offset, fmt.Errorf("cannot read log of run %s: %w", key.Run, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, int64(max)))
	if err != nil {
		return nil, offset, fmt.Errorf("cannot read log of run %s: %w", key.Run, err)
	}
	if i := bytes.LastIndexByte(data, '\n'); i >= 0 {
		data = data[:i+1]
	} else if len(data) == max {
		// One line longer than max: hand it out in pieces rather than stall.
		return data, offset + int64(len(data)), nil
	} else {
		data = nil // a partial line is not visible yet (appends are whole lines)
	}
	return data, offset + int64(len(data)), nil
}

// FollowOptions tune Follow.
type FollowOptions struct {
	// Offset to start from (0: the beginning).
	Offset int64
	// Every is the poll interval while the log does not grow (default 250ms).
	Every time.Duration
	// Chunk bounds one read (default 256 KiB).
	Chunk int
	// Done reports whether the run has ended; Follow then drains what is
	// left and returns. Nil follows until ctx ends.
	Done func(ctx context.Context) (bool, error)
}

// Follow streams a run's log to emit as it grows, whole lines at a time,
// and returns the offset reached, from which a later Follow resumes. It
// returns nil once Done reports the run over and the log is drained, or
// ctx's error.
func (s *Store) Follow(ctx context.Context, key RunKey, opts FollowOptions, emit func([]byte) error) (int64, error) {
	every, chunk, off := opts.Every, opts.Chunk, opts.Offset
	if every <= 0 {
		every = 250 * time.Millisecond
	}
	if chunk <= 0 {
		chunk = 256 << 10
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		// Ask before reading: lines written before the run ended are then
		// all in this read or the next ones.
		done := false
		if opts.Done != nil {
			var err error
			if done, err = opts.Done(ctx); err != nil {
				return off, err
			}
		}
		for {
			data, next, err := s.ReadLog(ctx, key, off, chunk)
			if err != nil {
				return off, err
			}
			if len(data) == 0 {
				break
			}
			if err := emit(data); err != nil {
				return off, err
			}
			off = next
		}
		if done {
			return off, nil
		}
		select {
		case <-ctx.Done():
			return off, ctx.Err()
		case <-t.C:
		}
	}
}
