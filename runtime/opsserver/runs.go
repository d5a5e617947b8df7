package opsserver

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
	"github.com/botehq/platform/runtime/drift"
	"github.com/botehq/platform/runtime/envflag"
	"github.com/botehq/platform/runtime/ids"
	"github.com/botehq/platform/runtime/notify"
	"github.com/botehq/platform/runtime/operatorauth"
	"github.com/botehq/platform/runtime/opsapi"
	"github.com/botehq/platform/runtime/policy"
	"github.com/botehq/platform/runtime/policystore"
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
	policies   *policystore.Table
	notifyDB   *notify.Table
	notifier   *notify.Notifier
	drift      *drift.Scheduler

	maxBundleBytes       int64
	allowPrivateWebhooks bool
}

// azureCredential is DefaultAzureCredential with --azure-identity, else nil.
func (c Config) azureCredential() (azcore.TokenCredential, error) {
	if !c.AzureIdentity {
		return nil, nil
	}
	cred, err := azidentity.NewDefaultAzureCredential(nil)
	if err != nil {
		return nil, fmt.Errorf("cannot set up Azure identity: %w", err)
	}
	return cred, nil
}

// tableService is the table service of the run storage.
func (c Config) tableService(cred azcore.TokenCredential) (*aztables.ServiceClient, error) {
	var (
		svc *aztables.ServiceClient
		err error
	)
	if c.StorageConnectionString != "" {
		svc, err = aztables.NewServiceClientFromConnectionString(c.StorageConnectionString, nil)
	} else {
		svc, err = aztables.NewServiceClient(c.TableURL, cred, nil)
	}
	if err != nil {
		return nil, fmt.Errorf("cannot open storage: %w", err)
	}
	return svc, nil
}

// OpenKeysTable opens the API keys table (--api-keys-table) in the run
// storage, creating it with CreateResources.
func (c Config) OpenKeysTable(ctx context.Context) (*operatorauth.TableStore, error) {
	cred, err := c.azureCredential()
	if err != nil {
		return nil, err
	}
	svc, err := c.tableService(cred)
	if err != nil {
		return nil, err
	}
	return operatorauth.OpenKeysTable(ctx, svc, c.APIKeysTable, c.CreateResources)
}

// openRuns connects the run store, artifacts, bus and secret store. It
// makes the tenants of the registry known, so their agents' heartbeats
// are accepted from the start.
func openRuns(ctx context.Context, c Config, log *slog.Logger) (*runsStack, error) {
	cred, err := c.azureCredential()
	if err != nil {
		return nil, err
	}
	// Reloaded when the file changes: agents added to a tenant, roles and
	// labels granted or withdrawn, keys rotated take effect without a
	// restart.
	reg, err := registry.Watch(c.RegistryFile, c.RegistryURL, c.RegistryPoll, log)
	if err != nil {
		return nil, err
	}
	st := &runsStack{registry: reg, maxBundleBytes: c.MaxBundleBytes, allowPrivateWebhooks: c.WebhookAllowPrivate}
	tables, err := c.tableService(cred)
	if err != nil {
		return nil, err
	}
	if err := st.openTables(ctx, c, tables, log); err != nil {
		return nil, err
	}
	blobs, err := c.blobService(cred)
	if err != nil {
		return nil, err
	}
	if st.artifacts, err = artifacts.New(ctx, blobs, c.RunsContainer, c.CreateResources); err != nil {
		return nil, err
	}
	signer, err := st.openCloud(ctx, c, cred, log)
	if err != nil {
		return nil, err
	}
	secrets, err := openSecrets(c, cred)
	if err != nil {
		return nil, err
	}
	if _, none := secrets.(secretstore.None); !none {
		st.secrets = secrets // the API sets sensitive variables there
	}
	if c.AgentSilentAfter > 0 && c.AgentSilentAfter < 2*runproto.HeartbeatInterval {
		// An agent heartbeating at the default interval looks lost between
		// two heartbeats: its plans go back to the queue, its applies need
		// attention.
		log.Warn("--agent-silent-after is shorter than two default agent heartbeat intervals; agents must heartbeat more often (agent --heartbeat-interval)",
			"agentSilentAfter", c.AgentSilentAfter, "defaultHeartbeatInterval", runproto.HeartbeatInterval)
	}
	if err := st.openRunParts(ctx, c, tables, signer, secrets, log); err != nil {
		return nil, err
	}
	for _, t := range tenantsOf(reg.Current()) {
		if _, err := st.manager.CreateTenant(ctx, runs.Tenant{ID: t}); err != nil && !errors.Is(err, runs.ErrExists) {
			return nil, fmt.Errorf("cannot register tenant %s: %w", t, err)
		}
	}
	return st, nil
}

