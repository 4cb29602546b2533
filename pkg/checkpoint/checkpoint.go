// Package checkpoint records which claims the driver prepared, so that a
// restarted driver can unprepare them, restore drivers it rebound and remove
// files it wrote. The file is versioned, checksummed and replaced atomically.
package checkpoint

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"slices"
	"strings"
	"time"

	resourceapi "k8s.io/api/resource/v1"

	netconfig "github.com/sriov-dra/sriov-dra/api/netconfig/v1alpha1"
	"github.com/sriov-dra/sriov-dra/pkg/atomicfile"
)

// Version is the checkpoint format written by this driver. The record types
// below are the format: they are the checkpoint's own, never another
// package's, so that no change elsewhere changes what is on disk. A change
// of the format gets a new version, a conversion in readers, and a golden
// file in testdata/ that every later version must still read (a rolling
// update starts the new driver on the old one's checkpoint).
const Version = "v1"

// Claim states: an entry is written "preparing" before any side effect and
// "prepared" once everything is in place, so a crash in between is rolled
// back on restart.
const (
	StatePreparing = "preparing"
	StatePrepared  = "prepared"
)

// Device is one prepared device of a claim.
type Device struct {
	Request      string   `json:"request"`
	Pool         string   `json:"pool"`
	Name         string   `json:"name"`
	PCIAddress   string   `json:"pciAddress,omitempty"`
	CDIDeviceIDs []string `json:"cdiDeviceIDs,omitempty"`
	// OriginalDriver is the driver to restore when BoundDriver was set for the claim.
	OriginalDriver string `json:"originalDriver,omitempty"`
	BoundDriver    string `json:"boundDriver,omitempty"`
	// ClassicPool is the classic pool (full resource name, "" for none) the
	// device was in when prepared: it stays there while prepared, whatever
	// driver it is bound to, and out of the legacy shim's offer. Added
	// within v1: an older v1 reader ignores it; a device recorded without it
	// (nil: by an older release, or rebuilt from files) keeps the pool it is
	// in now.
	ClassicPool *string `json:"classicPool,omitempty"`
	// InterfaceName and HardwareAddress are the netdev published in the
	// claim's status, kept so that a lost status write can be redone.
	InterfaceName   string `json:"interfaceName,omitempty"`
	HardwareAddress string `json:"hardwareAddress,omitempty"`
	// Metadata is what the device's metadata file holds (KEP-5304), for the
	// prepare call that made it. Not stored: a node with hundreds of claims
	// would rewrite it all on every prepare; a repeated prepare reads it
	// back from the file the kubelet plugin helper wrote.
	Metadata map[string]resourceapi.DeviceAttribute `json:"-"`
	// Network is the device's network section: its netdev goes into the
	// pod (the NRI path).
	Network *netconfig.Network `json:"network,omitempty"`
	// InPod is set from just before the netdev is moved into a pod until
	// it is back on the host.
	InPod *InPod `json:"inPod,omitempty"`
	// VFSet is set, before the change, when the claim's network section
	// changes the settings of a VF without a netdev to move (vfio-pci,
	// uio) on its PF at prepare: unprepare puts them back. Added within
	// v1: an older v1 reader ignores it.
	VFSet *VFSet `json:"vfSet,omitempty"`
}

// VFSet locates a VF's settings changed on its PF, and what puts them back.
type VFSet struct {
	PF      string     `json:"pf"`
	VFIndex int        `json:"vfIndex"`
	Restore VFSettings `json:"restore"`
}

// Attachment states: "attaching" is written before the first change, so a
// crash in between is undone at start-up; "attached" once the netdev is
// set up in the pod.
const (
	InPodAttaching = "attaching"
	InPodAttached  = "attached"
)

// InPod records a netdev moved into a pod's network namespace and what to
// put back when it leaves.
type InPod struct {
	State     string `json:"state"`
	PodUID    string `json:"podUID"`
	Pod       string `json:"pod"`
	SandboxID string `json:"sandboxID"`
	NetNS     string `json:"netns"`
	// IfName is the netdev's name in the pod; MAC and IPs are what the
	// claim's status shows.
	IfName string   `json:"ifName"`
	MAC    string   `json:"mac,omitempty"`
	IPs    []string `json:"ips,omitempty"`
	// Host is the netdev as it was on the host.
	Host Link `json:"host"`
	// PF and VFIndex locate the VF settings changed on the PF, and
	// VFRestore puts them back.
	PF        string      `json:"pf,omitempty"`
	VFIndex   int         `json:"vfIndex,omitempty"`
	VFRestore *VFSettings `json:"vfRestore,omitempty"`
}

// Link is a netdev as it was on the host, to put it back as it was.
type Link struct {
	Index int    `json:"index"`
	Name  string `json:"name"`
	MAC   string `json:"mac"`
	MTU   int    `json:"mtu"`
	Up    bool   `json:"up"`
}

