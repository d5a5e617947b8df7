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

// runAPIKey manages the API keys file: create prints a new key once (only
// its salted hash is stored), list shows ids, disable keeps a key listed
// but refuses it. A running server picks up changes within seconds.
func runAPIKey(args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return errors.New("apikey: want a subcommand: create, list or disable")
	}
	sub := args[0]
	fset := flag.NewFlagSet("relayserver apikey "+sub, flag.ContinueOnError)
	fset.SetOutput(stderr)
	file := fset.String("keys-file", "", "API keys file (created by the first create)")
	id := fset.String("id", "", "key id: 1-63 lowercase letters, digits, dashes")
	desc := fset.String("description", "", "who or what the key is for")
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
	switch sub {
	case "create":
		f, err := load(true)
		if err != nil {
			return err
		}
		key, err := f.AddKey(*id, *desc, time.Now())
		if err != nil {
			return fmt.Errorf("apikey create: --id: %w", err)
		}
		if err := f.Save(*file); err != nil {
			return err
		}
		fmt.Fprintf(stderr, "created API key %q in %s; it is shown once, store it now:\n", *id, *file)
		fmt.Fprintln(stdout, key)
		return nil
	case "list":
		f, err := load(false)
		if err != nil {
			return err
		}
		tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "ID\tCREATED\tSTATE\tDESCRIPTION")
		for _, k := range f.Keys {
			state := "active"
			if k.Disabled {
				state = "disabled"
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", k.ID, k.Created.Format(time.RFC3339), state, k.Description)
		}
		return tw.Flush()
	case "disable":
		f, err := load(false)
		if err != nil {
			return err
		}
		for i := range f.Keys {
			if f.Keys[i].ID == *id {
				f.Keys[i].Disabled = true
				return f.Save(*file)
			}
		}
		return fmt.Errorf("apikey disable: --id: no key %q in %s", *id, *file)
	}
	return fmt.Errorf("apikey: unknown subcommand %q (want create, list or disable)", sub)
}
