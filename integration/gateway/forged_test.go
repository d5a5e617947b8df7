package gateway

import (
	"context"
	"crypto/ecdsa"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/storage/azqueue"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/botehq/platform/runtime/botecloud"
	"github.com/botehq/platform/runtime/bus"
	"github.com/botehq/platform/runtime/bus/storagequeue"
	"github.com/botehq/platform/runtime/claimcheck"
	"github.com/botehq/platform/runtime/clientauth"
	"github.com/botehq/platform/runtime/connector"
	"github.com/botehq/platform/runtime/envelope"
	bote "github.com/botehq/platform/runtime/gatewayserver"
	"github.com/botehq/platform/runtime/gatewayserver/routing"
	"github.com/botehq/platform/runtime/ids"
	"github.com/botehq/platform/runtime/queuename"
)

// busDriver opens the gateway's bus as anything holding a storage
// credential can: not through botecloud.Client, so nothing is checked on send.
func (g *gateway) busDriver(t *testing.T) *storagequeue.Driver {
	t.Helper()
	claims, err := claimcheck.New(ctxFor(t, 10*time.Second), claimcheck.Config{ConnectionString: g.emu.ConnectionString, CreateContainer: true})
	require.NoError(t, err)
	d, err := storagequeue.New(storagequeue.Config{ConnectionString: g.emu.ConnectionString, Claims: claims, CreateQueues: true, Logger: slog.New(slog.DiscardHandler)})
	require.NoError(t, err)
	t.Cleanup(func() { _ = d.Close(context.Background()) })
	return d
}

// deadLetters collects dead letters of queue (on the bus error queue) by
// envelope id until want ids are there, and returns id → reason.
func deadLetters(t *testing.T, d *storagequeue.Driver, queue string, want int) map[string]string {
	t.Helper()
	got := map[string]string{}
	require.Eventually(t, func() bool {
		msgs, err := d.ReceiveDeadLetters(context.Background(), queue, 32, time.Minute)
		if err != nil {
			return false
		}
		for _, m := range msgs {
			if m.Envelope != nil && m.DeadLetter != nil {
				got[m.Envelope.ID] = m.DeadLetter.Reason + ": " + m.DeadLetter.Description
			}
			require.NoError(t, d.Complete(context.Background(), m))
		}
		return len(got) >= want
	}, 60*time.Second, 200*time.Millisecond, "dead letters of %s: %v", queue, got)
	return got
}

// connectorErrors collects the connector error queue by original message
// id until want ids are there, and returns id → reason.
func connectorErrors(t *testing.T, d *storagequeue.Driver, want int) map[string]string {
	t.Helper()
	got := map[string]string{}
	require.Eventually(t, func() bool {
		msgs, err := d.Receive(context.Background(), bote.QueueConnectorErrors, 32, time.Minute)
		if err != nil {
			return false
		}
		for _, m := range msgs {
			orig, err := envelope.Decode(m.Envelope.Body)
			require.NoError(t, err, "the connector error queue keeps the original text")
			got[orig.ID] = m.Envelope.Headers[envelope.HeaderDeadLetter]
			require.NoError(t, d.Complete(context.Background(), m))
		}
		return len(got) >= want
	}, 60*time.Second, 200*time.Millisecond, "connector dead letters: %v", got)
	return got
}

// forged is a cloud→connector envelope as an attacker would write it.
func forged(id string, kind envelope.Kind, tenant, conn string, from *envelope.Identity, headers map[string]string) *envelope.Envelope {
	env := &envelope.Envelope{ID: id, Kind: kind, Tenant: tenant, From: from, Headers: headers, Body: []byte("forged"), CreatedAt: time.Now().UTC()}
	if kind == envelope.KindTargeted {
		env.Connector = conn
	} else {
		env.Topic = conn
	}
	return env
}

