package runs

import (
	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/botehq/platform/integration/azurite"
	"github.com/botehq/platform/runtime/artifacts"
	"github.com/botehq/platform/runtime/ids"
	"github.com/botehq/platform/runtime/runs"
	"github.com/botehq/platform/runtime/tfarchive"
)

func openArtifacts(t *testing.T, emu *azurite.Emulator, container string) *artifacts.Store {
	t.Helper()
	client, err := azblob.NewClientFromConnectionString(emu.ConnectionString, nil)
	require.NoError(t, err)
	s, err := artifacts.New(context.Background(), client, container, true)
	require.NoError(t, err)
	return s
}

func key(tenant ids.TenantID) artifacts.RunKey {
	return artifacts.RunKey{Tenant: tenant, Workspace: "app", Run: runs.NewRunID(time.Now())}
}

func TestArtifacts(t *testing.T) {
	t.Parallel()
	emu := azurite.New(t)
	ctx := context.Background()
	store := openArtifacts(t, emu, "artifacts")

	t.Run("BundleRoundTripIsExactAndWrittenOnce", func(t *testing.T) {
		src := t.TempDir()
		require.NoError(t, os.WriteFile(filepath.Join(src, "main.tf"), []byte(`output "x" { value = 1 }`), 0o644))
		var buf bytes.Buffer
		_, err := tfarchive.Pack(src, &buf, tfarchive.PackOptions{Limits: tfarchive.BundleLimits})
		require.NoError(t, err)

		k := key("contoso")
		ref, err := store.Put(ctx, k, artifacts.Bundle, bytes.NewReader(buf.Bytes()), tfarchive.BundleLimits.MaxBytes)
		require.NoError(t, err)
		assert.Equal(t, int64(buf.Len()), ref.Size)
		assert.True(t, strings.HasPrefix(ref.Blob, "contoso/app/"+k.Run+"/"))

		// Another upload for the run never replaces the first.
		ref2, err := store.Put(ctx, k, artifacts.Bundle, strings.NewReader("other"), 1<<20)
		require.NoError(t, err)
		assert.NotEqual(t, ref.Blob, ref2.Blob)

		// A restarted server (new store instance) reads it back.
		rc, err := openArtifacts(t, emu, "artifacts").Open(ctx, "contoso", ref)
		require.NoError(t, err)
		defer rc.Close()
		dst := t.TempDir()
		_, err = tfarchive.Unpack(rc, dst, tfarchive.BundleLimits)
		require.NoError(t, err)
		got, err := os.ReadFile(filepath.Join(dst, "main.tf"))
		require.NoError(t, err)
		assert.Equal(t, `output "x" { value = 1 }`, string(got))
	})

	t.Run("OversizeUploadIsRefusedAndLeavesNothing", func(t *testing.T) {
		k := key("contoso")
		noise := make([]byte, 3<<20)
		_, _ = rand.Read(noise)
		_, err := store.Put(ctx, k, artifacts.Workdir, bytes.NewReader(noise), 2<<20)
		require.ErrorIs(t, err, tfarchive.ErrTooLarge)
		assert.Contains(t, err.Error(), "over the limit of 2.0 MiB")
		// The retry of a failed upload works.
		_, err = store.Put(ctx, k, artifacts.Workdir, bytes.NewReader(noise[:1000]), 2<<20)
		require.NoError(t, err)
	})

	t.Run("TamperedOrForeignReferencesAreRefused", func(t *testing.T) {
		k := key("contoso")
		ref, err := store.Put(ctx, k, artifacts.Workdir, strings.NewReader("plan bytes"), 1<<20)
		require.NoError(t, err)

		_, err = store.Open(ctx, "fabrikam", ref)
		assert.ErrorIs(t, err, artifacts.ErrForeign, "another tenant opens contoso's plan")
		other := *ref
		other.Container = "elsewhere"
		_, err = store.Open(ctx, "contoso", &other)
		assert.ErrorIs(t, err, artifacts.ErrForeign)

		bad := *ref
		bad.SHA256 = strings.Repeat("0", 64)
		rc, err := store.Open(ctx, "contoso", &bad)
		require.NoError(t, err)
		_, err = io.ReadAll(rc)
		assert.ErrorIs(t, err, artifacts.ErrCorrupt)
		_ = rc.Close()

		missing := *ref
		missing.Blob = "contoso/app/" + runs.NewRunID(time.Now()) + "/workdir.tar.gz"
		_, err = store.Open(ctx, "contoso", &missing)
		assert.ErrorIs(t, err, artifacts.ErrNotFound)
	})

	t.Run("LogAppendsInOrderOnceAndResumes", func(t *testing.T) {
		k := key("contoso")
		data, next, err := store.ReadLog(ctx, k, 0, 1<<10)
		require.NoError(t, err)
		assert.Empty(t, data, "no log yet")
		assert.Zero(t, next)

		b1 := artifacts.Lines([]string{"Initializing...", "Plan: 1 to add"})
		end, err := store.AppendLog(ctx, k, 0, b1)
		require.NoError(t, err)
		assert.Equal(t, int64(len(b1)), end)
		// The same batch delivered again is not written twice.
		again, err := store.AppendLog(ctx, k, 0, b1)
		require.NoError(t, err)
		assert.Equal(t, end, again)
		// A batch from the future waits for the one before it.
		_, err = store.AppendLog(ctx, k, end+100, artifacts.Lines([]string{"later"}))
		assert.ErrorIs(t, err, artifacts.ErrLogGap)
		b2 := artifacts.Lines([]string{"Apply complete!"})
		end2, err := store.AppendLog(ctx, k, end, b2)
		require.NoError(t, err)

		// A follower reads from its offset and resumes where it stopped.
		first, off, err := store.ReadLog(ctx, k, 0, len("Initializing...\nPlan"))
		require.NoError(t, err)
		assert.Equal(t, "Initializing...\n", string(first), "cut at the last whole line")
		rest, off2, err := store.ReadLog(ctx, k, off, 1<<10)
		require.NoError(t, err)
		assert.Equal(t, "Plan: 1 to add\nApply complete!\n", string(rest))
		assert.Equal(t, end2, off2)
		none, off3, err := store.ReadLog(ctx, k, off2, 1<<10)
		require.NoError(t, err)
		assert.Empty(t, none)
		assert.Equal(t, off2, off3)
	})

	t.Run("FollowStreamsUntilTheRunEndsAndResumes", func(t *testing.T) {
		k := key("contoso")
		var finished atomic.Bool
		go func() {
			at := int64(0)
			for i := range 10 {
				var err error
				at, err = store.AppendLog(ctx, k, at, artifacts.Lines([]string{fmt.Sprintf("line %d", i)}))
				assert.NoError(t, err)
				time.Sleep(20 * time.Millisecond)
			}
			finished.Store(true)
		}()
		var got bytes.Buffer
		ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		end, err := store.Follow(ctx, k, artifacts.FollowOptions{Every: 10 * time.Millisecond, Done: func(context.Context) (bool, error) { return finished.Load(), nil }},
			func(b []byte) error { got.Write(b); return nil })
		require.NoError(t, err)
		var want []string
		for i := range 10 {
			want = append(want, fmt.Sprintf("line %d", i))
		}
		assert.Equal(t, string(artifacts.Lines(want)), got.String(), "every line, in order, once")
		assert.Equal(t, int64(got.Len()), end)

		// A follower that reconnects resumes from its offset.
		_, err = store.AppendLog(ctx, k, end, artifacts.Lines([]string{"after"}))
		require.NoError(t, err)
		var rest bytes.Buffer
		_, err = store.Follow(ctx, k, artifacts.FollowOptions{Offset: end, Done: func(context.Context) (bool, error) { return true, nil }},
			func(b []byte) error { rest.Write(b); return nil })
		require.NoError(t, err)
		assert.Equal(t, "after\n", rest.String())
	})

	t.Run("ConcurrentUnpositionedAppendsKeepWholeLines", func(t *testing.T) {
		k := key("contoso")
		var wg sync.WaitGroup
		for w := range 4 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := range 10 {
					_, err := store.AppendLog(ctx, k, -1, artifacts.Lines([]string{fmt.Sprintf("writer %d line %d", w, i)}))
					assert.NoError(t, err)
				}
			}()
		}
		wg.Wait()
		data, _, err := store.ReadLog(ctx, k, 0, 1<<20)
		require.NoError(t, err)
		lines := strings.Split(strings.TrimSuffix(string(data), "\n"), "\n")
		assert.Len(t, lines, 40)
		for _, l := range lines {
			assert.Regexp(t, `^writer \d line \d$`, l)
		}
	})
}
