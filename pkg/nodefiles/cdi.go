// Package nodefiles writes and removes the files a prepared device leaves on
// the node for container runtimes and CNI plugins: CDI specs, validated with
// the CDI library the runtimes use, and Network Plumbing WG device-info
// files. Every write is atomic and durable.
package nodefiles

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"tags.cncf.io/container-device-interface/pkg/cdi"
	cdispec "tags.cncf.io/container-device-interface/specs-go"

	"github.com/sriov-dra/sriov-dra/pkg/atomicfile"
)

// WriteSpec validates a spec with the CDI library the runtimes use and
// writes it atomically: a hidden temp file (no .json suffix, so no runtime
// reads it half-written), fsync, rename, fsync of the directory. The spec's
// cdiVersion is the lowest its content needs.
func WriteSpec(path string, s *cdispec.Spec) error {
	v, err := cdispec.MinimumRequiredVersion(s)
	if err != nil {
		return fmt.Errorf("CDI spec version: %w", err)
	}
	s.Version = v
	data, err := json.Marshal(s)
	if err != nil {
		return err
	}
	return atomicfile.WriteFile(path, data, 0o644, func(tmp string) error {
		if _, err := cdi.ReadSpec(tmp, 0); err != nil {
			return fmt.Errorf("CDI spec %s is invalid: %w", filepath.Base(path), err)
		}
		return nil
	})
}

// WriteFile writes a small file atomically (temp file, fsync, rename).
func WriteFile(path string, data []byte) error {
	return atomicfile.WriteFile(path, data, 0o644, nil)
}

// Remove deletes a file the driver wrote; a missing file is fine.
func Remove(path string) error {
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return nil
}
