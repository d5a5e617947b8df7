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
	"syscall"
	"time"

	"github.com/botehq/platform/integration/procs"
)

// listening matches Azurite's "Azurite Queue service is successfully
// listening at http://127.0.0.1:45105".
var listening = regexp.MustCompile(`Azurite (Blob|Queue|Table) service is successfully listening at http://[^:]+:(\d+)`)

func startNPM(ctx context.Context) (*Emulator, error) {
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
	args := append([]string{"--blobHost", "127.0.0.1", "--queueHost", "127.0.0.1", "--tableHost", "127.0.0.1",
		"--blobPort", "0", "--queuePort", "0", "--tablePort", "0"}, commonArgs...)
	// Azurite writes nothing to disk in memory mode, but run it in a scratch
	// directory anyway so a stray file never lands in the repository.
	dir, err := os.MkdirTemp("", "azurite-")
	if err != nil {
		return nil, fmt.Errorf("cannot create Azurite working directory: %w", err)
	}
	p, err := procs.Launch(procs.Spec{Name: "azurite", Path: bin, Args: args, Dir: dir, StopGrace: 5 * time.Second})
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	stop := func() error {
		err := p.Stop()
		os.RemoveAll(dir)
		var exit *exec.ExitError
		if errors.As(err, &exit) && exit.Sys().(syscall.WaitStatus).Signaled() {
			return nil // ended by our SIGTERM
		}
		return err
	}
	ports := map[string]string{}
	for len(ports) < 3 {
		line, err := p.WaitOutput("successfully listening", time.Until(deadline(ctx)))
		if err != nil {
			_ = stop()
			return nil, fmt.Errorf("Azurite did not start: %w\n%s", err, p.Output())
		}
		for _, m := range listening.FindAllStringSubmatch(p.Output(), -1) {
			ports[m[1]] = m[2]
		}
		if len(ports) < 3 {
			select { // wait for more output
			case <-ctx.Done():
				_ = stop()
				return nil, fmt.Errorf("Azurite did not start: %w (last line %q)", ctx.Err(), line)
			case <-time.After(20 * time.Millisecond):
			}
		}
	}
	e := newEmulator("127.0.0.1", ports["Blob"], ports["Queue"], ports["Table"])
	e.Via, e.stop, e.logs = "npm", stop, p.Output
	for _, u := range []string{e.BlobURL, e.QueueURL, e.TableURL} {
		if err := answers(ctx, u); err != nil {
			_ = stop()
			return nil, err
		}
	}
	return e, nil
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