// TestAttackForgedOnTheBus: envelopes put on "bote-connectors" by something
// holding send rights but not using botecloud.Client (or a compromised service)
// — a connector identity as sender, no sender, a service not allowed,
// reserved headers in any spelling — reach no handler and no local program;
// each lands in the error queue with its reason. Honest messages still flow.
func TestAttackForgedOnTheBus(t *testing.T) {
	t.Parallel()
	g := newGateway(t, "--cloud-services", "honest,other")
	honest := g.cloud("honest", nil)
	a1 := g.connector("tenant-a", "a1")
	sc := g.sidecar("tenant-a", "a2")
	require.NoError(t, a1.Subscribe(ctxFor(t, 10*time.Second), "chat"))
	d := g.busDriver(t)

	svc := &envelope.Identity{Service: "honest"}
	admin := &envelope.Identity{Tenant: "tenant-b", Connector: "b1"}
	attacks := map[string]*envelope.Envelope{
		"connector-as-sender":      forged("f1", envelope.KindTargeted, "tenant-a", "a1", admin, nil),
		"connector-as-sender-bc":   forged("f2", envelope.KindBroadcast, "tenant-a", "chat", &envelope.Identity{Tenant: "tenant-a", Connector: "a3"}, nil),
		"no-sender":                forged("f3", envelope.KindTargeted, "tenant-a", "a2", nil, nil),
		"service-not-allowed":      forged("f4", envelope.KindTargeted, "tenant-a", "a2", &envelope.Identity{Service: "intruder"}, nil),
		"bote-from-header":         forged("f5", envelope.KindTargeted, "tenant-a", "a2", svc, map[string]string{"Bote-From": "t9/admin", "bote-tenant": "t2"}),
		"underscore-tenant-header": forged("f6", envelope.KindTargeted, "tenant-a", "a1", svc, map[string]string{"x_tenant_id": "tenant-b"}),
		"forged-correlation":       forged("f7", envelope.KindBroadcast, "tenant-a", "chat", svc, map[string]string{"Bote-Correlation-Id": "someone-elses", "Bote-Topic": "admin"}),
	}
	want := map[string]string{
		"f1": routing.ReasonUnverifiedSender, "f2": routing.ReasonUnverifiedSender, "f3": routing.ReasonUnverifiedSender,
		"f4": routing.ReasonUnverifiedSender, "f5": routing.ReasonReservedHeader, "f6": routing.ReasonReservedHeader,
		"f7": routing.ReasonReservedHeader,
	}
	for name, env := range attacks {
		require.NoError(t, d.Send(ctxFor(t, 10*time.Second), bus.QueueConnectors, env, nil), name)
	}
	got := deadLetters(t, d, bus.QueueConnectors, len(want))
	for id, reason := range want {
		assert.Regexp(t, "^"+reason+": ", got[id], id)
	}
	assert.Equal(t, len(want), strings.Count(g.replicas[0].Proc.Output(), `"event":"forged_envelope_refused"`), "every refusal is audited")

	// Honest messages sent after the forged ones arrive, and are all that
	// arrives.
	_, err := honest.SendToConnector(ctxFor(t, 10*time.Second), "tenant-a", "a1", botecloud.OutMessage{Body: []byte("hi a1")})
	require.NoError(t, err)
	_, err = honest.SendToConnector(ctxFor(t, 10*time.Second), "tenant-a", "a2", botecloud.OutMessage{Body: []byte("hi a2")})
	require.NoError(t, err)
	assert.Equal(t, "hi a1", string(a1.next(t, 20*time.Second).Body))
	select {
	case h := <-sc.arrived:
		assert.Equal(t, "honest", h.Get(envelope.HeaderFrom))
	case <-time.After(20 * time.Second):
		t.Fatal("the sidecar's program got nothing")
	}
	a1.none(t, time.Second)
	assert.Len(t, a1.received(), 1, "the handler saw only the honest message")
	assert.Len(t, sc.all(), 1, "the local program saw only the honest message")
}

