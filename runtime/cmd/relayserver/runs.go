package main

import (
	"context"
	"crypto/ecdsa"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
	"github.com/Azure/azure-sdk-for-go/sdk/data/aztables"
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azsecrets"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob"

	"github.com/botehq/platform/runtime/artifacts"
	"github.com/botehq/platform/runtime/audit"
	"github.com/botehq/platform/runtime/botecloud"
	"github.com/botehq/platform/runtime/bus"
	"github.com/botehq/platform/runtime/bus/busdriver"
	"github.com/botehq/platform/runtime/claimcheck"
	"github.com/botehq/platform/runtime/clientauth"
	"github.com/botehq/platform/runtime/dispatch"
	"github.com/botehq/platform/runtime/operatorauth"
	"github.com/botehq/platform/runtime/opsapi"
	"github.com/botehq/platform/runtime/registry"
	"github.com/botehq/platform/runtime/runproto"
	"github.com/botehq/platform/runtime/runs"
	"github.com/botehq/platform/runtime/runstore"
	"github.com/botehq/platform/runtime/secretstore"
)

// runsStack is everything runs need: state, artifacts, the gateway client
// and the dispatcher.
type runsStack struct {
	manager    *runs.Manager
	store      *runstore.Tables
	artifacts  *artifacts.Store
	dispatcher *dispatch.Dispatcher
	cloud      *botecloud.Client
	bus        bus.Driver
	registry   *registry.Watcher
	audit      *audit.Recorder
	secrets    secretstore.Store

	maxBundleBytes int64
}

// azureCredential is DefaultAzureCredential with --azure-identity, else nil.
func (o options) azureCredential() (azcore.TokenCredential, error) {
	if !o.azureIdentity {
		return nil, nil
	}
	c, err := azidentity.NewDefaultAzureCredential(nil)
	if err != nil {
		return nil, fmt.Errorf("cannot set up Azure identity: %w", err)
	}
	return c, nil
}

// tableService is the table service of the run storage.
func (o options) tableService(cred azcore.TokenCredential) (*aztables.ServiceClient, error) {
	var (
		svc *aztables.ServiceClient
		err error
	)
	if o.storageConnectionString != "" {
		svc, err = aztables.NewServiceClientFromConnectionString(o.storageConnectionString, nil)
	} else {
		svc, err = aztables.NewServiceClient(o.tableURL, cred, nil)
	}
	if err != nil {
		return nil, fmt.Errorf("cannot open storage: %w", err)
	}
	return svc, nil
}

// openKeysTable opens the API keys table (--api-keys-table).
func (o options) openKeysTable(ctx context.Context) (*operatorauth.TableStore, error) {
	cred, err := o.azureCredential()
	if err != nil {
		return nil, err
	}
	svc, err := o.tableService(cred)
	if err != nil {
		return nil, err
	}
	return operatorauth.OpenKeysTable(ctx, svc, o.apiKeysTable, o.createResources)
}

