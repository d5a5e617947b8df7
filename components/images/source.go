package images

import (
	"bytes"
	"context"
	"fmt"
	"os/exec"
	"strconv"
	"strings"
	"time"
)

// GitSource describes the sources in dir (the runtime module) from git:
// the revision is the last commit that changed dir, so a commit elsewhere
// in the repository (docs, infrastructure) builds the same images and
// rolls nothing out; the version is that commit's tag, else a Go
// pseudo-version (v0.0.0-<UTC time>-<12 hex>); uncommitted changes in dir
// add "+dirty" (such images are for local use, never a release). Created
// is the commit time unless epoch is set (SOURCE_DATE_EPOCH).
func GitSource(ctx context.Context, dir string, epoch *time.Time) (Source, error) {
	out, err := git(ctx, dir, "log", "-1", "--format=%H %ct", "--", ".")
	if err != nil {
		return Source{}, err
	}
	rev, ts, ok := strings.Cut(strings.TrimSpace(out), " ")
	if !ok {
		return Source{}, fmt.Errorf("cannot find the last commit of %s (git log printed %q)", dir, out)
	}
	secs, err := strconv.ParseInt(ts, 10, 64)
	if err != nil {
		return Source{}, fmt.Errorf("cannot read the commit time %q: %w", ts, err)
	}
	created := time.Unix(secs, 0).UTC()
	src := Source{Revision: rev, Created: created}
	if tag, err := git(ctx, dir, "describe", "--tags", "--exact-match", rev); err == nil {
		src.Version = strings.TrimSpace(tag)
	} else {
		src.Version = fmt.Sprintf("v0.0.0-%s-%s", created.Format("20060102150405"), rev[:12])
	}
	status, err := git(ctx, dir, "status", "--porcelain", "--", ".")
	if err != nil {
		return Source{}, err
	}
	if strings.TrimSpace(status) != "" {
		src.Version += "+dirty"
	}
	if epoch != nil {
		src.Created = epoch.UTC()
	}
	return src, nil
}

func git(ctx context.Context, dir string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, "git", args...)
	cmd.Dir = dir
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("cannot run git %s in %s: %w: %s", strings.Join(args, " "), dir, err, strings.TrimSpace(stderr.String()))
	}
	return string(out), nil
}
