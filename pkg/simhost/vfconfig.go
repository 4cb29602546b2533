package simhost

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"

	"github.com/sriov-dra/sriov-dra/pkg/host"
)

// A simulated PF has no netdev the kernel knows, so the VF settings it would
// hold live in files: root/vfs/<pf>/<index>.json. A VF without one shows the
// kernel's defaults (zero MAC, no VLAN, spoof check on, not trusted).

// VFStatePath is where the simulated PF keeps VF index's settings.
func (h *Host) VFStatePath(pf string, index int) string {
	return filepath.Join(h.root, "vfs", pf, strconv.Itoa(index)+".json")
}

// VF reads a simulated VF's settings.
func (h *Host) VF(pf string, index int) (host.VFState, error) {
	if !h.SysExists(filepath.Join("class/net", pf)) {
		return host.VFState{}, fmt.Errorf("PF %s: %w", pf, host.ErrLinkGone)
	}
	s := host.VFState{MAC: "00:00:00:00:00:00", SpoofChk: true}
	b, err := os.ReadFile(h.VFStatePath(pf, index))
	if errors.Is(err, fs.ErrNotExist) {
		return s, nil
	}
	if err != nil {
		return s, err
	}
	if err := json.Unmarshal(b, &s); err != nil {
		return s, fmt.Errorf("decode %s: %w", h.VFStatePath(pf, index), err)
	}
	return s, nil
}

// SetVF changes a simulated VF's settings.
func (h *Host) SetVF(pf string, index int, c host.VFConfig) error {
	if c.Empty() {
		return nil
	}
	s, err := h.VF(pf, index)
	if err != nil {
		return err
	}
	b, err := json.Marshal(s.Apply(c))
	if err != nil {
		return err
	}
	p := h.VFStatePath(pf, index)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return err
	}
	return os.WriteFile(p, b, 0o644)
}
