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
	v, err := cdi.MinimumRequiredVersion(s)
	if err != nil {
		return "", fmt.Errorf("CDI spec version: %w", err)
	}
	s.Version = v
	data, err := json.Marshal(s)
	if err != nil {
		return "", err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	final := filepath.Join(dir, fileName)
	tmp := filepath.Join(dir, "."+fileName+".tmp")
	if err := writeSynced(tmp, data, 0o644); err != nil {
		return "", err
	}
	if _, err := cdi.ReadSpec(tmp, 0); err != nil {
		_ = os.Remove(tmp)
		return "", fmt.Errorf("CDI spec for %s is invalid: %w", fileName, err)
	}
	if err := os.Rename(tmp, final); err != nil {
		_ = os.Remove(tmp)
		return "", err
	}
	return final, syncDir(dir)
}

// writeSynced writes data to path and fsyncs it.
func writeSynced(path string, data []byte, perm os.FileMode) error {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, perm)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
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
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	tmp := filepath.Join(filepath.Dir(path), "."+filepath.Base(path)+".tmp")
	if err := writeSynced(tmp, data, 0o644); err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		return err
	}
	return syncDir(filepath.Dir(path))
}
