// Package azurite gives tests (and `make demo`) a running Azure Storage
// emulator — blobs, queues and tables — with one call.
//
// When a Docker engine answers, it runs the Azurite image through a
// testcontainers-go generic container. Otherwise it starts the Azurite that
// package-lock.json pins (node_modules/.bin/azurite, installed with `npm ci`,
// which it runs itself if the package is missing). Either way the emulator is
// fresh, keeps everything in memory, listens on free ports (so parallel test
// packages never collide) and is stopped at test cleanup. Its log is shown
// when a test fails.
//
// BOTE_AZURITE=npm or BOTE_AZURITE=docker forces one path; by default Docker
// is used when it answers and npm otherwise.
package azurite

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"maps"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
)

// Well-known development account of every Azurite instance.
const (
	AccountName = "devstoreaccount1"
	AccountKey  = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
)

// Image is the container image used when a Docker engine answers. Its tag
// is the azurite version in package.json (TestPinsAgree checks).
const Image = "mcr.microsoft.com/azure-storage/azurite:3.35.0"

// NodeMinimum is the oldest Node.js that every package package-lock.json
// pins declares it runs on; README.md states it (TestPinsAgree checks
// both). Azurite 3.35.0 is the newest that supports Node 20 (3.36 needs
// 21, 3.37 needs 22), which our build machines have.
const NodeMinimum = "20.6"

// Emulator is a running Azurite.
type Emulator struct {
	// ConnectionString is an Azure Storage connection string with explicit
	// blob, queue and table endpoints.
	ConnectionString string
	// BlobURL, QueueURL and TableURL are the service URLs, including the
	// account path (http://127.0.0.1:port/devstoreaccount1).
	BlobURL, QueueURL, TableURL string
	AccountName, AccountKey     string
	// Via says how it runs: "docker" or "npm".
	Via string

	origins  [3]string         // blob, queue and table service origins, without the account
	accounts map[string]string // Options.Accounts: name → key
	stop     func() error
	logs     func() string
	restart  func(context.Context) error
}

// Options tune Start.
type Options struct {
	// Mode is "docker", "npm" or "" (auto; see the package doc). It defaults
	// to $BOTE_AZURITE.
	Mode string
	// StartTimeout bounds the whole start, npm ci included (default 3m).
	StartTimeout time.Duration
	// Persist keeps the data on disk (a scratch directory, removed by
	// Stop) instead of in memory, so Restart brings it back. npm only.
	Persist bool
	// Fleet preloads fleet.js into Azurite, for benchmarks with thousands
	// of clients (npm only). It changes two things Azure Storage does not
	// share with Azurite at that scale. Without it every dequeue, delete
	// and update of a message rebuilds (sorts) all the indices of the
	// account's message collection, so each request costs O(M log M) in
	// all the messages of the account and a sweep of Azurite's extent
	// clean-up one such rebuild per message body it frees: with thousands
	// of messages in flight Azurite serves tens of requests a second and
	// freezes for minutes. With it LokiJS keeps its indices for batches of
	// up to 16 documents one document at a time, as it already does
	// outside batches (TestLokiPatch). And Azurite listens with a backlog
	// of 4096 connections instead of Node's 511, beyond which the kernel
	// drops the connections thousands of clients open at once and they
	// retry after 1, 3, 7, 15 s.
	Fleet bool
	// Accounts are storage accounts the emulator serves besides the
	// development account (AccountName), each with a key of its own: an
	// account's queues, tables and blobs are its own, so tests can share
	// one emulator with an account each (Emulator.Account) instead of
	// starting one apiece. Names are 3 to 24 lowercase letters and
	// digits.
	Accounts []string
}

// Start runs an emulator. The caller must call Stop.
func Start(ctx context.Context, opts Options) (*Emulator, error) {
	if opts.Mode == "" {
		opts.Mode = os.Getenv("BOTE_AZURITE")
	}
	if opts.StartTimeout == 0 {
		opts.StartTimeout = 3 * time.Minute
	}
	ctx, cancel := context.WithTimeout(ctx, opts.StartTimeout)
	defer cancel()
	accounts, err := newAccounts(opts.Accounts)
	if err != nil {
		return nil, err
	}
	e, err := start(ctx, opts, accountsEnv(accounts))
	if err != nil {
		return nil, err
	}
	e.accounts = accounts
	return e, nil
}

// start runs the emulator opts asks for, with env (accountsEnv) added to
// its environment.
func start(ctx context.Context, opts Options, env string) (*Emulator, error) {
	npmOnly := opts.Persist || opts.Fleet
	if npmOnly && opts.Mode != "docker" {
		return startNPM(ctx, opts, env)
	}
	switch opts.Mode {
	case "docker":
		if npmOnly {
			return nil, errors.New("azurite: Persist (and Restart) and Fleet need the npm Azurite (BOTE_AZURITE=npm)")
		}
		return startDocker(ctx, env)
	case "npm":
		return startNPM(ctx, opts, env)
	case "":
		if err := dockerAvailable(ctx); err == nil {
			return startDocker(ctx, env)
		}
		return startNPM(ctx, opts, env)
	default:
		return nil, fmt.Errorf("BOTE_AZURITE=%q: want docker, npm or empty (auto)", opts.Mode)
	}
}

