package tfarchive

import (
	"fmt"
	"io"
	"os"
)

// PackBundle packs dir as a run's configuration bundle, the way opsbot
// plan and opsbot mcp upload one: BundleLimits, .terraformignore applied,
// extra files added. The bundle is a temporary file, rewound, which the
// caller closes and removes; the limits are checked before anything is
// uploaded.
func PackBundle(dir string, extra []File) (*os.File, Stats, error) {
	f, err := os.CreateTemp("", "opsbot-bundle-*.tar.gz")
	if err != nil {
		return nil, Stats{}, fmt.Errorf("cannot create a temporary file for the bundle: %w", err)
	}
	stats, err := Pack(dir, f, PackOptions{Limits: BundleLimits, TerraformIgnore: true, Extra: extra})
	if err == nil {
		if _, err = f.Seek(0, io.SeekStart); err != nil {
			err = fmt.Errorf("cannot read the packed bundle: %w", err)
		}
	}
	if err != nil {
		f.Close()
		os.Remove(f.Name())
		return nil, Stats{}, err
	}
	return f, stats, nil
}
