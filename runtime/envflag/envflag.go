// Package envflag lets every flag of a command also come from the
// environment, the way container platforms configure apps: flag
// "storage-connection-string" of prefix "BOTE_WORKER" reads
// BOTE_WORKER_STORAGE_CONNECTION_STRING. A flag given on the command line
// wins over the environment, and an empty variable is no value (platforms
// set variables empty as readily as they leave them out).
//
// The environment is read through a getenv function, the one every
// binary's run takes (package cmd/internal/program), so tests pass their own.
package envflag

import (
	"flag"
	"fmt"
	"strings"
)

// Name returns the environment variable of flag name under prefix.
func Name(prefix, name string) string {
	return prefix + "_" + strings.ToUpper(strings.ReplaceAll(name, "-", "_"))
}

// Apply sets every flag of fs not given on the command line from its
// environment variable, read with getenv, if that is not empty. Call it
// after fs.Parse.
func Apply(fs *flag.FlagSet, prefix string, getenv func(string) string) error {
	given := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { given[f.Name] = true })
	var err error
	fs.VisitAll(func(f *flag.Flag) {
		if given[f.Name] || err != nil {
			return
		}
		if v := getenv(Name(prefix, f.Name)); v != "" {
			if serr := fs.Set(f.Name, v); serr != nil {
				err = fmt.Errorf("%s: %w", Name(prefix, f.Name), serr)
			}
		}
	})
	return err
}

// Usage appends the environment variable to every flag's usage text.
func Usage(fs *flag.FlagSet, prefix string) {
	fs.VisitAll(func(f *flag.Flag) { f.Usage += " [$" + Name(prefix, f.Name) + "]" })
}

// Parse adds the environment variable to every flag's usage, parses args
// and then applies the environment to flags not given.
func Parse(fs *flag.FlagSet, args []string, prefix string, getenv func(string) string) error {
	Usage(fs, prefix)
	if err := fs.Parse(args); err != nil {
		return err
	}
	return Apply(fs, prefix, getenv)
}