// VFSettings are a VF's settings on its PF; unset ones were not changed.
type VFSettings struct {
	MAC      *string `json:"mac,omitempty"`
	VLAN     *int    `json:"vlan,omitempty"`
	QoS      *int    `json:"qos,omitempty"`
	Trust    *bool   `json:"trust,omitempty"`
	SpoofChk *bool   `json:"spoofChk,omitempty"`
	// Added within v1; an older v1 reader ignores them.
	MinTxRate *int    `json:"minTxRate,omitempty"`
	MaxTxRate *int    `json:"maxTxRate,omitempty"`
	LinkState *string `json:"linkState,omitempty"`
}

// Claim is one prepared (or half-prepared) claim.
type Claim struct {
	Namespace string   `json:"namespace"`
	Name      string   `json:"name"`
	State     string   `json:"state"`
	CDISpec   string   `json:"cdiSpec,omitempty"`
	InfoFiles []string `json:"deviceInfoFiles,omitempty"`
	Devices   []Device `json:"devices,omitempty"`
	// Pods are the UIDs of the pods the claim was reserved for when it was
	// prepared: the pods whose sandboxes get its netdevs.
	Pods []string `json:"pods,omitempty"`
	// Rebuilt marks an entry recovered from the files the driver wrote
	// after its checkpoint was lost: the drivers its devices had before a
	// rebind are not known.
	Rebuilt bool `json:"rebuilt,omitempty"`
}

// Data is the checkpoint content.
type Data struct {
	// BootID ties entries to one boot: after a reboot nothing is prepared.
	BootID string           `json:"bootID"`
	Claims map[string]Claim `json:"claims"`
}

type file struct {
	Version  string          `json:"version"`
	Checksum string          `json:"checksum"`
	Data     json.RawMessage `json:"data"`
}

// ErrUnreadable marks a checkpoint file that exists but cannot be trusted:
// not JSON, a checksum that does not match, data of the wrong shape, or a
// version this driver does not read.
var ErrUnreadable = errors.New("checkpoint unreadable")

// Load reads the checkpoint at path. A missing file is an empty checkpoint.
// A file from another boot loads with its claims, and stale reports it, so the
// caller can clean up what they left (specs in a persistent CDI dir).
func Load(path, bootID string) (d Data, stale bool, err error) {
	d = Data{BootID: bootID, Claims: map[string]Claim{}}
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return d, false, nil
	}
	if err != nil {
		return d, false, fmt.Errorf("read checkpoint: %w", err)
	}
	var f file
	if err := json.Unmarshal(b, &f); err != nil {
		return d, false, fmt.Errorf("checkpoint %s is corrupt: %w: %w", path, ErrUnreadable, err)
	}
	decode, ok := readers[f.Version]
	if !ok {
		return d, false, fmt.Errorf("checkpoint %s: version %q, this driver reads %s: %w", path, f.Version, readable(), ErrUnreadable)
	}
	if sum := checksum(f.Data); f.Checksum == "" || sum != f.Checksum {
		return d, false, fmt.Errorf("checkpoint %s: checksum mismatch (%s, want %q): %w", path, sum, f.Checksum, ErrUnreadable)
	}
	loaded, err := decode(f.Data)
	if err != nil {
		return d, false, fmt.Errorf("checkpoint %s data: %w: %w", path, ErrUnreadable, err)
	}
	if loaded.Claims == nil {
		loaded.Claims = map[string]Claim{}
	}
	return loaded, loaded.BootID != bootID, nil
}

// readers decode each version this driver reads into today's Data: an
// older version's reader converts.
var readers = map[string]func(json.RawMessage) (Data, error){
	"v1": func(b json.RawMessage) (Data, error) {
		var d Data
		err := json.Unmarshal(b, &d)
		return d, err
	},
}

func readable() string {
	versions := slices.Sorted(maps.Keys(readers))
	return `"` + strings.Join(versions, `", "`) + `"`
}

// Save writes the checkpoint atomically and durably: temp file, fsync,
// rename, fsync of the directory. When Save returns, the state survives a
// crash or power loss.
func Save(path string, d Data) error {
	data, err := json.Marshal(d)
	if err != nil {
		return err
	}
	b, err := json.Marshal(file{Version: Version, Checksum: checksum(data), Data: data})
	if err != nil {
		return err
	}
	return atomicfile.WriteFile(path, b, 0o600, nil)
}

func checksum(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// SetAside renames an unreadable checkpoint out of the way, never deleting
// it, and returns its new name: path.corrupt-<UTC time>.
func SetAside(path string, now time.Time) (string, error) {
	aside := path + ".corrupt-" + now.UTC().Format("20060102T150405.000000000Z")
	if err := os.Rename(path, aside); err != nil {
		return "", fmt.Errorf("set aside %s: %w", path, err)
	}
	return aside, nil
}
