package azurite

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/botehq/platform/integration/procs"
)

// listening matches Azurite's "Azurite Queue service is successfully
// listening at http://127.0.0.1:45105".
// patched is what fleet.js prints once it is in place.
const patched = "bote fleet.js: in place"

var listening = regexp.MustCompile(`Azurite (Blob|Queue|Table) service is successfully listening at http://[^:]+:(\d+)`)

// env, if not empty, is added to Azurite's environment (accountsEnv).
func startNPM(ctx context.Context, opts Options, env string) (*Emulator, error) {
	root, err := procs.RepoRoot()
	if err != nil {
		return nil, err
	}
	bin := filepath.Join(root, "node_modules", ".bin", "azurite")
	if _, err := os.Stat(bin); err != nil {
		if err := npmCI(ctx, root); err != nil {
			return nil, err
		}
	}
	// Azurite writes nothing to disk in memory mode, but run it in a scratch
	// directory anyway so a stray file never lands in the repository; with
	// persist its data lives there.
	dir, err := os.MkdirTemp("", "azurite-")
	if err != nil {
		return nil, fmt.Errorf("cannot create Azurite working directory: %w", err)
	}
	n := &npmAzurite{bin: bin, dir: dir, persist: opts.Persist, ports: map[string]string{"Blob": "0", "Queue": "0", "Table": "0"}}
	if opts.Fleet {
		n.env = []string{"NODE_OPTIONS=--require " + filepath.Join(root, "integration", "azurite", "fleet.js")}
		n.fleet = true
	}
	if env != "" {
		n.env = append(n.env, env)
	}
	if err := n.launch(ctx); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	e := newEmulator("127.0.0.1", n.ports["Blob"], n.ports["Queue"], n.ports["Table"])
	e.Via, e.logs = "npm", n.output
	e.stop = func() error {
		err := n.stopProc()
		os.RemoveAll(dir)
		return err
	}
	if opts.Persist {
		e.restart = n.restart
	}
	for _, u := range []string{e.BlobURL, e.QueueURL, e.TableURL} {
		if err := answers(ctx, u); err != nil {
			_ = e.stop()
			return nil, err
		}
	}
	return e, nil
}

// npmAzurite is the Azurite process of an npm emulator, restartable on its
// ports and data.
type npmAzurite struct {
	bin, dir string
	persist  bool
	fleet    bool              // Options.Fleet
	env      []string          // NODE_OPTIONS preloading fleet.js (Options.Fleet), AZURITE_ACCOUNTS
	ports    map[string]string // service → port; "0" until the first start

	mu   sync.Mutex
	p    *procs.Process
	logs []string // output of earlier processes
}

func (n *npmAzurite) launch(ctx context.Context) error {
	args := []string{"--blobHost", "127.0.0.1", "--queueHost", "127.0.0.1", "--tableHost", "127.0.0.1",
		"--blobPort", n.ports["Blob"], "--queuePort", n.ports["Queue"], "--tablePort", n.ports["Table"]}
	if n.persist {
		args = append(args, "--location", filepath.Join(n.dir, "data"))
		args = append(args, slices.DeleteFunc(slices.Clone(commonArgs), func(a string) bool { return a == "--inMemoryPersistence" })...)
	} else {
		args = append(args, commonArgs...)
	}
	p, err := procs.Launch(procs.Spec{Name: "azurite", Path: n.bin, Args: args, Env: n.env, Dir: n.dir, StopGrace: 5 * time.Second})
	if err != nil {
		return err
	}
	if n.fleet {
		// The patch says it is in place before Azurite starts; a LokiJS
		// that no longer has what it patches fails the start.
		if _, err := p.WaitOutput(patched, time.Until(deadline(ctx))); err != nil {
			_ = p.Stop()
			return fmt.Errorf("Azurite did not load fleet.js: %w\n%s", err, p.Output())
		}
	}
	n.mu.Lock()
	n.p = p
	n.mu.Unlock()
	found := map[string]string{}
	for len(found) < 3 {
		line, err := p.WaitOutput("successfully listening", time.Until(deadline(ctx)))
		if err != nil {
			_ = n.stopProc()
			return fmt.Errorf("Azurite did not start: %w\n%s", err, p.Output())
		}
		for _, m := range listening.FindAllStringSubmatch(p.Output(), -1) {
			found[m[1]] = m[2]
		}
		if len(found) < 3 {
			select { // wait for more output
			case <-ctx.Done():
				_ = n.stopProc()
				return fmt.Errorf("Azurite did not start: %w (last line %q)", ctx.Err(), line)
			case <-time.After(20 * time.Millisecond):
			}
		}
	}
	n.ports = found
	return nil
}

func (n *npmAzurite) stopProc() error {
	n.mu.Lock()
	p := n.p
	n.mu.Unlock()
	err := p.Stop()
	var exit *exec.ExitError
	if errors.As(err, &exit) && exit.Sys().(syscall.WaitStatus).Signaled() {
		return nil // ended by our signal
	}
	return err
}

func (n *npmAzurite) output() string {
	n.mu.Lock()
	defer n.mu.Unlock()
	return strings.Join(append(slices.Clone(n.logs), n.p.Output()), "--- restarted ---\n")
}

// restart stops Azurite and starts it again on the same ports and data.
// SIGTERM, not SIGKILL: Azurite saves its metadata database every few
// seconds and on exit, so a killed one forgets writes it acknowledged,
// which Azure Storage never does.
func (n *npmAzurite) restart(ctx context.Context) error {
	n.mu.Lock()
	old := n.p
	n.mu.Unlock()
	_ = old.Stop()
	n.mu.Lock()
	n.logs = append(n.logs, old.Output())
	n.mu.Unlock()
	var err error
	for attempt := 0; attempt < 50; attempt++ { // the ports may linger briefly
		if err = n.launch(ctx); err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(100 * time.Millisecond):
		}
	}
	return err
}

func deadline(ctx context.Context) time.Time {
	if d, ok := ctx.Deadline(); ok {
		return d
	}
	return time.Now().Add(time.Minute)
}

// answers waits until a service endpoint gives any HTTP response.
func answers(ctx context.Context, url string) error {
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			resp.Body.Close()
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("Azurite at %s does not answer: %w", url, err)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// npmCI installs the pinned Azurite from package-lock.json. Parallel test
// packages may all find it missing; a lock file makes one of them install
// while the others wait.
func npmCI(ctx context.Context, root string) error {
	npm, err := exec.LookPath("npm")
	if err != nil {
		return fmt.Errorf("no Docker engine answered and npm is not installed, so Azurite cannot run: " +
			"install Node.js " + NodeMinimum + " or later with npm (https://nodejs.org/) and run `npm ci` in the repository root " +
			"(or `make deps`), or start a Docker engine")
	}
	lock, err := os.OpenFile(filepath.Join(os.TempDir(), "bote-npm-ci.lock"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return fmt.Errorf("cannot open npm install lock: %w", err)
	}
	defer lock.Close()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		return fmt.Errorf("cannot take npm install lock: %w", err)
	}
	defer syscall.Flock(int(lock.Fd()), syscall.LOCK_UN)
	if _, err := os.Stat(filepath.Join(root, "node_modules", ".bin", "azurite")); err == nil {
		return nil // another package installed it while we waited
	}
	cmd := exec.CommandContext(ctx, npm, "ci", "--no-audit", "--no-fund")
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("Azurite is not installed and `npm ci` in %s failed: %w\n%s", root, err, out)
	}
	return nil
}
