package gateway

import (
	"cmp"

	"github.com/pulumi/pulumi-azure-native-sdk/storage/v2"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"

	"github.com/botehq/platform/components/internal/azurenative/servicebus"
	"github.com/botehq/platform/runtime/registry"
)

// queueSpec is a Service Bus queue's deliberate settings.
type queueSpec struct {
	name             string
	lockDuration     string // how long a receiver owns a message before redelivery
	maxDeliveryCount int    // deliveries before Service Bus dead-letters it
	ttl              string
	forwardDeadTo    string
}

func (b *builder) bus() error {
	sku := cmp.Or(b.args.ServiceBusSku, "Standard")
	ns, err := servicebus.NewNamespace(b.ctx, b.child("bus"), &servicebus.NamespaceArgs{
		NamespaceName:     pulumi.String(b.n.bus),
		ResourceGroupName: b.args.ResourceGroupName,
		Location:          pulumi.String(b.args.Location),
		Sku:               &servicebus.SBSkuArgs{Name: pulumi.String(sku), Tier: pulumi.String(sku)},
		// Apps authenticate with their managed identities; no SAS keys
		// exist to leak.
		DisableLocalAuth:  pulumi.Bool(true),
		MinimumTlsVersion: pulumi.String("1.2"),
		Tags:              pulumi.ToStringMap(b.args.Tags),
	}, b.parent, pulumi.Protect(b.args.Protect))
	if err != nil {
		return err
	}
	b.gw.Namespace = ns
	b.gw.ServiceBusEndpoint = ns.ServiceBusEndpoint
	// The error queue comes first: the others forward their dead letters
	// to it.
	specs := []queueSpec{
		// The error queue is read by operators and tooling; it keeps
		// messages for a month and never forwards again.
		{QueueErrors, "PT5M", 10, "P30D", ""},
		// The gateway routes each message to a Storage Queue in well under a
		// second; a minute's lock is ample and redelivers quickly after a
		// crash. Ten deliveries, then the dead-letter queue, which forwards
		// to bote-errors with the reason kept in the message properties.
		{QueueConnectors, "PT1M", 10, "P14D", QueueErrors},
		// Cloud services may do real work per message (the ops server
		// starts runs), so they get a longer lock.
		{QueueCloud, "PT2M", 10, "P14D", QueueErrors},
		// Connectors' reports of messages they could not handle: like the
		// error queue, kept for operators and never forwarded.
		{QueueConnectorErrors, "PT5M", 10, "P30D", ""},
	}
	for _, s := range specs {
		qa := &servicebus.QueueArgs{
			QueueName:         pulumi.String(s.name),
			NamespaceName:     ns.Name,
			ResourceGroupName: b.args.ResourceGroupName,
			LockDuration:      pulumi.String(s.lockDuration),
			MaxDeliveryCount:  pulumi.Int(s.maxDeliveryCount),
			// Senders set the envelope's stable message id; duplicate
			// detection drops a resend within ten minutes.
			RequiresDuplicateDetection:          pulumi.Bool(true),
			DuplicateDetectionHistoryTimeWindow: pulumi.String("PT10M"),
			DeadLetteringOnMessageExpiration:    pulumi.Bool(true),
			DefaultMessageTimeToLive:            pulumi.String(s.ttl),
			EnableBatchedOperations:             pulumi.Bool(true),
			RequiresSession:                     pulumi.Bool(false),
		}
		var deps []pulumi.Resource
		if s.forwardDeadTo != "" {
			qa.ForwardDeadLetteredMessagesTo = pulumi.String(s.forwardDeadTo)
			deps = append(deps, b.gw.Queues[s.forwardDeadTo])
		}
		q, err := servicebus.NewQueue(b.ctx, b.child("queue-"+s.name), qa, b.parent, pulumi.DependsOn(deps))
		if err != nil {
			return err
		}
		b.gw.Queues[s.name] = q
	}
	return nil
}

