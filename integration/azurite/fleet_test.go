package azurite_test

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/data/aztables"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azqueue"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/botehq/platform/integration/azurite"
	"github.com/botehq/platform/integration/procs"
)

// lokiScript does to a LokiJS collection with binary indices what Azurite
// does on each dequeue and delete (remove an empty array, a short array;
// update a short array; find and remove one, as its extent clean-up does;
// look up by account first) and prints how many index rebuilds that took,
// whether every index is still consistent, and what queries find.
const lokiScript = `
const loki = require("lokijs");
const db = new loki("m.db");
const c = db.addCollection("messages", { indices: ["accountName", "queue", "visible"] });
for (let i = 0; i < 100; i++) c.insert({ accountName: "a", queue: "q" + (i % 10), visible: i });
let rebuilds = 0;
const ensure = loki.Collection.prototype.ensureIndex;
loki.Collection.prototype.ensureIndex = function (...a) { rebuilds++; return ensure.apply(this, a); };
c.remove([]);
c.remove(c.find({ queue: "q3" }).slice(0, 2));
const later = c.find({ queue: "q4" });
for (const d of later) d.visible += 1000;
c.update(later);
c.findAndRemove({ accountName: "a", queue: "q5", visible: 5 });
console.log(JSON.stringify({
  rebuilds,
  broken: c.checkAllIndexes(),
  q3: c.count({ accountName: "a", queue: "q3" }),
  q5: c.count({ accountName: "a", queue: "q5" }),
  removed: c.findOne({ accountName: "a", queue: "q5", visible: 5 }),
  later: c.find({ visible: { $gte: 1000 } }).length,
  total: c.count({ accountName: "a" }),
}));
`

// TestLokiPatch: without fleet.js LokiJS rebuilds its indices on each
// such call (what makes Azurite slow with thousands of messages in
// flight); with it, none, and the indices and queries are the same.
func TestLokiPatch(t *testing.T) {
	t.Parallel()
	node, err := exec.LookPath("node")
	require.NoError(t, err, "Node.js runs Azurite")
	root, err := procs.RepoRoot()
	require.NoError(t, err)
	if _, err := os.Stat(filepath.Join(root, "node_modules", "lokijs")); err != nil {
		_ = azurite.New(t) // installs node_modules (npm ci) if missing
	}
	for _, tc := range []struct {
		name     string
		args     []string
		rebuilds func(t assert.TestingT, n any, msg ...any) bool
	}{
		{"stock", nil, assert.Positive},
		{"patched", []string{"--require", filepath.Join(root, "integration", "azurite", "fleet.js")}, assert.Zero},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cmd := exec.Command(node, append(tc.args, "-e", lokiScript)...)
			cmd.Dir = root
			out, err := cmd.Output()
			require.NoError(t, err, "%s", out)
			lines := strings.Split(strings.TrimSpace(string(out)), "\n") // the patch's line first
			var got struct {
				Rebuilds             int
				Broken               []string
				Q3, Q5, Later, Total int
				Removed              any
			}
			require.NoError(t, json.Unmarshal([]byte(lines[len(lines)-1]), &got), "%s", out)
			tc.rebuilds(t, got.Rebuilds, "index rebuilds")
			assert.Empty(t, got.Broken, "inconsistent indices")
			assert.Equal(t, 8, got.Q3)
			assert.Equal(t, 10, got.Later)
			assert.Equal(t, 9, got.Q5)
			assert.Nil(t, got.Removed)
			assert.Equal(t, 97, got.Total)
		})
	}
}

// TestFleet: an Azurite with Fleet is the same Azure Storage for
// the requests the gateway makes: messages put, dequeued, made visible
// again, deleted and expired; table entities upserted, read, deleted.
func TestFleet(t *testing.T) {
	t.Parallel()
	if os.Getenv("BOTE_AZURITE") == "docker" {
		t.Skip("Fleet needs the npm Azurite")
	}
	az := azurite.NewWith(t, azurite.Options{Fleet: true})
	assert.Contains(t, az.Logs(), "bote fleet.js: in place")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	svc, err := azqueue.NewServiceClientFromConnectionString(az.ConnectionString, nil)
	require.NoError(t, err)
	q := svc.NewQueueClient("fast")
	_, err = q.Create(ctx, nil)
	require.NoError(t, err)
	_, err = q.EnqueueMessage(ctx, "expires", &azqueue.EnqueueMessageOptions{TimeToLive: ptr(int32(1))})
	require.NoError(t, err)
	for _, text := range []string{"one", "two", "three"} {
		_, err = q.EnqueueMessage(ctx, text, nil)
		require.NoError(t, err)
	}
	time.Sleep(1500 * time.Millisecond) // "expires" expires
	got, err := q.DequeueMessages(ctx, &azqueue.DequeueMessagesOptions{NumberOfMessages: ptr(int32(2)), VisibilityTimeout: ptr(int32(60))})
	require.NoError(t, err)
	require.Len(t, got.Messages, 2)
	assert.Equal(t, "one", *got.Messages[0].MessageText, "the expired message is gone")
	assert.Equal(t, "two", *got.Messages[1].MessageText)
	_, err = q.DeleteMessage(ctx, *got.Messages[0].MessageID, *got.Messages[0].PopReceipt, nil)
	require.NoError(t, err)
	_, err = q.UpdateMessage(ctx, *got.Messages[1].MessageID, *got.Messages[1].PopReceipt, "two again", &azqueue.UpdateMessageOptions{VisibilityTimeout: ptr(int32(0))})
	require.NoError(t, err)
	got, err = q.DequeueMessages(ctx, &azqueue.DequeueMessagesOptions{NumberOfMessages: ptr(int32(32))})
	require.NoError(t, err)
	var texts []string
	for _, m := range got.Messages {
		texts = append(texts, *m.MessageText)
	}
	assert.ElementsMatch(t, []string{"two again", "three"}, texts)

	tables, err := aztables.NewServiceClientFromConnectionString(az.ConnectionString, nil)
	require.NoError(t, err)
	_, err = tables.CreateTable(ctx, "fast", nil)
	require.NoError(t, err)
	tc := tables.NewClient("fast")
	for _, v := range []string{"a", "b"} {
		e, err := json.Marshal(aztables.EDMEntity{Entity: aztables.Entity{PartitionKey: "p", RowKey: "r"}, Properties: map[string]any{"V": v}})
		require.NoError(t, err)
		_, err = tc.UpsertEntity(ctx, e, nil)
		require.NoError(t, err)
	}
	resp, err := tc.GetEntity(ctx, "p", "r", nil)
	require.NoError(t, err)
	var back aztables.EDMEntity
	require.NoError(t, json.Unmarshal(resp.Value, &back))
	assert.Equal(t, "b", back.Properties["V"])
	_, err = tc.DeleteEntity(ctx, "p", "r", nil)
	require.NoError(t, err)
	_, err = tc.GetEntity(ctx, "p", "r", nil)
	require.Error(t, err, "deleted")
}