// openRuns connects the run store, artifacts, bus and secret store. It
// makes the tenants of the registry known, so their agents' heartbeats
// are accepted from the start.
func openRuns(ctx context.Context, o options, log *slog.Logger) (*runsStack, error) {
	cred, err := o.azureCredential()
	if err != nil {
		return nil, err
	}
	// Reloaded when the file changes: agents added to a tenant, roles and
	// labels granted or withdrawn, keys rotated take effect without a
	// restart.
	reg, err := registry.Watch(o.registryFile, o.registryURL, 0, log)
	if err != nil {
		return nil, err
	}
	tables, err := o.tableService(cred)
	if err != nil {
		return nil, err
	}
	var blobs *azblob.Client
	if o.storageConnectionString != "" {
		blobs, err = azblob.NewClientFromConnectionString(o.storageConnectionString, nil)
	} else {
		blobs, err = azblob.NewClient(o.blobURL, cred, nil)
	}
	if err != nil {
		return nil, fmt.Errorf("cannot open storage: %w", err)
	}
	st := &runsStack{registry: reg, maxBundleBytes: o.maxBundleBytes}
	if st.store, err = runstore.Open(ctx, tables, runstore.Options{TablePrefix: o.tablePrefix, CreateTables: o.createResources}); err != nil {
		return nil, err
	}
	if st.audit, err = openAudit(ctx, tables, o, log); err != nil {
		return nil, err
	}
	if st.artifacts, err = artifacts.New(ctx, blobs, o.runsContainer, o.createResources); err != nil {
		return nil, err
	}
	ccfg := func(container string, create bool) claimcheck.Config {
		c := claimcheck.Config{Container: container, CreateContainer: create}
		if o.storageConnectionString != "" {
			c.ConnectionString = o.storageConnectionString
		} else {
			c.ServiceURL, c.Credential = o.blobURL, cred
		}
		return c
	}
	signer, err := claimcheck.New(ctx, ccfg(st.artifacts.Container(), false))
	if err != nil {
		return nil, err
	}
	claims, err := claimcheck.New(ctx, ccfg(claimcheck.DefaultContainer, o.createResources))
	if err != nil {
		return nil, err
	}
	if st.bus, err = busdriver.Open(busdriver.Config{
		Kind: o.bus, StorageConnectionString: o.storageConnectionString, QueueURL: o.queueURL, CreateQueues: o.createResources,
		ServiceBusConnectionString: o.serviceBusConnection, ServiceBusNamespace: o.serviceBusNamespace,
		Credential: cred, Claims: claims, Logger: log,
	}); err != nil {
		return nil, err
	}
	var signingKey *ecdsa.PrivateKey
	if o.cloudSigningKey != "" {
		if signingKey, err = clientauth.LoadKeyFile(o.cloudSigningKey); err != nil {
			return nil, fmt.Errorf("--cloud-signing-key: %w", err)
		}
	}
	var workerKeys []*ecdsa.PublicKey
	if o.workerKeys != "" {
		set, err := registry.LoadKeySet(o.workerKeys)
		if err != nil {
			return nil, fmt.Errorf("--worker-keys: %w", err)
		}
		if workerKeys = set["worker"]; len(workerKeys) == 0 {
			return nil, fmt.Errorf("--worker-keys: %s names no \"worker\"", o.workerKeys)
		}
	}
	if st.cloud, err = botecloud.New(botecloud.Config{Bus: st.bus, Service: o.serviceName, WakeURL: o.workerWakeURL, SigningKey: signingKey, WorkerKeys: workerKeys, Logger: log, PollMin: 20 * time.Millisecond, PollMax: time.Second}); err != nil {
		return nil, err
	}
	secrets, err := openSecrets(o, cred)
	if err != nil {
		return nil, err
	}
	if _, none := secrets.(secretstore.None); !none {
		st.secrets = secrets // the API sets sensitive variables there
	}
	if o.silentAfter > 0 && o.silentAfter < 2*runproto.HeartbeatInterval {
		// An agent heartbeating at the default interval looks lost between
		// two heartbeats: its plans go back to the queue, its applies need
		// attention.
		log.Warn("--agent-silent-after is shorter than two default agent heartbeat intervals; agents must heartbeat more often (agent --heartbeat-interval)",
			"agentSilentAfter", o.silentAfter, "defaultHeartbeatInterval", runproto.HeartbeatInterval)
	}
	var d *dispatch.Dispatcher
	st.manager, err = runs.New(runs.Config{Store: st.store, Roster: dispatch.RegistryRoster(reg), SilentAfter: o.silentAfter, Logger: log, OnChange: func(r runs.Run) { d.OnChange(r) }, OnTransition: st.audit.RunTransition})
	if err != nil {
		return nil, err
	}
	d, err = dispatch.New(dispatch.Config{
		Manager: st.manager, Tenants: st.store.ListTenants, Sender: st.cloud, Signer: signer, Logs: st.artifacts, Plans: st.artifacts, States: st.artifacts,
		Keys: reg, Secrets: secrets, Audit: st.audit, Tick: o.dispatchTick, UploadTTL: o.uploadLinkTTL, Logger: log,
	})
	if err != nil {
		return nil, err
	}
	st.dispatcher = d
	for _, t := range tenantsOf(reg.Current()) {
		if _, err := st.manager.CreateTenant(ctx, runs.Tenant{ID: t}); err != nil && !errors.Is(err, runs.ErrExists) {
			return nil, fmt.Errorf("cannot register tenant %s: %w", t, err)
		}
	}
	return st, nil
}

func tenantsOf(reg *registry.Registry) []string {
	var out []string
	seen := map[string]bool{}
	for _, c := range reg.Connectors() {
		if !seen[c.Tenant] {
			seen[c.Tenant] = true
			out = append(out, c.Tenant)
		}
	}
	return out
}

func openSecrets(o options, cred azcore.TokenCredential) (secretstore.Store, error) {
	switch {
	case o.secretsFile != "":
		return secretstore.OpenFile(o.secretsFile)
	case o.keyVaultURL != "":
		c, err := azsecrets.NewClient(o.keyVaultURL, cred, nil)
		if err != nil {
			return nil, fmt.Errorf("cannot open Key Vault: %w", err)
		}
		return secretstore.NewKeyVault(c)
	}
	return secretstore.None{}, nil
}

// apiConfig gives the API the runs, and agents from the run store.
func (st *runsStack) apiConfig(cfg *opsapi.Config) {
	cfg.Runs, cfg.Artifacts, cfg.Dispatcher, cfg.Secrets = st.manager, st.artifacts, st.dispatcher, st.secrets
	cfg.MaxBundleBytes = st.maxBundleBytes
	cfg.Audit = st.audit
	cfg.Agents = opsapi.RunAgents{Runs: st.manager, Tenants: st.store.ListTenants, Registry: st.registry.Current}
}

// start runs the dispatcher and the agent message receiver until ctx
// ends; wait returns once both stopped (in-flight agent messages are
// finished or left on the bus for the next start).
func (st *runsStack) start(ctx context.Context, log *slog.Logger, fatal chan<- error) (wait func()) {
	var wg sync.WaitGroup
	wg.Go(func() { st.registry.Run(ctx) })
	wg.Go(func() {
		if err := st.dispatcher.Run(ctx); err != nil {
			fatal <- fmt.Errorf("dispatcher stopped: %w", err)
		}
	})
	wg.Go(func() {
		if err := st.cloud.Run(ctx, st.dispatcher.Handle); err != nil && ctx.Err() == nil {
			fatal <- fmt.Errorf("agent message receiver stopped: %w", err)
		}
	})
	log.Info("runs enabled: dispatching to agents through the gateway")
	return func() {
		wg.Wait()
		if err := st.bus.Close(context.Background()); err != nil {
			log.Warn("cannot close bus", "err", err)
		}
	}
}
