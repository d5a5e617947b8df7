// Package tenant is one customer tenant's infrastructure, as a Pulumi
// component: a Storage Queue per connector (named by the runtime's one
// queue-name function), the tenant's connector registrations (keys for
// the idp and the gateway; which connectors are deployment agents, with
// which labels, for the ops server), and a container registry token that
// can pull the agent image and nothing else.
//
// Tenants live in stack config, keyed by their stable id; onboarding is a
// config edit and `pulumi up`. Everything a tenant owns is a child of its
// component, so adding a tenant adds exactly these resources and removing it
// removes exactly them. The registrations themselves are published by the
// shared gateway as one registry file (runtime/registry format) built from
// every tenant's Registrations, since the idp reads a single file.
package tenant

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"

	"github.com/pulumi/pulumi-azure-native-sdk/containerregistry/v2"
	"github.com/pulumi/pulumi-azure-native-sdk/storage/v2"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"

	"github.com/botehq/platform/components/naming"
	"github.com/botehq/platform/runtime/ids"
	"github.com/botehq/platform/runtime/queuename"
	"github.com/botehq/platform/runtime/registry"
)

// Type is the component's type token.
const Type = "bote:tenant:Tenant"

// DefaultAgentRepository is the agent image's repository in the registry.
const DefaultAgentRepository = "bote/agent"

// ConnectorRepository is the connector sidecar image's repository: the
// tenant's token pulls it and the agent's, nothing else.
const ConnectorRepository = "bote/connector"

// Connector is one connector in stack config.
type Connector struct {
	ID string `json:"id"`
	// JWK is the connector's public key (EC P-256), as printed by
	// `connector keygen`.
	JWK json.RawMessage `json:"jwk"`
	// Disabled keeps the queue and registration but refuses tokens.
	Disabled bool `json:"disabled,omitempty"`
	// Roles: ["agent"] makes the connector a deployment agent of the
	// tenant; without it the ops server refuses its heartbeats and
	// reports and never seals the tenant's secrets to it.
	Roles []string `json:"roles,omitempty"`
	// Labels the agent may serve (workspaces select agents by label; a
	// pool is a label). Only with the agent role.
	Labels map[string]string `json:"labels,omitempty"`
}

// Spec is one tenant in stack config.
type Spec struct {
	ID         string      `json:"id"`
	Connectors []Connector `json:"connectors"`
}

// Validate checks ids, keys, duplicates and queue-name collisions; errors
// name the tenant and connector.
func (s Spec) Validate() error {
	if err := ids.Validate("tenant", s.ID); err != nil {
		return err
	}
	pairs := make([]ids.ConnectorID, 0, len(s.Connectors))
	for i, c := range s.Connectors {
		if err := ids.Validate("connector", c.ID); err != nil {
			return fmt.Errorf("tenant %s: connectors[%d]: %w", s.ID, i, err)
		}
		if _, err := registry.ParsePublicJWK(c.JWK); err != nil {
			return fmt.Errorf("tenant %s: connector %s: jwk: %w", s.ID, c.ID, err)
		}
		if err := registry.ValidateGrants(c.Roles, c.Labels); err != nil {
			return fmt.Errorf("tenant %s: connector %s: %w", s.ID, c.ID, err)
		}
		pairs = append(pairs, ids.ConnectorID{Tenant: ids.TenantID(s.ID), Connector: c.ID})
	}
	if _, err := queuename.Assign(pairs); err != nil {
		return fmt.Errorf("tenant %s: %w", s.ID, err)
	}
	return nil
}

