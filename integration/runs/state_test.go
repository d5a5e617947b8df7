package runs

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/botehq/platform/integration/azurite"
	"github.com/botehq/platform/runtime/artifacts"
	"github.com/botehq/platform/runtime/ids"
	"github.com/botehq/platform/runtime/runs"
)

// stage uploads state as claim's staged state, as an agent does through
// its upload link, and returns the promotion the agent would report.
func stage(t *testing.T, blobs *azblob.Client, workspace ids.WorkspaceID, run string, claim int, state string) artifacts.Promotion {
	t.Helper()
	c := strconv.Itoa(claim)
	_, err := blobs.UploadBuffer(context.Background(), "states", artifacts.StagedState("contoso", workspace, run, c), []byte(state), nil)
	require.NoError(t, err)
	sum := sha256.Sum256([]byte(state))
	return artifacts.Promotion{Tenant: "contoso", Workspace: workspace, Run: run, Claim: c, Size: int64(len(state)), SHA256: hex.EncodeToString(sum[:])}
}

func current(t *testing.T, store *artifacts.Store, workspace ids.WorkspaceID) string {
	t.Helper()
	data, err := store.OpenState(context.Background(), "contoso", workspace, "")
	require.NoError(t, err)
	return string(data)
}

func TestStatePromotion(t *testing.T) {
	t.Parallel()
	emu := azurite.New(t)
	ctx := context.Background()
	store := openArtifacts(t, emu, "states")
	blobs, err := azblob.NewClientFromConnectionString(emu.ConnectionString, nil)
	require.NoError(t, err)

	t.Run("EveryPromotionIsKeptAndPulledBackByteForByte", func(t *testing.T) {
		run1, run2 := runs.NewRunID(time.Now()), runs.NewRunID(time.Now())
		first := `{"version":4,"serial":1}`
		second := `{"version":4,"serial":2}` + "\n"
		v1, err := store.PromoteState(ctx, stage(t, blobs, "app", run1, 5, first))
		require.NoError(t, err)
		assert.Equal(t, run1+"-c5", v1.Version)
		assert.Equal(t, first, current(t, store, "app"))

		p2 := stage(t, blobs, "app", run2, 5, second)
		_, err = store.PromoteState(ctx, p2)
		require.NoError(t, err)
		// Promoting the same claim again (a redelivered result) adds nothing.
		_, err = store.PromoteState(ctx, p2)
		require.NoError(t, err)
		assert.Equal(t, second, current(t, store, "app"))

		versions, err := store.StateVersions(ctx, "contoso", "app")
		require.NoError(t, err)
		require.Len(t, versions, 2)
		assert.Equal(t, []string{run2 + "-c5", run1 + "-c5"}, []string{versions[0].Version, versions[1].Version}, "newest first")
		assert.True(t, versions[0].Current)
		assert.False(t, versions[1].Current)
		assert.Equal(t, run1, versions[1].Run)
		assert.Equal(t, int64(len(first)), versions[1].Size)

		old, err := store.OpenState(ctx, "contoso", "app", versions[1].Version)
		require.NoError(t, err)
		assert.Equal(t, first, string(old))
	})

	t.Run("ASnapshotKeepsTheStateItNamed", func(t *testing.T) {
		read := func(blob string) (string, bool) {
			resp, err := blobs.DownloadStream(ctx, "states", blob, nil)
			if err != nil {
				return "", false
			}
			defer resp.Body.Close()
			var b strings.Builder
			_, err = io.Copy(&b, resp.Body)
			require.NoError(t, err)
			return b.String(), true
		}
		none, err := store.StateSnapshot(ctx, "contoso", "snap")
		require.NoError(t, err)
		_, found := read(none)
		assert.False(t, found, "no state yet: the snapshot is not there")

		_, err = store.PromoteState(ctx, stage(t, blobs, "snap", runs.NewRunID(time.Now()), 5, `{"serial":1}`))
		require.NoError(t, err)
		first, err := store.StateSnapshot(ctx, "contoso", "snap")
		require.NoError(t, err)
		_, found = read(none)
		assert.False(t, found, "a snapshot of no state never gets one")

		_, err = store.PromoteState(ctx, stage(t, blobs, "snap", runs.NewRunID(time.Now()), 5, `{"serial":2}`))
		require.NoError(t, err)
		got, found := read(first)
		require.True(t, found)
		assert.Equal(t, `{"serial":1}`, got, "a snapshot never shows a later state")
		second, err := store.StateSnapshot(ctx, "contoso", "snap")
		require.NoError(t, err)
		got, _ = read(second)
		assert.Equal(t, `{"serial":2}`, got)
	})

	t.Run("RollbackMakesAKeptVersionCurrentAndKeepsTheOneItReplaces", func(t *testing.T) {
		run1, run2 := runs.NewRunID(time.Now()), runs.NewRunID(time.Now())
		_, err := store.PromoteState(ctx, stage(t, blobs, "roll", run1, 5, `{"serial":1}`))
		require.NoError(t, err)
		_, err = store.PromoteState(ctx, stage(t, blobs, "roll", run2, 5, `{"serial":2,"bad":true}`))
		require.NoError(t, err)

		v, err := store.RestoreState(ctx, "contoso", "roll", run1+"-c5")
		require.NoError(t, err)
		assert.True(t, v.Current)
		assert.Equal(t, run1, v.Run)
		assert.Equal(t, `{"serial":1}`, current(t, store, "roll"))
		snap, err := store.StateSnapshot(ctx, "contoso", "roll")
		require.NoError(t, err)
		assert.Equal(t, "contoso/roll/state/versions/"+run1+"-c5.tfstate", snap, "plans read the rolled-back version")
		versions, err := store.StateVersions(ctx, "contoso", "roll")
		require.NoError(t, err)
		require.Len(t, versions, 2, "the replaced state is kept")
		assert.False(t, versions[0].Current)
		assert.True(t, versions[1].Current)
		// Again is a no-op; back to the newer one works too.
		_, err = store.RestoreState(ctx, "contoso", "roll", run1+"-c5")
		require.NoError(t, err)
		_, err = store.RestoreState(ctx, "contoso", "roll", run2+"-c5")
		require.NoError(t, err)
		assert.Equal(t, `{"serial":2,"bad":true}`, current(t, store, "roll"))

		_, err = store.RestoreState(ctx, "contoso", "roll", "run-0000000000000000-c5")
		require.ErrorIs(t, err, artifacts.ErrNotFound)
		_, err = store.RestoreState(ctx, "contoso", "roll", "current")
		require.ErrorIs(t, err, runs.ErrInvalid)
		assert.Equal(t, `{"serial":2,"bad":true}`, current(t, store, "roll"))
	})

	t.Run("AStateThatDoesNotMatchItsReportIsNotPromoted", func(t *testing.T) {
		run := runs.NewRunID(time.Now())
		_, err := store.PromoteState(ctx, stage(t, blobs, "bad", run, 3, `{"serial":1}`))
		require.NoError(t, err)

		p := stage(t, blobs, "bad", runs.NewRunID(time.Now()), 3, `{"serial":2}`)
		p.SHA256 = hex.EncodeToString(make([]byte, 32))
		_, err = store.PromoteState(ctx, p)
		require.ErrorIs(t, err, artifacts.ErrCorrupt)

		missing := p
		missing.Run = runs.NewRunID(time.Now())
		_, err = store.PromoteState(ctx, missing)
		require.ErrorIs(t, err, artifacts.ErrNotFound)

		forged := p
		forged.Claim = "../../other"
		_, err = store.PromoteState(ctx, forged)
		require.ErrorIs(t, err, runs.ErrInvalid)

		assert.Equal(t, `{"serial":1}`, current(t, store, "bad"))
		versions, err := store.StateVersions(ctx, "contoso", "bad")
		require.NoError(t, err)
		assert.Len(t, versions, 1)
	})

	t.Run("AStateFromBeforeVersionsIsKeptWhenReplaced", func(t *testing.T) {
		_, err := blobs.UploadBuffer(ctx, "states", artifacts.CurrentState("contoso", "legacy"), []byte(`{"serial":7}`), nil)
		require.NoError(t, err)
		versions, err := store.StateVersions(ctx, "contoso", "legacy")
		require.NoError(t, err)
		require.Len(t, versions, 1)
		assert.Equal(t, artifacts.CurrentVersion, versions[0].Version)

		run := runs.NewRunID(time.Now())
		_, err = store.PromoteState(ctx, stage(t, blobs, "legacy", run, 4, `{"serial":8}`))
		require.NoError(t, err)
		old, err := store.OpenState(ctx, "contoso", "legacy", "before-"+run+"-c4")
		require.NoError(t, err)
		assert.Equal(t, `{"serial":7}`, string(old))
	})

	t.Run("CompetingPromotionsNeverInterleave", func(t *testing.T) {
		const n = 6
		ps := make([]artifacts.Promotion, n)
		for i := range ps {
			ps[i] = stage(t, blobs, "race", runs.NewRunID(time.Now()), 5, fmt.Sprintf(`{"serial":%d,"pad":"%0400d"}`, i, i))
		}
		var wg sync.WaitGroup
		errs := make([]error, n)
		for i := range ps {
			wg.Go(func() { _, errs[i] = store.PromoteState(ctx, ps[i]) })
		}
		wg.Wait()
		won := 0
		for _, err := range errs {
			if err == nil {
				won++
			} else {
				require.ErrorIs(t, err, artifacts.ErrConflict)
			}
		}
		assert.GreaterOrEqual(t, won, 1)
		// The current state is whole, and it is the version it says it is.
		versions, err := store.StateVersions(ctx, "contoso", "race")
		require.NoError(t, err)
		var cur string
		for _, v := range versions {
			if v.Current {
				cur = v.Version
			}
		}
		require.NotEmpty(t, cur)
		kept, err := store.OpenState(ctx, "contoso", "race", cur)
		require.NoError(t, err)
		assert.Equal(t, string(kept), current(t, store, "race"))
		t.Logf("%d of %d racing promotions won; the others were refused with ErrConflict", won, n)
	})

	t.Run("BadRequests", func(t *testing.T) {
		_, err := store.OpenState(ctx, "contoso", "app", "../../../x")
		require.ErrorIs(t, err, runs.ErrInvalid)
		_, err = store.StateVersions(ctx, "contoso", "")
		require.ErrorIs(t, err, runs.ErrInvalid)
		// The store takes typed ids: "Bad Tenant" cannot become one
		// outside tests (ids.ParseTenantID is where it is refused).
		_, err = ids.ParseTenantID("Bad Tenant")
		require.ErrorIs(t, err, ids.ErrInvalid)
		_, err = store.OpenState(ctx, "contoso", "nothing-here", "")
		require.True(t, errors.Is(err, artifacts.ErrNotFound), "%v", err)
		versions, err := store.StateVersions(ctx, "contoso", "nothing-here")
		require.NoError(t, err)
		assert.Empty(t, versions)
	})
}