// openTables opens the stores kept in Table storage: runs, the audit log,
// policies and the webhooks with their notifier.
func (st *runsStack) openTables(ctx context.Context, c Config, tables *aztables.ServiceClient, log *slog.Logger) error {
	var err error
	if st.store, err = runstore.Open(ctx, tables, runstore.Options{TablePrefix: c.TablePrefix, CreateTables: c.CreateResources}); err != nil {
		return err
	}
	if st.audit, err = openAudit(ctx, tables, c, log); err != nil {
		return err
	}
	if st.policies, err = policystore.OpenTable(ctx, tables, policystore.TableName(c.TablePrefix), c.CreateResources); err != nil {
		return err
	}
	if st.notifyDB, err = notify.OpenTable(ctx, tables, notify.TableName(c.TablePrefix), c.CreateResources); err != nil {
		return err
	}
	st.notifier, err = notify.New(notify.Config{Store: st.notifyDB, AllowPrivate: c.WebhookAllowPrivate, Poll: c.WebhookPoll, RetryBase: c.WebhookRetryBase, RetryMax: c.WebhookRetryMax, Logger: log})
	return err
}

// blobService is the Blob storage of the artifacts and claim checks.
func (c Config) blobService(cred azcore.TokenCredential) (*azblob.Client, error) {
	var blobs *azblob.Client
	var err error
	if c.StorageConnectionString != "" {
		blobs, err = azblob.NewClientFromConnectionString(c.StorageConnectionString, nil)
	} else {
		blobs, err = azblob.NewClient(c.BlobURL, cred, nil)
	}
	if err != nil {
		return nil, fmt.Errorf("cannot open storage: %w", err)
	}
	return blobs, nil
}

// openCloud opens the gateway bus and the cloud client the runs reach
// agents through, and returns the signer of the artifacts' links.
func (st *runsStack) openCloud(ctx context.Context, c Config, cred azcore.TokenCredential, log *slog.Logger) (*claimcheck.Store, error) {
	ccfg := func(container string, create bool) claimcheck.Config {
		cc := claimcheck.Config{Container: container, CreateContainer: create}
		if c.StorageConnectionString != "" {
			cc.ConnectionString = c.StorageConnectionString
		} else {
			cc.ServiceURL, cc.Credential = c.BlobURL, cred
		}
		return cc
	}
	signer, err := claimcheck.New(ctx, ccfg(st.artifacts.Container(), false))
	if err != nil {
		return nil, err
	}
	claims, err := claimcheck.New(ctx, ccfg(claimcheck.DefaultContainer, c.CreateResources))
	if err != nil {
		return nil, err
	}
	if st.bus, err = busdriver.Open(busdriver.Config{
		Kind: c.Bus, StorageConnectionString: c.StorageConnectionString, QueueURL: c.QueueURL, CreateQueues: c.CreateResources,
		ServiceBusConnectionString: c.ServiceBusConnectionString, ServiceBusNamespace: c.ServiceBusNamespace,
		Credential: cred, Claims: claims, Logger: log,
	}); err != nil {
		return nil, err
	}
	var signingKey *ecdsa.PrivateKey
	if c.CloudSigningKey != "" {
		if signingKey, err = clientauth.LoadKeyFile(c.CloudSigningKey); err != nil {
			return nil, fmt.Errorf("--cloud-signing-key: %w", err)
		}
	}
	gatewayKeys, err := loadGatewayKeys(c.GatewayKeys, log)
	if err != nil {
		return nil, err
	}
	st.cloud, err = botecloud.New(botecloud.Config{Bus: st.bus, Service: c.ServiceName, WakeURL: c.GatewayURL, SigningKey: signingKey, GatewayKeys: gatewayKeys, Logger: log, PollMin: 20 * time.Millisecond, PollMax: time.Second})
	if err != nil {
		return nil, err
	}
	return signer, nil
}