// New starts an emulator for a test and stops it at cleanup. The test fails
// (never skips) if no emulator can be started, with instructions.
func New(t testing.TB) *Emulator {
	t.Helper()
	return NewWith(t, Options{})
}

// NewWith is New with options.
func NewWith(t testing.TB, opts Options) *Emulator {
	t.Helper()
	e, err := Start(context.Background(), opts)
	if err != nil {
		t.Fatalf("cannot start Azurite: %v", err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("--- Azurite (%s) log ---\n%s", e.Via, e.Logs())
		}
		if err := e.Stop(); err != nil {
			t.Logf("stopping Azurite: %v", err)
		}
	})
	return e
}

// Stop ends the emulator and discards its data.
func (e *Emulator) Stop() error { return e.stop() }

// Restart stops the emulator and starts it again on the same ports and,
// with Options.Persist, the same data: every acknowledged write is there
// again, requests in flight fail. Clients see connections refused
// meanwhile. (It stops Azurite with SIGTERM: a killed Azurite forgets the
// writes of its last seconds, which Azure Storage never does.)
func (e *Emulator) Restart(ctx context.Context) error {
	if e.restart == nil {
		return errors.New("azurite: only an npm Azurite started with Persist restarts")
	}
	return e.restart(ctx)
}

// Logs returns what the emulator has logged.
func (e *Emulator) Logs() string { return e.logs() }

// Account is the emulator as account name (one of Options.Accounts) sees
// it: the same process, with that account's key, URLs and connection
// string. Its Stop does nothing and its Restart fails (the emulator it
// came from runs the process); its Logs are the whole emulator's.
func (e *Emulator) Account(name string) (*Emulator, error) {
	key, ok := e.accounts[name]
	if !ok {
		return nil, fmt.Errorf("azurite: the emulator has no account %q (Options.Accounts)", name)
	}
	a := *e
	a.as(name, key)
	a.accounts = nil
	a.stop = func() error { return nil }
	a.restart = func(context.Context) error {
		return errors.New("azurite: restart the emulator, not an account's view of it")
	}
	return &a, nil
}

func newEmulator(host string, blob, queue, table string) *Emulator {
	origin := func(port string) string { return "http://" + host + ":" + port }
	e := &Emulator{origins: [3]string{origin(blob), origin(queue), origin(table)}}
	e.as(AccountName, AccountKey)
	return e
}

// as points e's URLs and connection string at account name.
func (e *Emulator) as(name, key string) {
	e.AccountName, e.AccountKey = name, key
	e.BlobURL, e.QueueURL, e.TableURL = e.origins[0]+"/"+name, e.origins[1]+"/"+name, e.origins[2]+"/"+name
	e.ConnectionString = strings.Join([]string{
		"DefaultEndpointsProtocol=http",
		"AccountName=" + name,
		"AccountKey=" + key,
		"BlobEndpoint=" + e.BlobURL,
		"QueueEndpoint=" + e.QueueURL,
		"TableEndpoint=" + e.TableURL,
	}, ";") + ";"
}

var accountName = regexp.MustCompile(`^[a-z0-9]{3,24}$`)

// newAccounts checks Options.Accounts and gives each a random key.
func newAccounts(names []string) (map[string]string, error) {
	if len(names) == 0 {
		return nil, nil
	}
	keys := map[string]string{}
	for i, name := range names {
		switch {
		case !accountName.MatchString(name):
			return nil, fmt.Errorf("azurite: Accounts[%d] %q: want 3 to 24 lowercase letters and digits", i, name)
		case name == AccountName || keys[name] != "":
			return nil, fmt.Errorf("azurite: Accounts[%d] %q is listed twice", i, name)
		}
		key := make([]byte, 64)
		_, _ = rand.Read(key) // never fails (crypto/rand)
		keys[name] = base64.StdEncoding.EncodeToString(key)
	}
	return keys, nil
}

// accountsEnv is Azurite's AZURITE_ACCOUNTS for the development account
// and accounts ("" when there are none: Azurite serves the development
// account alone by default).
func accountsEnv(accounts map[string]string) string {
	if len(accounts) == 0 {
		return ""
	}
	list := []string{AccountName + ":" + AccountKey}
	for _, name := range slices.Sorted(maps.Keys(accounts)) {
		list = append(list, name+":"+accounts[name])
	}
	return "AZURITE_ACCOUNTS=" + strings.Join(list, ";")
}

// commonArgs are the Azurite flags both paths use: in memory, tolerant of
// the newer API versions the Go SDK sends, path-style URLs only, and no
// telemetry (Azurite 3.34+ sends it to Microsoft by default).
var commonArgs = []string{"--inMemoryPersistence", "--skipApiVersionCheck", "--loose", "--disableProductStyleUrl", "--disableTelemetry"}
