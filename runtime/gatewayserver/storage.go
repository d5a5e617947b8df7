package gatewayserver

import (
	"cmp"
	"context"
	"fmt"
	"log/slog"
	"net/http"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/data/aztables"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azqueue"

	"github.com/botehq/platform/runtime/bus"
	"github.com/botehq/platform/runtime/bus/busdriver"
	"github.com/botehq/platform/runtime/claimcheck"
	"github.com/botehq/platform/runtime/gatewayserver/connqueue"
	"github.com/botehq/platform/runtime/gatewayserver/routing"
)

func busName(b string) string {
	if b == "" {
		return BusStorageQueue
	}
	return b
}

func credentialIf(ok bool, c azcore.TokenCredential) azcore.TokenCredential {
	if ok {
		return c
	}
	return nil
}

type storage struct {
	queues *azqueue.ServiceClient
	tables *aztables.ServiceClient
	key    *azqueue.SharedKeyCredential
}

// storageIdleHeadroom is the idle connections to each storage host kept
// beyond the router's fan-out, for sessions' queue access, presence and
// subscriptions.
const storageIdleHeadroom = 32

// storageClient is the HTTP client of the gateway's queue and table
// clients. The Azure SDK's default keeps 10 idle connections per host:
// with the router's fanOut enqueues in flight (a broadcast), most finished
// requests closed their connection and the next one opened a new one, a
// TCP and TLS handshake per enqueue. This one keeps fanOut and some more.
func storageClient(fanOut int) *http.Client {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.MaxIdleConnsPerHost = fanOut + storageIdleHeadroom
	t.MaxIdleConns = 2 * t.MaxIdleConnsPerHost // the queue and the table host
	return &http.Client{Transport: t}
}

func openStorage(cfg *Config) (*storage, error) {
	st := &storage{}
	hc := storageClient(cmp.Or(cfg.FanOut, routing.DefaultFanOut))
	qopts := &azqueue.ClientOptions{ClientOptions: policy.ClientOptions{Transport: hc}}
	topts := &aztables.ClientOptions{ClientOptions: policy.ClientOptions{Transport: hc}}
	if cfg.StorageConnectionString != "" {
		cs, err := connqueue.ParseConnectionString(cfg.StorageConnectionString)
		if err != nil {
			return nil, err
		}
		qkey, err := azqueue.NewSharedKeyCredential(cs.AccountName, cs.AccountKey)
		if err != nil {
			return nil, fmt.Errorf("cannot use storage account key: %w", err)
		}
		tkey, err := aztables.NewSharedKeyCredential(cs.AccountName, cs.AccountKey)
		if err != nil {
			return nil, fmt.Errorf("cannot use storage account key: %w", err)
		}
		if st.queues, err = azqueue.NewServiceClientWithSharedKeyCredential(cs.QueueEndpoint, qkey, qopts); err != nil {
			return nil, fmt.Errorf("cannot create queue client: %w", err)
		}
		if st.tables, err = aztables.NewServiceClientWithSharedKey(cs.TableEndpoint, tkey, topts); err != nil {
			return nil, fmt.Errorf("cannot create table client: %w", err)
		}
		st.key = qkey
		return st, nil
	}
	var err error
	if st.queues, err = azqueue.NewServiceClient(cfg.QueueURL, cfg.Credential, qopts); err != nil {
		return nil, fmt.Errorf("cannot create queue client: %w", err)
	}
	if st.tables, err = aztables.NewServiceClient(cfg.TableURL, cfg.Credential, topts); err != nil {
		return nil, fmt.Errorf("cannot create table client: %w", err)
	}
	if cfg.StorageAccountKey != "" {
		if st.key, err = azqueue.NewSharedKeyCredential(cfg.StorageAccountName, cfg.StorageAccountKey); err != nil {
			return nil, fmt.Errorf("cannot use storage account key: %w", err)
		}
	}
	return st, nil
}

func openBus(ctx context.Context, cfg *Config, claims *claimcheck.Store, log *slog.Logger) (bus.Driver, error) {
	if cfg.OpenBus != nil {
		return cfg.OpenBus(ctx)
	}
	return busdriver.Open(busdriver.Config{
		Kind: cfg.Bus, StorageConnectionString: cfg.StorageConnectionString, QueueURL: cfg.QueueURL, CreateQueues: cfg.CreateResources,
		ServiceBusConnectionString: cfg.ServiceBusConnectionString, ServiceBusNamespace: cfg.ServiceBusNamespace,
		Credential: cfg.Credential, Claims: claims, Logger: log,
	})
}
