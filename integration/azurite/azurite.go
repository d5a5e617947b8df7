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
	"errors"
	"fmt"
	"os"
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

	stop    func() error
	logs    func() string
	restart func(context.Context) error
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

	npmOnly := opts.Persist || opts.Fleet
	if npmOnly && opts.Mode != "docker" {
		return startNPM(ctx, opts)
	}
	switch opts.Mode {
	case "docker":
		if npmOnly {
			return nil, errors.New("azurite: Persist (and Restart) and Fleet need the npm Azurite (BOTE_AZURITE=npm)")
		}
		return startDocker(ctx)
	case "npm":
		return startNPM(ctx, opts)
	case "":
		if err := dockerAvailable(ctx); err == nil {
			return startDocker(ctx)
		}
		return startNPM(ctx, opts)
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

func newEmulator(host string, blob, queue, table string) *Emulator {
	url := func(port string) string { return "http://" + host + ":" + port + "/" + AccountName }
	e := &Emulator{
		BlobURL: url(blob), QueueURL: url(queue), TableURL: url(table),
		AccountName: AccountName, AccountKey: AccountKey,
	}
	e.ConnectionString = strings.Join([]string{
		"DefaultEndpointsProtocol=http",
		"AccountName=" + AccountName,
		"AccountKey=" + AccountKey,
		"BlobEndpoint=" + e.BlobURL,
		"QueueEndpoint=" + e.QueueURL,
		"TableEndpoint=" + e.TableURL,
	}, ";") + ";"
	return e
}

// commonArgs are the Azurite flags both paths use: in memory, tolerant of
// the newer API versions the Go SDK sends, path-style URLs only, and no
// telemetry (Azurite 3.34+ sends it to Microsoft by default).
var commonArgs = []string{"--inMemoryPersistence", "--skipApiVersionCheck", "--loose", "--disableProductStyleUrl", "--disableTelemetry"}