// TestAttackForgedOnConnectorQueues: envelopes written straight into a
// connector's Storage Queue (a storage credential, not the gateway) —
// addressed to another connector or tenant, from a connector identity or
// nobody, with reserved headers — reach neither the handler of the
// connector package nor the sidecar's local program; each lands in the
// connector error queue with its reason.
func TestAttackForgedOnConnectorQueues(t *testing.T) {
	t.Parallel()
	g := newGateway(t)
	honest := g.cloud("honest", nil)
	d := g.busDriver(t)

	svc := &envelope.Identity{Service: "honest"}
	put := func(conn string, env *envelope.Envelope) {
		t.Helper()
		q, err := queuename.For(ids.ConnectorID{Tenant: "tenant-a", Connector: conn})
		require.NoError(t, err)
		qc, err := azqueue.NewQueueClientFromConnectionString(g.emu.ConnectionString, q, nil)
		require.NoError(t, err)
		_, _ = qc.Create(context.Background(), nil)
		text, err := envelope.Encode(env)
		require.NoError(t, err)
		_, err = qc.EnqueueMessage(context.Background(), string(text), nil)
		require.NoError(t, err)
	}
	want := map[string]string{}
	for _, conn := range []string{"a1", "a2"} {
		other := map[string]string{"a1": "a2", "a2": "a1"}[conn]
		for _, a := range []struct {
			env    *envelope.Envelope
			reason string
		}{
			{forged("q-other-"+conn, envelope.KindTargeted, "tenant-a", other, svc, nil), connector.ReasonMisaddressed},
			{forged("q-tenant-"+conn, envelope.KindTargeted, "tenant-b", conn, svc, nil), connector.ReasonMisaddressed},
			{forged("q-bc-tenant-"+conn, envelope.KindBroadcast, "tenant-b", "chat", svc, nil), connector.ReasonMisaddressed},
			{forged("q-nofrom-"+conn, envelope.KindTargeted, "tenant-a", conn, nil, map[string]string{"kind": "x"}), connector.ReasonUnverifiedSender},
			{forged("q-connfrom-"+conn, envelope.KindTargeted, "tenant-a", conn, &envelope.Identity{Tenant: "tenant-b", Connector: "b1"}, nil), connector.ReasonUnverifiedSender},
			{forged("q-hdr-"+conn, envelope.KindTargeted, "tenant-a", conn, svc, map[string]string{"Bote-From": "t9/admin", "Bote-Tenant": "t2"}), connector.ReasonUnverifiedSender},
		} {
			put(conn, a.env)
			want[a.env.ID] = a.reason
		}
	}
	// The connectors drain their queues when they connect (an honest
	// message reaches a connected connector in a deliver frame, which
	// reads nothing else).
	a1 := g.connector("tenant-a", "a1")
	sc := g.sidecar("tenant-a", "a2")
	for _, conn := range []string{"a1", "a2"} {
		_, err := honest.SendToConnector(ctxFor(t, 10*time.Second), "tenant-a", conn, botecloud.OutMessage{Body: []byte("hi")})
		require.NoError(t, err)
	}
	assert.Equal(t, want, connectorErrors(t, d, len(want)))
	assert.Equal(t, "hi", string(a1.next(t, 20*time.Second).Body))
	require.Eventually(t, func() bool { return len(sc.all()) >= 1 }, 20*time.Second, 50*time.Millisecond)
	a1.none(t, time.Second)
	assert.Len(t, a1.received(), 1, "the handler saw only the honest message")
	require.Len(t, sc.all(), 1, "the local program saw only the honest message")
	assert.Equal(t, "honest", sc.all()[0].Get(envelope.HeaderFrom))
	for _, conn := range []string{"a1", "a2"} {
		q, _ := queuename.For(ids.ConnectorID{Tenant: "tenant-a", Connector: conn})
		require.Eventually(t, func() bool { return queueLength(t, g, q) == 0 }, 10*time.Second, 200*time.Millisecond, conn)
	}
}

