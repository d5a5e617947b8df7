package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/botehq/platform/runtime/operatorauth"
	"github.com/botehq/platform/runtime/opsserver"
)

// tenantRoles is a repeatable --role tenant=role flag.
type tenantRoles map[string]operatorauth.Role

func (t tenantRoles) String() string { return operatorauth.Grants{Tenants: t}.String() }

func (t tenantRoles) Set(s string) error {
	tenant, role, err := operatorauth.ParseTenantRole(s)
	if err != nil {
		return err
	}
	if _, dup := t[tenant]; dup {
		return fmt.Errorf("tenant %s given twice", tenant)
	}
	t[tenant] = role
	return nil
}

// runAPIKey manages the API keys directly in their store, a keys file
// (--keys-file) or the keys table (--keys-table, in the storage account of
// --storage-connection-string or --table-url with --azure-identity), for
// bootstrapping the first admin key and for recovery; once an admin key
// exists, `opsbot keys` does the same through the API. create prints a new
// key once (only its salted hash is stored), list shows ids and grants,
// rotate replaces a key's secret, revoke (alias disable) keeps a key
// listed but refuses it. A running server picks up changes within seconds.
func runAPIKey(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	// size: one case per apikey subcommand over the shared flags.
	if len(args) == 0 {
		return errors.New("apikey: want a subcommand: create, list, rotate or revoke")
	}
	sub := args[0]
	fset := flag.NewFlagSet("opsserver apikey "+sub, flag.ContinueOnError)
	fset.SetOutput(stderr)
	file := fset.String("keys-file", "", "API keys file (created by the first create)")
	var o opsserver.Config
	fset.StringVar(&o.APIKeysTable, "keys-table", "", "API keys table (the server's --api-keys-table), instead of --keys-file")
	fset.StringVar(&o.StorageConnectionString, "storage-connection-string", "", "with --keys-table: storage account connection string")
	fset.StringVar(&o.TableURL, "table-url", "", "with --keys-table: table service URL (with --azure-identity)")
	fset.BoolVar(&o.AzureIdentity, "azure-identity", false, "with --keys-table: authenticate with Microsoft Entra ID (DefaultAzureCredential)")
	id := fset.String("id", "", "key id: 1-63 lowercase letters, digits, dashes")
	desc := fset.String("description", "", "who or what the key is for")
	admin := fset.Bool("admin", false, "create: platform administrator (every tenant, key management)")
	tenants := tenantRoles{}
	fset.Var(tenants, "role", "create: tenant=role (reader, operator or approver); repeat for more tenants")
	if err := fset.Parse(args[1:]); err != nil {
		return err
	}
	var store operatorauth.KeyStore
	switch {
	case (*file == "") == (o.APIKeysTable == ""):
		return errors.New("apikey: --keys-file or --keys-table is required (give one)")
	case *file != "":
		store = &operatorauth.FileStore{Path: *file, Create: sub == "create"}
	case o.StorageConnectionString == "" && (o.TableURL == "" || !o.AzureIdentity):
		return errors.New("apikey: --keys-table: needs --storage-connection-string, or --table-url with --azure-identity")
	default:
		o.CreateResources = o.StorageConnectionString != ""
		t, err := o.OpenKeysTable(ctx)
		if err != nil {
			return err
		}
		store = t
	}
	switch sub {
	case "create":
		g := operatorauth.Grants{Admin: *admin, Tenants: tenants}
		if g.Empty() {
			return errors.New("apikey create: --admin or --role tenant=role: a key without grants may do nothing")
		}
		if *admin && len(tenants) > 0 {
			return errors.New("apikey create: --admin and --role: an admin has every tenant already; give one")
		}
		var key string
		_, err := store.Edit(ctx, *id, func(f *operatorauth.KeysFile, now time.Time) (err error) {
			key, err = f.AddKey(*id, *desc, g, now)
			return err
		})
		if err != nil {
			return fmt.Errorf("apikey create: --id: %w", err)
		}
		fmt.Fprintf(stderr, "created API key %q (%s) in %s; it is shown once, store it now:\n", *id, g, store)
		fmt.Fprintln(stdout, key)
		return nil
	case "list":
		f, err := store.Load(ctx)
		if err != nil {
			return err
		}
		return printKeys(stdout, f.Keys)
	case "rotate":
		var key string
		_, err := store.Edit(ctx, *id, func(f *operatorauth.KeysFile, now time.Time) (err error) {
			key, err = f.RotateKey(*id, now)
			return err
		})
		if err != nil {
			return fmt.Errorf("apikey rotate: --id: %w", err)
		}
		fmt.Fprintf(stderr, "rotated API key %q in %s; the old secret no longer works; the new key is shown once:\n", *id, store)
		fmt.Fprintln(stdout, key)
		return nil
	case "revoke", "disable":
		_, err := store.Edit(ctx, *id, func(f *operatorauth.KeysFile, now time.Time) error { return f.RevokeKey(*id, now) })
		if err != nil {
			return fmt.Errorf("apikey %s: --id: %w in %s", sub, err, store)
		}
		return nil
	}
	return fmt.Errorf("apikey: unknown subcommand %q (want create, list, rotate or revoke)", sub)
}

func printKeys(w io.Writer, keys []operatorauth.KeyEntry) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tCREATED\tSTATE\tGRANTS\tDESCRIPTION")
	for _, k := range keys {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", k.ID, k.Created.Format(time.RFC3339), k.Info().State(), k.Grants, k.Description)
	}
	return tw.Flush()
}