// BenchmarkPromoteState is what accepting an apply's result adds: read
// and verify the claim's upload, keep it as a version, replace the current
// state conditionally (a 64 KiB state, on Azurite).
func BenchmarkPromoteState(b *testing.B) {
	emu := azurite.New(b)
	ctx := context.Background()
	client, err := azblob.NewClientFromConnectionString(emu.ConnectionString, nil)
	require.NoError(b, err)
	store, err := artifacts.New(ctx, client, "bench", true)
	require.NoError(b, err)
	state := []byte(`{"version":4,"pad":"` + strings.Repeat("x", 64<<10) + `"}`)
	sum := sha256.Sum256(state)
	ps := make([]artifacts.Promotion, b.N)
	for i := range ps {
		run := runs.NewRunID(time.Now())
		_, err := client.UploadBuffer(ctx, "bench", artifacts.StagedState("contoso", "app", run, "5"), state, nil)
		require.NoError(b, err)
		ps[i] = artifacts.Promotion{Tenant: "contoso", Workspace: "app", Run: run, Claim: "5", Size: int64(len(state)), SHA256: hex.EncodeToString(sum[:])}
	}
	b.ResetTimer()
	for i := range ps {
		if _, err := store.PromoteState(ctx, ps[i]); err != nil {
			b.Fatal(err)
		}
	}
}
