// Package envflag lets every flag of a command also come from the
// environment, the way container platforms configure apps: flag
// "storage-connection-string" of prefix "BOTE_WORKER" reads
// BOTE_WORKER_STORAGE_CONNECTION_STRING. A flag given on the command line
// wins over the environment.
package envflag

import (
	"flag"
	"fmt"
	"os"
	"strings"
)

// Name returns the environment variable of flag name under prefix.
func Name(prefix, name string) string {
	return prefix + "_" + strings.ToUpper(strings.ReplaceAll(name, "-", "_"))
}

// Apply sets every flag of fs not given on the command line from its
// environment variable, if that is set. Call it after fs.Parse.
func Apply(fs *flag.FlagSet, prefix string) error { return ApplyFunc(fs, prefix, os.LookupEnv) }

// NonEmpty adapts a getenv-style function (tests inject one) to the lookup
// ApplyFunc takes, treating an empty value as unset.
func NonEmpty(getenv func(string) string) func(string) (string, bool) {
	return func(k string) (string, bool) {
		v := getenv(k)
		return v, v != ""
	}
}

// ApplyFunc is Apply with the environment read through lookup.
func ApplyFunc(fs *flag.FlagSet, prefix string, lookup func(string) (string, bool)) error {
	given := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { given[f.Name] = true })
	var err error
	fs.VisitAll(func(f *flag.Flag) {
		if given[f.Name] || err != nil {
			return
		}
		if v, ok := lookup(Name(prefix, f.Name)); ok {
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
func Parse(fs *flag.FlagSet, args []string, prefix string) error {
	Usage(fs, prefix)
	if err := fs.Parse(args); err != nil {
		return err
	}
	return Apply(fs, prefix)
}