// openRunParts builds the run manager, the drift scheduler, the policy
// checker and the dispatcher over the stores and the cloud client.
func (st *runsStack) openRunParts(ctx context.Context, c Config, tables *aztables.ServiceClient, signer *claimcheck.Store, secrets secretstore.Store, log *slog.Logger) error {
	driftDB, err := drift.OpenTable(ctx, tables, drift.TableName(c.TablePrefix), c.CreateResources)
	if err != nil {
		return err
	}
	st.manager, err = runs.New(runs.Config{Store: st.store, Roster: dispatch.RegistryRoster(st.registry), SilentAfter: c.AgentSilentAfter, Logger: log, OnTransition: st.recordTransition})
	if err != nil {
		return err
	}
	if st.drift, err = drift.New(drift.Config{Store: driftDB, Runs: st.manager, Notifier: st.notifier, Tick: c.DriftTick, Logger: log}); err != nil {
		return err
	}
	st.manager.SubscribeTransitions(st.drift.RunTransition) // drift queues runs through the manager: it registers once it exists
	checker, err := policy.NewChecker(policy.CheckerConfig{Store: st.policies, Workspaces: st.manager, Logger: log})
	if err != nil {
		return err
	}
	d, err := dispatch.New(dispatch.Config{
		Manager: st.manager, Tenants: st.store.ListTenants, Sender: st.cloud, Signer: signer, Logs: st.artifacts, Plans: st.artifacts, States: st.artifacts, Policies: checker, Drift: st.drift,
		Keys: st.registry, Secrets: secrets, Audit: st.audit, Tick: c.DispatchTick, SweepEvery: c.SweepInterval, UploadTTL: c.UploadLinkTTL, Logger: log,
	})
	if err != nil {
		return err
	}
	st.manager.Subscribe(d.OnChange) // before anything changes a run
	st.dispatcher = d
	return nil
}

// recordTransition records a stored transition in the audit log and
// enqueues its notifications (both open before the manager).
func (st *runsStack) recordTransition(ctx context.Context, r runs.Run, t runs.Transition) {
	st.audit.RunTransition(ctx, r, t)
	st.notifier.RunTransition(ctx, r, t)
}

// tenantsOf lists the registry's tenants. Loading the registry parsed
// every connector's ids (ids.ParseConnectorID).
func tenantsOf(reg *registry.Registry) []ids.TenantID {
	var out []ids.TenantID
	seen := map[ids.TenantID]bool{}
	for _, c := range reg.Connectors() {
		if t := ids.TenantID(c.Tenant); !seen[t] {
			seen[t] = true
			out = append(out, t)
		}
	}
	return out
}

func openSecrets(c Config, cred azcore.TokenCredential) (secretstore.Store, error) {
	switch {
	case c.SecretsFile != "":
		return secretstore.OpenFile(c.SecretsFile)
	case c.KeyVaultURL != "":
		c, err := azsecrets.NewClient(c.KeyVaultURL, cred, nil)
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
	cfg.Policies = st.policies
	cfg.Notifications, cfg.WebhookAllowHTTP = st.notifyDB, st.allowPrivateWebhooks
	cfg.Drift = st.drift
	cfg.Agents = opsapi.RunAgents{Runs: st.manager, Tenants: st.store.ListTenants, Registry: st.registry.Current}
}

// start runs the dispatcher and the agent message receiver until ctx
// ends; wait returns once both stopped (in-flight agent messages are
// finished or left on the bus for the next start).
func (st *runsStack) start(ctx context.Context, log *slog.Logger, fatal chan<- error) (wait func()) {
	var wg sync.WaitGroup
	wg.Go(func() { st.registry.Run(ctx) })
	wg.Go(func() { _ = st.notifier.Run(ctx) })
	wg.Go(func() { st.drift.Run(ctx) })
	wg.Go(func() {
		if err := st.dispatcher.Run(ctx); err != nil {
			fatal <- fmt.Errorf("dispatcher stopped: %w", err)
		}
	})
	wg.Go(func() {
		if err := st.cloud.Run(ctx, st.dispatcher); err != nil && ctx.Err() == nil {
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

// loadGatewayKeys reads the --gateway-keys key set: the gateway's public
// keys under "gateway", or under "worker", its name before the rename,
// still read (with a warning) for one more release. No file, no keys.
func loadGatewayKeys(path string, log *slog.Logger) ([]*ecdsa.PublicKey, error) {
	if path == "" {
		return nil, nil
	}
	set, err := registry.LoadKeySet(path)
	if err != nil {
		return nil, fmt.Errorf("--gateway-keys: %w", err)
	}
	keys := set["gateway"]
	if len(keys) == 0 && len(set["worker"]) > 0 {
		keys = set["worker"]
		envflag.Warn(log, []envflag.Deprecation{{Old: `--gateway-keys "worker"`, New: `--gateway-keys "gateway"`}})
	}
	if len(keys) == 0 {
		return nil, fmt.Errorf("--gateway-keys: %s names no \"gateway\"", path)
	}
	return keys, nil
}
