package agent

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"net/http"
	"net/url"
	"os"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blockblob"

	"github.com/botehq/platform/runtime/runspec"
	"github.com/botehq/platform/runtime/tfarchive"
	"github.com/botehq/platform/runtime/tfproviders"
)

// ErrIntegrity reports a downloaded artifact whose size or SHA-256 is not
// the one the assignment names.
var ErrIntegrity = errors.New("artifact does not match its size or SHA-256")

// download fetches the archive at url (a read-only SAS link) and unpacks it
// into dir within lim. When size or sum is given, the bytes must match
// them: the apply applies exactly the plan that was approved.
func (a *Agent) download(ctx context.Context, link string, size int64, sum, dir string, lim tfarchive.Limits) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, link, nil)
	if err != nil {
		return errors.New("invalid download link") // the URL holds a SAS token: keep it out of errors
	}
	resp, err := a.cfg.HTTPClient.Do(req)
	if err != nil {
		return fmt.Errorf("cannot download: %w", redactURL(err))
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("cannot download: blob storage answered %s", resp.Status)
	}
	if size > 0 && resp.ContentLength >= 0 && resp.ContentLength != size {
		return fmt.Errorf("%w: %d bytes offered, %d expected", ErrIntegrity, resp.ContentLength, size)
	}
	h := sha256.New()
	cr := &countingReader{r: io.TeeReader(resp.Body, h)}
	if _, err := tfarchive.Unpack(cr, dir, lim); err != nil {
		return err
	}
	// Unpack stops at the end of the gzip stream; read what may follow so
	// the size and hash cover every byte.
	if _, err := io.Copy(io.Discard, io.LimitReader(cr, lim.MaxBytes)); err != nil {
		return fmt.Errorf("cannot download: %w", redactURL(err))
	}
	switch got := hexSum(h); {
	case size > 0 && cr.n != size:
		return fmt.Errorf("%w: %d bytes received, %d expected", ErrIntegrity, cr.n, size)
	case sum != "" && got != sum:
		return fmt.Errorf("%w: SHA-256 %s, expected %s", ErrIntegrity, got, sum)
	}
	return nil
}

type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

// redactURL drops the URL (and its SAS token) from an HTTP client error.
func redactURL(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return fmt.Errorf("%s: %w", ue.Op, ue.Err)
	}
	return err
}

// packWorkdir packs the working directory (plan file and .terraform/
// included) to path and returns its size and SHA-256.
func packWorkdir(dir, path string, withoutProviders bool) (int64, string, error) {
	// Providers linked from the plugin cache or a mirror travel as
	// copies: the apply runs on any agent, without init. Or they stay
	// behind, and the apply installs them.
	if !withoutProviders {
		if err := tfproviders.Materialize(dir); err != nil {
			return 0, "", err
		}
	}
	f, err := os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return 0, "", fmt.Errorf("cannot create working directory archive: %w", err)
	}
	h := sha256.New()
	st, err := tfarchive.Pack(dir, io.MultiWriter(f, h), tfarchive.PackOptions{Limits: tfarchive.WorkdirLimits, Workdir: true, WithoutProviders: withoutProviders})
	if cerr := f.Close(); err == nil && cerr != nil {
		err = cerr
	}
	if err != nil {
		return 0, "", fmt.Errorf("cannot pack the working directory: %w", err)
	}
	return st.Bytes, hexSum(h), nil
}

func hexSum(h hash.Hash) string { return hex.EncodeToString(h.Sum(nil)) }

// fileSum is the size and SHA-256 of the file at path.
func fileSum(path string) (int64, string, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, "", err
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(h, f)
	if err != nil {
		return 0, "", err
	}
	return n, hexSum(h), nil
}

// upload PUTs the file at path to url, a write-only SAS link of one block
// blob; large files go up in blocks.
func (a *Agent) upload(ctx context.Context, link, path string) error {
	bb, err := blockblob.NewClientWithNoCredential(link, &blockblob.ClientOptions{ClientOptions: azcore.ClientOptions{Transport: a.cfg.HTTPClient}})
	if err != nil {
		return errors.New("invalid upload link") // the URL holds a SAS token: keep it out of errors
	}
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	if _, err := bb.UploadFile(ctx, f, &blockblob.UploadFileOptions{Concurrency: 2}); err != nil {
		var re *azcore.ResponseError
		if errors.As(err, &re) {
			return fmt.Errorf("blob storage answered %d %s", re.StatusCode, re.ErrorCode)
		}
		return redactURL(err)
	}
	return nil
}

// maxStateBytes bounds a workspace state file the agent downloads.
const maxStateBytes = runspec.MaxStateBytes

// fetchState downloads the workspace's stored Terraform state to path. It
// reports false when there is none yet (the blob does not exist).
func (a *Agent) fetchState(ctx context.Context, link, path string) (bool, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, link, nil)
	if err != nil {
		return false, errors.New("invalid state link")
	}
	resp, err := a.cfg.HTTPClient.Do(req)
	if err != nil {
		return false, fmt.Errorf("cannot download the workspace state: %w", redactURL(err))
	}
	defer resp.Body.Close()
	switch resp.StatusCode {
	case http.StatusOK:
	case http.StatusNotFound:
		return false, nil
	default:
		return false, fmt.Errorf("cannot download the workspace state: blob storage answered %s", resp.Status)
	}
	f, err := os.OpenFile(path, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
	if err != nil {
		return false, err
	}
	n, err := io.Copy(f, io.LimitReader(resp.Body, maxStateBytes+1))
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return false, fmt.Errorf("cannot download the workspace state: %w", redactURL(err))
	}
	if n > maxStateBytes {
		return false, fmt.Errorf("the workspace state is over the %d byte limit", maxStateBytes)
	}
	return true, nil
}