// TestSignedCloudServices: with --cloud-service-keys the gateway routes a
// message in a service's name only when that service signed it; another
// holder of send rights naming it (unsigned, or signed with its own key),
// or a service without a registered key, lands in the error queue.
func TestSignedCloudServices(t *testing.T) {
	t.Parallel()
	honestKey, err := clientauth.GenerateKey()
	require.NoError(t, err)
	forgerKey, err := clientauth.GenerateKey()
	require.NoError(t, err)
	jwk, err := clientauth.PublicJWK(honestKey, "")
	require.NoError(t, err)
	dir := t.TempDir()
	keys := filepath.Join(dir, "service-keys.json")
	require.NoError(t, os.WriteFile(keys, []byte(`{"honest":[`+string(jwk)+`]}`), 0o600))
	g := newGateway(t, "--cloud-service-keys", keys)
	honest := g.cloudWith("honest", func(c *botecloud.Config) { c.SigningKey = honestKey }, nil)
	a1 := g.connector("tenant-a", "a1")
	d := g.busDriver(t)

	signed := func(env *envelope.Envelope, key *ecdsa.PrivateKey) *envelope.Envelope {
		require.NoError(t, env.Sign(key))
		return env
	}
	svc := &envelope.Identity{Service: "honest"}
	for _, env := range []*envelope.Envelope{
		forged("s1", envelope.KindTargeted, "tenant-a", "a1", svc, nil),
		signed(forged("s2", envelope.KindTargeted, "tenant-a", "a1", svc, nil), forgerKey),
		signed(forged("s3", envelope.KindTargeted, "tenant-a", "a1", &envelope.Identity{Service: "other"}, nil), forgerKey),
	} {
		require.NoError(t, d.Send(ctxFor(t, 10*time.Second), bus.QueueConnectors, env, nil))
	}
	got := deadLetters(t, d, bus.QueueConnectors, 3)
	for _, id := range []string{"s1", "s2", "s3"} {
		assert.Regexp(t, "^"+routing.ReasonUnverifiedSender+": ", got[id], id)
	}
	// A signed body the bus moves to Blob storage still verifies.
	big := make([]byte, 100<<10)
	id, err := honest.SendToConnector(ctxFor(t, 10*time.Second), "tenant-a", "a1", botecloud.OutMessage{Body: big})
	require.NoError(t, err)
	m := a1.next(t, 20*time.Second)
	assert.Equal(t, id, m.ID)
	assert.Equal(t, envelope.Identity{Service: "honest"}, m.From)
	assert.Len(t, m.Body, len(big))
	a1.none(t, time.Second)
}

// TestSignedGateway: with the gateway signing what it stamps (--signing-key)
// and the cloud service holding its key (botecloud.Config.GatewayKeys), a
// connector message forged on "bote-cloud" by anything else with send
// rights (unsigned, or signed with another key) never reaches the cloud
// handler; what a connector really sent does, a claim-checked body included.
func TestSignedGateway(t *testing.T) {
	t.Parallel()
	gatewayKey, err := clientauth.GenerateKey()
	require.NoError(t, err)
	forgerKey, err := clientauth.GenerateKey()
	require.NoError(t, err)
	keyFile := filepath.Join(t.TempDir(), "gateway.pem")
	require.NoError(t, clientauth.WriteKeyFile(keyFile, gatewayKey))
	g := newGateway(t, "--signing-key", keyFile)
	svc := g.cloudWith("svc", func(c *botecloud.Config) { c.GatewayKeys = []*ecdsa.PublicKey{&gatewayKey.PublicKey} }, nil)
	a1 := g.connector("tenant-a", "a1")
	d := g.busDriver(t)

	admin := &envelope.Identity{Tenant: "tenant-b", Connector: "b1"}
	unsigned := &envelope.Envelope{ID: "w1", Kind: envelope.KindCloud, From: admin, Body: []byte("forged"), CreatedAt: time.Now().UTC()}
	signed := &envelope.Envelope{ID: "w2", Kind: envelope.KindCloud, From: admin, Body: []byte("forged"), CreatedAt: time.Now().UTC()}
	require.NoError(t, signed.Sign(forgerKey))
	for _, env := range []*envelope.Envelope{unsigned, signed} {
		require.NoError(t, d.Send(ctxFor(t, 10*time.Second), bus.QueueCloud, env, nil))
	}
	got := deadLetters(t, d, bus.QueueCloud, 2)
	for _, id := range []string{"w1", "w2"} {
		assert.Contains(t, got[id], "not signed by the gateway", id)
	}

	big := make([]byte, 200<<10)
	id, err := a1.Send(ctxFor(t, 10*time.Second), connector.OutMessage{Body: big})
	require.NoError(t, err)
	select {
	case m := <-svc.arrived:
		assert.Equal(t, id, m.ID)
		assert.Equal(t, envelope.Identity{Tenant: "tenant-a", Connector: "a1"}, m.From)
		assert.Len(t, m.Body, len(big))
	case <-time.After(20 * time.Second):
		t.Fatal("the cloud service got nothing")
	}
	assert.Len(t, svc.all(), 1, "the handler saw only the connector's own message")
}
