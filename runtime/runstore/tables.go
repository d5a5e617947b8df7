package runstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/data/aztables"

	"github.com/botehq/platform/runtime/ids"
	"github.com/botehq/platform/runtime/internal/aztable"
	"github.com/botehq/platform/runtime/runs"
)

// DefaultTablePrefix names the store's tables unless Config says otherwise.
const DefaultTablePrefix = "boteruns"

// Table names, after the prefix.
const (
	tenantsTable    = "tenants"
	workspacesTable = "workspaces"
	runsTable       = "runs"
	runIndexTable   = "runindex"
	agentsTable     = "agents"
	activeTable     = "active"
)

// Options tune a Tables store.
type Options struct {
	// TablePrefix starts every table name (letters and digits, starting
	// with a letter, at most 50; DefaultTablePrefix if empty), so several
	// stores can share an account.
	TablePrefix string
	// CreateTables creates missing tables (local use; in Azure the
	// infrastructure creates them).
	CreateTables bool
}

// Validate names the first bad option.
func (o Options) Validate() error {
	p := o.TablePrefix
	if len(p) > 50 {
		return fmt.Errorf("runstore options: TablePrefix %q is longer than 50 characters", p)
	}
	for i, r := range p {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || i > 0 && r >= '0' && r <= '9') {
			return fmt.Errorf("runstore options: TablePrefix %q must be letters and digits, starting with a letter", p)
		}
	}
	return nil
}

// Tables is the Azure Table Storage runs.Store.
type Tables struct {
	tenants, workspaces, runs, index, agents, active *aztables.Client
	now                                              func() time.Time
}

var _ runs.Store = (*Tables)(nil)

// TableNames lists the store's tables for prefix (DefaultTablePrefix if
// empty), in a fixed order; the Pulumi components provision exactly these.
func TableNames(prefix string) []string {
	if prefix == "" {
		prefix = DefaultTablePrefix
	}
	names := []string{tenantsTable, workspacesTable, runsTable, runIndexTable, agentsTable, activeTable}
	for i, n := range names {
		names[i] = prefix + n
	}
	return names
}

// Open returns a store on the tables of svc (built by the caller from a
// connection string, or from the table endpoint in the stack outputs and
// an Entra ID credential).
func Open(ctx context.Context, svc *aztables.ServiceClient, opts Options) (*Tables, error) {
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	names := TableNames(opts.TablePrefix)
	clients := make([]*aztables.Client, len(names))
	for i, n := range names {
		clients[i] = svc.NewClient(n)
		if opts.CreateTables {
			if err := aztable.Create(ctx, svc, n); err != nil {
				return nil, err
			}
		}
	}
	return &Tables{tenants: clients[0], workspaces: clients[1], runs: clients[2], index: clients[3], agents: clients[4], active: clients[5], now: time.Now}, nil
}

// Keys. Tenant and workspace ids never hold '|' (ids.Validate, which their
// types ids.TenantID and ids.WorkspaceID stand for), so
// "tenant|workspace" is one to one; a tenant's run partitions are exactly
// the keys in ["tenant|", "tenant}").
const (
	tenantsPartition = "tenant"
	lockRow          = "lock"
	runRowFirst      = "run-"
	runRowEnd        = "run." // '.' follows '-': every run id sorts in [run-, run.)
)

func runsPartition(tenant ids.TenantID, workspace ids.WorkspaceID) string {
	return string(tenant) + "|" + string(workspace)
}

// timeKey renders t so that string order is time order, for filters.
func timeKey(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format("2006-01-02T15:04:05.000000000Z")
}

// Entities carry the value as JSON split over string properties Data0..,
// plus the few plain properties that queries filter on. The service counts
// strings in UTF-16: a property holds at most 64 KiB (30 KiB of UTF-8 is
// at most 30 Ki characters), an entity 1 MiB (400 KiB of UTF-8 is at most
// 800 KiB).
const (
	chunkBytes   = 30 << 10
	maxDataBytes = 400 << 10
)

func encode(pk, rk string, v any, props map[string]any) ([]byte, error) {
	data, err := json.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("cannot encode %T: %w", v, err)
	}
	if len(data) > maxDataBytes {
		return nil, fmt.Errorf("cannot store %s/%s: %d bytes encoded, the limit is %d", pk, rk, len(data), maxDataBytes)
	}
	e := map[string]any{"PartitionKey": pk, "RowKey": rk}
	for k, v := range props {
		e[k] = v
	}
	n := 0
	for len(data) > 0 {
		end := min(chunkBytes, len(data))
		for end < len(data) && !utf8.RuneStart(data[end]) {
			end-- // never split a UTF-8 sequence across properties
		}
		e["Data"+strconv.Itoa(n)] = string(data[:end])
		data, n = data[end:], n+1
	}
	e["Chunks"] = n
	return json.Marshal(e)
}

// decode fills v from an entity's Data properties and returns its ETag
// (from odata.etag when listed).
func decode(raw []byte, v any) (string, error) {
	var e map[string]any
	if err := json.Unmarshal(raw, &e); err != nil {
		return "", fmt.Errorf("cannot decode entity: %w", err)
	}
	n, _ := e["Chunks"].(float64)
	var b strings.Builder
	for i := range int(n) {
		s, _ := e["Data"+strconv.Itoa(i)].(string)
		b.WriteString(s)
	}
	if err := json.Unmarshal([]byte(b.String()), v); err != nil {
		return "", fmt.Errorf("cannot decode entity %v/%v: %w", e["PartitionKey"], e["RowKey"], err)
	}
	etag, _ := e["odata.etag"].(string)
	return etag, nil
}

func isCode(err error, status int, codes ...aztables.TableErrorCode) bool {
	var re *azcore.ResponseError
	if !errors.As(err, &re) {
		return false
	}
	if re.StatusCode == status {
		return true
	}
	for _, c := range codes {
		if re.ErrorCode == string(c) {
			return true
		}
	}
	return false
}

func notFound(err error) bool {
	return isCode(err, http.StatusNotFound, aztables.ResourceNotFound, aztables.EntityNotFound)
}

func (s *Tables) getEntity(ctx context.Context, c *aztables.Client, pk, rk string, v any) (string, error) {
	resp, err := c.GetEntity(ctx, pk, rk, nil)
	if err != nil {
		if notFound(err) {
			return "", runs.ErrNotFound
		}
		return "", fmt.Errorf("cannot read %s/%s: %w", pk, rk, err)
	}
	if _, err := decode(resp.Value, v); err != nil {
		return "", err
	}
	return string(resp.ETag), nil
}

func (s *Tables) add(ctx context.Context, c *aztables.Client, pk, rk string, v any, props map[string]any) error {
	e, err := encode(pk, rk, v, props)
	if err != nil {
		return err
	}
	if _, err := c.AddEntity(ctx, e, nil); err != nil {
		if isCode(err, http.StatusConflict, aztables.EntityAlreadyExists) {
			return fmt.Errorf("%s/%s: %w", pk, rk, runs.ErrExists)
		}
		return fmt.Errorf("cannot add %s/%s: %w", pk, rk, err)
	}
	return nil
}

// list returns every entity of c matching filter, decoded by each.
func list(ctx context.Context, c *aztables.Client, filter string, each func(raw []byte) error) error {
	p := c.NewListEntitiesPager(&aztables.ListEntitiesOptions{Filter: to.Ptr(filter)})
	for p.More() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return fmt.Errorf("cannot query %q: %w", filter, err)
		}
		for _, raw := range page.Entities {
			if err := each(raw); err != nil {
				return err
			}
		}
	}
	return nil
}

// quote renders s as an OData string literal.
func quote(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }
