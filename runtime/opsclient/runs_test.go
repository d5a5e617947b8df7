package opsclient

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/botehq/platform/runtime/artifacts"
	"github.com/botehq/platform/runtime/opsapi"
	"github.com/botehq/platform/runtime/runs"
	"github.com/botehq/platform/runtime/runstore"
	"github.com/botehq/platform/runtime/tfarchive"
)

// memArtifacts keeps bundles and logs in memory.
type memArtifacts struct {
	mu   sync.Mutex
	logs map[string][]byte
}

func (m *memArtifacts) Put(_ context.Context, key artifacts.RunKey, _ artifacts.Kind, r io.Reader, max int64) (*runs.Artifact, error) {
	data, err := io.ReadAll(io.LimitReader(r, 1<<20))
	if err != nil {
		return nil, err
	}
	if bytes.Contains(data, []byte("oversize")) {
		return nil, &tfarchive.LimitError{What: "compressed size", Limit: max, Value: max + 1}
	}
	return &runs.Artifact{Container: "boteruns", Blob: string(key.Tenant) + "/" + string(key.Workspace) + "/" + key.Run + "/bundle-1.tar.gz", Size: int64(len(data)), SHA256: strings.Repeat("a", 64)}, nil
}

func (m *memArtifacts) ReadLog(_ context.Context, key artifacts.RunKey, offset int64, max int) ([]byte, int64, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	log := m.logs[key.Run]
	if offset >= int64(len(log)) {
		return nil, offset, nil
	}
	data := log[offset:min(int64(len(log)), offset+int64(max))]
	return data, offset + int64(len(data)), nil
}

func (m *memArtifacts) add(run string, lines ...string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.logs[run] = append(m.logs[run], artifacts.Lines(lines)...)
}

func newRunsServer(t *testing.T) (*Client, *runs.Manager, *memArtifacts) {
	t.Helper()
	auth, key := newAuth(t)
	m, err := runs.New(runs.Config{Store: runstore.NewMemory(), Roster: runs.Unrestricted, Logger: slog.New(slog.DiscardHandler)})
	require.NoError(t, err)
	arts := &memArtifacts{logs: map[string][]byte{}}
	api, err := opsapi.New(opsapi.Config{Auth: auth, Agents: opsapi.NewStaticAgents(nil), Runs: m, Artifacts: arts,
		Logger: slog.New(slog.DiscardHandler)})
	require.NoError(t, err)
	srv := httptest.NewServer(api)
	t.Cleanup(srv.Close)
	t.Cleanup(api.Shutdown)
	return newClient(t, srv.URL, key), m, arts
}

