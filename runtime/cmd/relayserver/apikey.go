package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"text/tabwriter"
	"time"

	"github.com/botehq/platform/runtime/operatorauth"
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

// runAPIKey manages the API keys file directly, for bootstrapping the first
// admin key and for recovery; once an admin key exists, `opsbot keys` does
// the same through the API. create prints a new key once (only its salted
// hash is stored), list shows ids and grants, rotate replaces a key's
// secret, revoke (alias disable) keeps a key listed but refuses it. A
// running server picks up changes within seconds.
func runAPIKey(args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return errors.New("apikey: want a subcommand: create, list, rotate or revoke")
	}
	sub := args[0]
	fset := flag.NewFlagSet("relayserver apikey "+sub, flag.ContinueOnError)
	fset.SetOutput(stderr)
	file := fset.String("keys-file", "", "API keys file (created by the first create)")
	id := fset.String("id", "", "key id: 1-63 lowercase letters, digits, dashes")
	desc := fset.String("description", "", "who or what the key is for")
	admin := fset.Bool("admin", false, "create: platform administrator (every tenant, key management)")
	tenants := tenantRoles{}
	fset.Var(tenants, "role", "create: tenant=role (reader, operator or approver); repeat for more tenants")
	if err := fset.Parse(args[1:]); err != nil {
		return err
	}
	if *file == "" {
		return errors.New("apikey: --keys-file is required")
	}
	load := func(allowMissing bool) (*operatorauth.KeysFile, error) {
		f, err := operatorauth.LoadKeysFile(*file)
		if allowMissing && errors.Is(err, fs.ErrNotExist) {
			return &operatorauth.KeysFile{Version: operatorauth.KeysFileVersion}, nil
		}
		return f, err
	}
	now := time.Now()
	switch sub {
	case "create":
		g := operatorauth.Grants{Admin: *admin, Tenants: tenants}
		if g.Empty() {
			return errors.New("apikey create: --admin or --role tenant=role: a key without grants may do nothing")
		}
		if *admin && len(tenants) > 0 {
			return errors.New("apikey create: --admin and --role: an admin has every tenant already; give one")
		}
		f, err := load(true)
		if err != nil {
			return err
		}
		key, err := f.AddKey(*id, *desc, g, now)
		if err != nil {
			return fmt.Errorf("apikey create: --id: %w", err)
		}
		if err := f.Save(*file); err != nil {
			return err
		}
		fmt.Fprintf(stderr, "created API key %q (%s) in %s; it is shown once, store it now:\n", *id, g, *file)
		fmt.Fprintln(stdout, key)
		return nil
	case "list":
		f, err := load(false)
		if err != nil {
			return err
		}
		return printKeys(stdout, f.Keys)
	case "rotate":
		f, err := load(false)
		if err != nil {
			return err
		}
		key, err := f.RotateKey(*id, now)
		if err != nil {
			return fmt.Errorf("apikey rotate: --id: %w", err)
		}
		if err := f.Save(*file); err != nil {
			return err
		}
		fmt.Fprintf(stderr, "rotated API key %q in %s; the old secret no longer works; the new key is shown once:\n", *id, *file)
		fmt.Fprintln(stdout, key)
		return nil
	case "revoke", "disable":
		f, err := load(false)
		if err != nil {
			return err
		}
		if err := f.RevokeKey(*id, now); err != nil {
			return fmt.Errorf("apikey %s: --id: %w in %s", sub, err, *file)
		}
		return f.Save(*file)
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
