package azurite

import (
	"context"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/testcontainers/testcontainers-go"
	"github.com/testcontainers/testcontainers-go/wait"
)

// dockerAvailable reports whether a Docker engine answers, quickly.
func dockerAvailable(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	p, err := testcontainers.NewDockerProvider()
	if err != nil {
		return err
	}
	return p.Health(ctx) // Health closes the provider
}

// env, if not empty, is added to Azurite's environment (accountsEnv).
func startDocker(ctx context.Context, env string) (*Emulator, error) {
	var envs map[string]string
	if name, value, ok := strings.Cut(env, "="); ok {
		envs = map[string]string{name: value}
	}
	args := append([]string{"azurite", "--blobHost", "0.0.0.0", "--queueHost", "0.0.0.0", "--tableHost", "0.0.0.0"}, commonArgs...)
	c, err := testcontainers.GenericContainer(ctx, testcontainers.GenericContainerRequest{
		ContainerRequest: testcontainers.ContainerRequest{
			Image:        Image,
			Cmd:          args,
			Env:          envs,
			ExposedPorts: []string{"10000/tcp", "10001/tcp", "10002/tcp"},
			WaitingFor: wait.ForAll(
				wait.ForListeningPort("10000/tcp"),
				wait.ForListeningPort("10001/tcp"),
				wait.ForListeningPort("10002/tcp"),
			),
		},
		Started: true,
	})
	if err != nil {
		if c != nil {
			_ = testcontainers.TerminateContainer(c)
		}
		return nil, fmt.Errorf("cannot start Azurite container %s: %w", Image, err)
	}
	host, err := c.Host(ctx)
	if err != nil {
		_ = testcontainers.TerminateContainer(c)
		return nil, fmt.Errorf("cannot get Azurite container host: %w", err)
	}
	ports := make([]string, 3)
	for i, p := range []string{"10000/tcp", "10001/tcp", "10002/tcp"} {
		mapped, err := c.MappedPort(ctx, p)
		if err != nil {
			_ = testcontainers.TerminateContainer(c)
			return nil, fmt.Errorf("cannot get Azurite port %s: %w", p, err)
		}
		ports[i] = mapped.Port()
	}
	e := newEmulator(host, ports[0], ports[1], ports[2])
	e.Via = "docker"
	e.stop = func() error { return testcontainers.TerminateContainer(c) }
	e.logs = func() string {
		r, err := c.Logs(context.Background())
		if err != nil {
			return "cannot read container logs: " + err.Error()
		}
		defer r.Close()
		var b strings.Builder
		_, _ = io.Copy(&b, r)
		return b.String()
	}
	return e, nil
}