func TestRunsRoundTrip(t *testing.T) {
	c, m, arts := newRunsServer(t)
	ctx := context.Background()

	ws, err := c.CreateWorkspace(ctx, "contoso", opsapi.CreateWorkspaceRequest{Name: "prod", AutoApply: true, Timeouts: opsapi.Timeouts{Apply: "3h"}})
	require.NoError(t, err)
	assert.Equal(t, "3h0m0s", ws.Timeouts.Apply)
	_, err = c.CreateWorkspace(ctx, "contoso", opsapi.CreateWorkspaceRequest{Name: "prod"})
	var ae *APIError
	require.ErrorAs(t, err, &ae)
	assert.Equal(t, http.StatusConflict, ae.StatusCode)
	list, err := c.Workspaces(ctx, "contoso")
	require.NoError(t, err)
	require.Len(t, list, 1)

	run, err := c.CreateRun(ctx, "contoso", "prod", OpPlan, "first", strings.NewReader("bundle"))
	require.NoError(t, err)
	assert.Equal(t, "queued", run.State)
	assert.Contains(t, run.Waiting, "no agent of tenant contoso is online")

	_, err = c.CreateRun(ctx, "contoso", "prod", OpDestroy, "", strings.NewReader("oversize"))
	require.ErrorAs(t, err, &ae)
	assert.Equal(t, http.StatusRequestEntityTooLarge, ae.StatusCode)
	assert.Contains(t, ae.Message, "over the limit of 64.0 MiB")

	got, err := c.Run(ctx, "contoso", run.ID)
	require.NoError(t, err)
	assert.Equal(t, "first", got.Message)
	all, err := c.Runs(ctx, "contoso", RunQuery{})
	require.NoError(t, err)
	assert.Len(t, all.Runs, 1)
	none, err := c.Runs(ctx, "contoso", RunQuery{Workspace: "prod", States: []string{"planned", "failed"}, Limit: 5})
	require.NoError(t, err)
	assert.Empty(t, none.Runs, "the query reaches the server")

	_, err = c.Approve(ctx, "contoso", run.ID)
	require.ErrorAs(t, err, &ae)
	assert.Equal(t, http.StatusConflict, ae.StatusCode, "a queued run cannot be approved")
	_, err = c.Run(ctx, "fabrikam", run.ID)
	assert.True(t, IsNotFound(err), "another tenant's run")

	arts.add(run.ID, "line one", "line two")
	chunk, err := c.Logs(ctx, "contoso", run.ID, 0)
	require.NoError(t, err)
	assert.Equal(t, "line one\nline two\n", chunk.Text)
	assert.False(t, chunk.Done)

	// Follow until the run ends; cancelling it ends it.
	var frames []opsapi.FollowFrame
	errc := make(chan error, 1)
	go func() {
		errc <- c.Follow(ctx, "contoso", run.ID, 9, func(f opsapi.FollowFrame) error { frames = append(frames, f); return nil })
	}()
	time.Sleep(100 * time.Millisecond)
	_, err = m.Cancel(ctx, runs.CancelRequest{Tenant: "contoso", Run: run.ID, By: "test"})
	require.NoError(t, err)
	select {
	case err := <-errc:
		require.NoError(t, err)
	case <-time.After(10 * time.Second):
		t.Fatal("follow did not end with the run")
	}
	require.GreaterOrEqual(t, len(frames), 3)
	assert.Equal(t, opsapi.FrameRun, frames[0].Type)
	assert.Equal(t, []string{"line two"}, frames[1].Lines, "from the offset given")
	assert.Equal(t, opsapi.FrameEnd, frames[len(frames)-1].Type)
	assert.Equal(t, "cancelled", frames[len(frames)-1].Run.State)

	cancelled, err := c.Cancel(ctx, "contoso", run.ID, "again", false)
	require.ErrorAs(t, err, &ae, "%v", cancelled)
	assert.Equal(t, http.StatusConflict, ae.StatusCode)
}

func TestFollowErrors(t *testing.T) {
	c, _, _ := newRunsServer(t)
	ctx := context.Background()
	err := c.Follow(ctx, "contoso", "run-0000000000000000", 0, func(opsapi.FollowFrame) error { return nil })
	assert.True(t, IsNotFound(err), "%v", err)

	_, err = c.CreateWorkspace(ctx, "contoso", opsapi.CreateWorkspaceRequest{Name: "prod"})
	require.NoError(t, err)
	run, err := c.CreateRun(ctx, "contoso", "prod", OpPlan, "", strings.NewReader("b"))
	require.NoError(t, err)
	stop := errors.New("seen enough")
	err = c.Follow(ctx, "contoso", run.ID, 0, func(opsapi.FollowFrame) error { return stop })
	assert.Same(t, stop, err, "the callback's error as is")

	tctx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	defer cancel()
	err = c.Follow(tctx, "contoso", run.ID, 0, func(opsapi.FollowFrame) error { return nil })
	assert.ErrorIs(t, err, context.DeadlineExceeded)
}

func TestRunsUnavailable(t *testing.T) {
	srv, _, key := newServer(t)
	c := newClient(t, srv.URL, key)
	_, err := c.Workspaces(context.Background(), "contoso")
	var ae *APIError
	require.ErrorAs(t, err, &ae)
	assert.Equal(t, http.StatusServiceUnavailable, ae.StatusCode)
}
