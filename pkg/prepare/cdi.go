package prepare

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"tags.cncf.io/container-device-interface/pkg/cdi"

	"github.com/sriov-dra/sriov-dra/pkg/atomicfile"
	cdispec "tags.cncf.io/container-device-interface/specs-go"
)

// CDIDevice is one CDI device of a claim's spec.
type CDIDevice struct {
	// Name must be unique across all spec files: <claim UID>-<device name>.
	Name  string
	Nodes []Node
}

// Spec builds a claim's CDI spec: one CDI device per allocated device and
// the environment on the spec, so it applies with any of them.
func Spec(kind string, devices []CDIDevice, env []string) *cdispec.Spec {
	s := &cdispec.Spec{Kind: kind, ContainerEdits: cdispec.ContainerEdits{Env: env}}
	for _, d := range devices {
		cd := cdispec.Device{Name: d.Name}
		for _, n := range d.Nodes {
			cd.ContainerEdits.DeviceNodes = append(cd.ContainerEdits.DeviceNodes, &cdispec.DeviceNode{Path: n.Path, HostPath: n.HostPath})
		}
		if len(cd.ContainerEdits.DeviceNodes) == 0 {
			// CDI requires every device to edit something; an env entry is
			// the smallest valid edit for a device without nodes (a netdev VF).
			cd.ContainerEdits.Env = []string{"SRIOV_DRA_DEVICE_" + strings.ToUpper(strings.NewReplacer("-", "_").Replace(d.Name)) + "=1"}
		}
		s.Devices = append(s.Devices, cd)
	}
	return s
}

// SpecFileName is the spec file for a claim in the CDI directory.
func SpecFileName(vendorClass, claimUID string) string {
	vendor, class, _ := strings.Cut(vendorClass, "/")
	return cdi.GenerateTransientSpecName(vendor, class, claimUID) + ".json"
}

// WriteSpec validates a spec with the CDI library the runtimes use and
// writes it atomically: a hidden temp file (no .json suffix, so no runtime
// reads it half-written), fsync, rename, fsync of the directory. The spec's
// cdiVersion is the lowest its content needs.
func WriteSpec(dir, fileName string, s *cdispec.Spec) (string, error) {
	v, err := cdispec.MinimumRequiredVersion(s)
	if err != nil {
		return "", fmt.Errorf("CDI spec version: %w", err)
	}
	s.Version = v
	data, err := json.Marshal(s)
	if err != nil {
		return "", err
	}
	final := filepath.Join(dir, fileName)
	err = atomicfile.WriteFile(final, data, 0o644, func(tmp string) error {
		if _, err := cdi.ReadSpec(tmp, 0); err != nil {
			return fmt.Errorf("CDI spec for %s is invalid: %w", fileName, err)
		}
		return nil
	})
	if err != nil {
		return "", err
	}
	return final, nil
}

// RemoveFile deletes a file the driver wrote; a missing file is fine.
func RemoveFile(path string) error {
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return nil
}

// WriteFileAtomic writes a small file atomically (temp file, fsync, rename).
func WriteFileAtomic(path string, data []byte) error {
	return atomicfile.WriteFile(path, data, 0o644, nil)
}
