package envflag

import (
	"flag"
	"fmt"
	"log/slog"
	"maps"
	"slices"
)

// Renamed are a command's names from before a rename, still read for a
// release so that existing configurations keep working: an old
// environment prefix for every flag and old flag names. The new name wins
// when both are given; the command line wins over the environment, old
// name or new.
type Renamed struct {
	// Prefix is the old environment prefix: flag "listen" of prefix
	// BOTE_GATEWAY with Prefix BOTE_WORKER is also read from
	// BOTE_WORKER_LISTEN.
	Prefix string
	// Flags maps an old flag name to its new one ("worker-url" →
	// "gateway-url"): --worker-url sets --gateway-url, and the old name's
	// environment variables are read too.
	Flags map[string]string
}

// Deprecation is an old name a command was given and the name that
// replaces it: "--worker-url" and "--gateway-url", or "BOTE_WORKER_LISTEN"
// and "BOTE_GATEWAY_LISTEN".
type Deprecation struct{ Old, New string }

// Parse is the package's Parse that also reads the old names of r. It
// returns the old names that were used, each once, for the caller to warn
// about (Warn) once it has a logger.
func (r Renamed) Parse(fs *flag.FlagSet, args []string, prefix string, getenv func(string) string) ([]Deprecation, error) {
	Usage(fs, prefix)
	aliases := map[string]*alias{}
	for _, old := range slices.Sorted(maps.Keys(r.Flags)) {
		f := fs.Lookup(r.Flags[old])
		if f == nil {
			panic(fmt.Sprintf("envflag: renamed flag %q has no new flag %q", old, r.Flags[old]))
		}
		a := &alias{target: f.Value}
		aliases[old] = a
		fs.Var(a, old, "deprecated: use --"+f.Name)
	}
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	given := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { given[f.Name] = true })
	var used []Deprecation
	for _, old := range slices.Sorted(maps.Keys(aliases)) {
		if !given[old] {
			continue
		}
		used = append(used, Deprecation{"--" + old, "--" + r.Flags[old]})
		if given[r.Flags[old]] {
			continue // the new name wins
		}
		for _, v := range aliases[old].values {
			if err := fs.Set(r.Flags[old], v); err != nil {
				return nil, fmt.Errorf("--%s: %w", old, err)
			}
		}
	}
	oldNames := map[string][]string{} // new flag → its old names
	for old, name := range r.Flags {
		oldNames[name] = append(oldNames[name], old)
	}
	var err error
	fs.VisitAll(func(f *flag.Flag) {
		if err != nil || aliases[f.Name] != nil || given[f.Name] || givenOld(given, oldNames[f.Name]) {
			return
		}
		name, v := Name(prefix, f.Name), ""
		if v = getenv(name); v == "" {
			for _, o := range r.envNames(prefix, f.Name, oldNames[f.Name]) {
				if v = getenv(o); v != "" {
					used = append(used, Deprecation{o, name})
					name = o
					break
				}
			}
		}
		if v != "" {
			if serr := fs.Set(f.Name, v); serr != nil {
				err = fmt.Errorf("%s: %w", name, serr)
			}
		}
	})
	return used, err
}

// envNames are the old environment variables of flag name, most specific
// first.
func (r Renamed) envNames(prefix, name string, olds []string) []string {
	var names []string
	if r.Prefix != "" {
		names = append(names, Name(r.Prefix, name))
	}
	for _, o := range slices.Sorted(slices.Values(olds)) {
		names = append(names, Name(prefix, o))
		if r.Prefix != "" {
			names = append(names, Name(r.Prefix, o))
		}
	}
	return names
}

func givenOld(given map[string]bool, olds []string) bool {
	return slices.ContainsFunc(olds, func(o string) bool { return given[o] })
}

// Warn logs one warning for each deprecated name used.
func Warn(log *slog.Logger, used []Deprecation) {
	for _, d := range used {
		log.Warn("deprecated name: use the new one; the old one stops working in the next release", "old", d.Old, "new", d.New)
	}
}

// alias is an old flag name: it records its values, which Parse hands to
// the new flag unless that was given too.
type alias struct {
	target flag.Value
	values []string
}

func (a *alias) String() string { return "" }

func (a *alias) Set(v string) error {
	a.values = append(a.values, v)
	return nil
}

// IsBoolFlag lets an old boolean flag go without a value, as the new one
// does.
func (a *alias) IsBoolFlag() bool {
	b, ok := a.target.(interface{ IsBoolFlag() bool })
	return ok && b.IsBoolFlag()
}
