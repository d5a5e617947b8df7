package main

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// Cobra prints a command group's help and exits 0 when it is given a
// subcommand it does not know (`opsbot runs lst`), and names no close flag
// for an unknown one. strict fixes both for the whole tree, so every
// group, including ones added later, refuses what it does not know with
// exit 2 and a suggestion.

// strict walks the tree under root: a group (a command with subcommands
// and nothing to run itself) refuses unknown subcommands, and every
// command's unknown flags name the closest ones.
func strict(root *cobra.Command) {
	root.SetFlagErrorFunc(flagError)
	root.SetHelpCommand(&cobra.Command{
		Use:   "help [command]",
		Short: "Help about any command",
		RunE: func(c *cobra.Command, args []string) error {
			topic, rest, err := c.Root().Find(args)
			if err != nil {
				return commandLineError{err}
			}
			if len(rest) > 0 && topic.HasSubCommands() {
				return unknownSubcommand(topic, rest)
			}
			return topic.Help()
		},
	})
	var walk func(*cobra.Command)
	walk = func(c *cobra.Command) {
		if c.HasSubCommands() && c.Run == nil && c.RunE == nil {
			c.Args = unknownSubcommand
			c.RunE = func(c *cobra.Command, _ []string) error { return c.Help() }
		}
		for _, sub := range c.Commands() {
			walk(sub)
		}
	}
	walk(root)
}

// groupRuns annotates a group that does something itself (opsbot drift
// lists), so it needs the configuration like a leaf.
const groupRuns = "group-runs"

// needsConfig reports whether c works with the ops server and so needs
// the configuration: not a group (unless annotated groupRuns), help or
// shell completion.
func needsConfig(c *cobra.Command) bool {
	if c.Annotations[groupRuns] != "" {
		return true
	}
	for p := c; p != nil; p = p.Parent() {
		if p.Name() == "completion" && p.Parent() == c.Root() {
			return false
		}
	}
	return !c.HasSubCommands() && c.Name() != "help"
}

// unknownSubcommand refuses any argument of a group: had it named a
// subcommand, cobra would have run that.
func unknownSubcommand(c *cobra.Command, args []string) error {
	if len(args) == 0 {
		return nil
	}
	var names []string
	for _, sub := range c.Commands() {
		if sub.IsAvailableCommand() {
			names = append(names, sub.Name())
		}
	}
	msg := fmt.Sprintf("unknown command %q for %q", args[0], c.CommandPath())
	if s := closest(args[0], names); len(s) > 0 {
		msg += fmt.Sprintf("; did you mean %q?", strings.Join(s, `" or "`))
	}
	msg += fmt.Sprintf("\n  its commands: %s (run '%s --help' for usage)", strings.Join(names, ", "), c.CommandPath())
	return commandLineError{errors.New(msg)}
}

// flagError makes a flag error a usage error (exit 2) and, for an unknown
// flag, names the command's closest flags.
func flagError(c *cobra.Command, err error) error {
	var unknown *pflag.NotExistError
	if !errors.As(err, &unknown) {
		return commandLineError{fmt.Errorf("%w (run '%s --help' for usage)", err, c.CommandPath())}
	}
	name := unknown.GetSpecifiedName()
	if unknown.GetSpecifiedShortnames() != "" {
		name = "" // a one-letter shorthand has no useful neighbours
	}
	var names []string
	c.Flags().VisitAll(func(f *pflag.Flag) {
		if !f.Hidden {
			names = append(names, f.Name)
		}
	})
	msg := fmt.Sprintf("%v for %q", err, c.CommandPath())
	if s := closest(name, names); name != "" && len(s) > 0 {
		msg += fmt.Sprintf("; did you mean --%s?", strings.Join(s, " or --"))
	}
	return commandLineError{fmt.Errorf("%s (run '%s --help' for its flags)", msg, c.CommandPath())}
}

// closest returns the names within edit distance 2 of s (or that start
// with it, for names of 3 letters or more), nearest first.
func closest(s string, names []string) []string {
	type hit struct {
		name string
		d    int
	}
	var hits []hit
	for _, n := range names {
		d := distance(s, n)
		if d <= 2 || (len(s) >= 3 && strings.HasPrefix(n, s)) {
			hits = append(hits, hit{n, d})
		}
	}
	slices.SortStableFunc(hits, func(a, b hit) int { return a.d - b.d })
	var out []string
	for _, h := range hits {
		out = append(out, h.name)
	}
	return out
}

// distance is the Levenshtein distance between a and b.
func distance(a, b string) int {
	prev := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur := make([]int, len(b)+1)
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev = cur
	}
	return prev[len(b)]
}