// Registrations are the tenant's connectors in the registry format the idp
// reads, sorted by connector id.
func (s Spec) Registrations() []registry.Connector {
	out := make([]registry.Connector, 0, len(s.Connectors))
	for _, c := range s.Connectors {
		out = append(out, registry.Connector{Tenant: s.ID, ID: c.ID, JWK: c.JWK, Disabled: c.Disabled, Roles: c.Roles, Labels: c.Labels})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

// Args are the arguments of New.
type Args struct {
	Spec              Spec
	ResourceGroupName pulumi.StringInput
	// StorageAccountName is the shared account holding connector queues.
	StorageAccountName pulumi.StringInput
	// RegistryName is the shared container registry.
	RegistryName pulumi.StringInput
	// AgentRepository defaults to DefaultAgentRepository.
	AgentRepository string
	// Password, when set, gives the pull token a password (RegistryPassword).
	Password *TokenPassword
}

// Validate checks the arguments before anything registers.
func (a *Args) Validate() error {
	if err := a.Spec.Validate(); err != nil {
		return fmt.Errorf("Spec: %w", err)
	}
	switch {
	case a.ResourceGroupName == nil:
		return fmt.Errorf("ResourceGroupName: is required")
	case a.StorageAccountName == nil:
		return fmt.Errorf("StorageAccountName: is required")
	case a.RegistryName == nil:
		return fmt.Errorf("RegistryName: is required")
	}
	if err := naming.Check(naming.RegistryScopeMap, pullName(a.Spec.ID)); err != nil {
		return fmt.Errorf("Spec.ID: %w", err)
	}
	return nil
}

// pullName names the tenant's scope map and token: readable, hashed, within
// the registry's 50-character limit.
func pullName(tenantID string) string { return naming.Label(tenantID, 40) + "-pull" }

// Tenant is the component.
type Tenant struct {
	pulumi.ResourceState

	// Queues maps connector id to its Storage Queue name.
	Queues pulumi.StringMapOutput `pulumi:"queues"`
	// RegistryToken is the name of the pull token for the tenant's agents.
	RegistryToken pulumi.StringOutput `pulumi:"registryToken"`
	// AgentRepository is the agent's repository (the token also pulls
	// ConnectorRepository).
	AgentRepository pulumi.StringOutput `pulumi:"agentRepository"`
	// RegistryPassword is the token's password (a secret; "" without
	// Args.Password, and at a preview of a tenant that has none yet).
	RegistryPassword pulumi.StringOutput
}

// New registers one tenant.
func New(ctx *pulumi.Context, name string, args *Args, opts ...pulumi.ResourceOption) (*Tenant, error) {
	// size: one tenant's resource graph in dependency order; helpers would only thread its outputs around.
	if args == nil {
		return nil, fmt.Errorf("tenant %s: args are required", name)
	}
	if err := args.Validate(); err != nil {
		return nil, fmt.Errorf("tenant %s: %w", name, err)
	}
	repo := args.AgentRepository
	if repo == "" {
		repo = DefaultAgentRepository
	}
	t := &Tenant{}
	if err := ctx.RegisterComponentResource(Type, name, t, opts...); err != nil {
		return nil, fmt.Errorf("cannot register tenant %s: %w", name, err)
	}
	parent := pulumi.Parent(t)

	// Queues, in connector id order: names from the runtime's function.
	queues := pulumi.StringMap{}
	conns := append([]Connector(nil), args.Spec.Connectors...)
	sort.Slice(conns, func(i, j int) bool { return conns[i].ID < conns[j].ID })
	for _, c := range conns {
		qn, err := queuename.For(ids.ConnectorID{Tenant: ids.TenantID(args.Spec.ID), Connector: c.ID})
		if err != nil {
			return nil, fmt.Errorf("tenant %s: %w", name, err)
		}
		q, err := storage.NewQueue(ctx, name+"-queue-"+c.ID, &storage.QueueArgs{
			QueueName:         pulumi.String(qn),
			AccountName:       args.StorageAccountName,
			ResourceGroupName: args.ResourceGroupName,
			Metadata:          pulumi.StringMap{"tenant": pulumi.String(args.Spec.ID), "connector": pulumi.String(c.ID)},
		}, parent)
		if err != nil {
			return nil, fmt.Errorf("tenant %s: cannot register queue for %s: %w", name, c.ID, err)
		}
		queues[c.ID] = q.Name
	}

	// A token that reads the agent repository and nothing else.
	pn := pullName(args.Spec.ID)
	sm, err := containerregistry.NewScopeMap(ctx, name+"-agent-pull", &containerregistry.ScopeMapArgs{
		ScopeMapName:      pulumi.String(pn),
		RegistryName:      args.RegistryName,
		ResourceGroupName: args.ResourceGroupName,
		Description:       pulumi.String("Pull the agent and connector images for tenant " + args.Spec.ID),
		Actions: pulumi.StringArray{
			pulumi.String("repositories/" + repo + "/content/read"),
			pulumi.String("repositories/" + repo + "/metadata/read"),
			pulumi.String("repositories/" + ConnectorRepository + "/content/read"),
			pulumi.String("repositories/" + ConnectorRepository + "/metadata/read"),
		},
	}, parent)
	if err != nil {
		return nil, fmt.Errorf("tenant %s: cannot register scope map: %w", name, err)
	}
	tok, err := containerregistry.NewToken(ctx, name+"-agent-pull-token", &containerregistry.TokenArgs{
		TokenName:         pulumi.String(pn),
		RegistryName:      args.RegistryName,
		ResourceGroupName: args.ResourceGroupName,
		ScopeMapId:        sm.ID(),
		Status:            pulumi.String("enabled"),
	}, parent)
	if err != nil {
		return nil, fmt.Errorf("tenant %s: cannot register registry token: %w", name, err)
	}

	t.RegistryPassword = pulumi.ToSecret(pulumi.String("")).(pulumi.StringOutput)
	if p := args.Password; p != nil {
		t.RegistryPassword = pulumi.ToSecret(pulumi.All(tok.ID(), p.Previous).ApplyTWithContext(ctx.Context(),
			func(c context.Context, v []any) (string, error) {
				if prev, _ := v[1].(string); prev != "" {
					return prev, nil
				}
				if ctx.DryRun() {
					return "", nil // issued by `pulumi up`, never by a preview
				}
				return p.Issue(c, string(v[0].(pulumi.ID)))
			})).(pulumi.StringOutput)
	}
	t.Queues = queues.ToStringMapOutput()
	t.RegistryToken = tok.Name
	t.AgentRepository = pulumi.String(repo).ToStringOutput()
	if err := ctx.RegisterResourceOutputs(t, pulumi.Map{
		"queues": t.Queues, "registryToken": t.RegistryToken, "agentRepository": t.AgentRepository,
	}); err != nil {
		return nil, fmt.Errorf("cannot register tenant %s outputs: %w", name, err)
	}
	return t, nil
}