func (b *builder) storage() error {
	sku := cmp.Or(b.args.StorageSku, "Standard_ZRS")
	acct, err := storage.NewStorageAccount(b.ctx, b.child("storage"), &storage.StorageAccountArgs{
		AccountName:       pulumi.String(b.n.storage),
		ResourceGroupName: b.args.ResourceGroupName,
		Location:          pulumi.String(b.args.Location),
		Kind:              pulumi.String("StorageV2"),
		Sku:               &storage.SkuArgs{Name: pulumi.String(sku)},
		// Connectors reach their queues over the Internet with short-lived
		// SAS the gateway signs with the account key, so shared-key access
		// stays on; everything else uses Entra ID.
		AllowSharedKeyAccess:         pulumi.Bool(true),
		DefaultToOAuthAuthentication: pulumi.Bool(true),
		AllowBlobPublicAccess:        pulumi.Bool(false),
		AllowCrossTenantReplication:  pulumi.Bool(false),
		EnableHttpsTrafficOnly:       pulumi.Bool(true),
		MinimumTlsVersion:            pulumi.String("TLS1_2"),
		PublicNetworkAccess:          pulumi.String("Enabled"),
		Tags:                         pulumi.ToStringMap(b.args.Tags),
	}, b.parent, pulumi.Protect(b.args.Protect))
	if err != nil {
		return err
	}
	b.gw.StorageAccount = acct
	b.gw.StorageAccountName = acct.Name
	b.gw.QueueEndpoint = acct.PrimaryEndpoints.Queue()
	b.gw.TableEndpoint = acct.PrimaryEndpoints.Table()
	b.gw.BlobEndpoint = acct.PrimaryEndpoints.Blob()

	b.tables = map[string]*storage.Table{}
	for _, t := range []string{TablePresence, TableSubscriptions, TableReplay} {
		tbl, err := storage.NewTable(b.ctx, b.child("table-"+t), &storage.TableArgs{
			TableName: pulumi.String(t), AccountName: acct.Name, ResourceGroupName: b.args.ResourceGroupName,
		}, b.parent)
		if err != nil {
			return err
		}
		b.tables[t] = tbl
	}
	b.containers = map[string]*storage.BlobContainer{}
	for _, c := range []string{ContainerClaims, ContainerRegistry} {
		bc, err := storage.NewBlobContainer(b.ctx, b.child("container-"+c), &storage.BlobContainerArgs{
			ContainerName: pulumi.String(c), AccountName: acct.Name, ResourceGroupName: b.args.ResourceGroupName,
			PublicAccess: storage.PublicAccessNone,
		}, b.parent)
		if err != nil {
			return err
		}
		b.containers[c] = bc
	}
	b.gw.ClaimsContainer = b.containers[ContainerClaims]
	b.gw.RegistryContainer = b.containers[ContainerRegistry]

	doc, err := registry.Marshal(b.args.Registrations)
	if err != nil {
		return err
	}
	// A storage:Blob's source cannot change in place (azure-native
	// replaces the blob), so each registry is its own blob, named by its
	// content: a changed registry is a new blob, the apps are pointed at it,
	// and only then does Pulumi delete the old one (deletions of resources
	// that left the program come last). There is never a moment without a
	// registry at the URL an app reads.
	blobName, hash := registryBlobName(doc)
	blob, err := storage.NewBlob(b.ctx, b.child("connector-registry-"+hash), &storage.BlobArgs{
		BlobName:          pulumi.String(blobName),
		ContainerName:     b.containers[ContainerRegistry].Name,
		AccountName:       acct.Name,
		ResourceGroupName: b.args.ResourceGroupName,
		Source:            pulumi.NewStringAsset(string(doc)),
		ContentType:       pulumi.String("application/json"),
		Type:              storage.BlobTypeBlock,
	}, b.parent)
	if err != nil {
		return err
	}
	b.registryRes = blob
	b.gw.RegistryBlobURL = pulumi.Sprintf("%s%s/%s", b.gw.BlobEndpoint, ContainerRegistry, blobName)
	return nil
}
