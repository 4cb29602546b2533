// Package convert turns a classic sriov-network-device-plugin config into
// DRA objects: per pool, a DeviceClass that selects what the pool selected
// (with the pool's extended resource name, so unchanged pods keep working
// through KEP-5004, and the pool's prepare options as opaque NetConfig) and
// a ResourceClaimTemplate for one device of it.
package convert

import (
	"encoding/json"
	"fmt"
	"regexp"
	"strings"

	resourceapi "k8s.io/api/resource/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"

	classic "github.com/sriov-dra/sriov-dra/api/classic/v1"
	netconfig "github.com/sriov-dra/sriov-dra/api/netconfig/v1alpha1"
)

// Mode says how a class finds its pool's devices.
type Mode string

const (
	// ModeAttributes matches the k8s.cni.cncf.io/resourceName attribute that
	// nodes running sriov-dra with the same config publish.
	ModeAttributes Mode = "attributes"
	// ModeSelectors translates the pool's selectors into CEL, for nodes
	// running sriov-dra without the config.
	ModeSelectors Mode = "selectors"
)

// Options for Convert.
type Options struct {
	DriverName string
	Mode       Mode
}

// Pool is what one classic pool becomes.
type Pool struct {
	// ResourceName is the pool's full classic name (intel.com/sriov_net).
	ResourceName string
	Class        resourceapi.DeviceClass
	Template     resourceapi.ResourceClaimTemplate
}

// Convert converts a defaulted, validated config. An error names the pool
// and the field that cannot be expressed.
func Convert(cfg *classic.Config, o Options) ([]Pool, error) {
	if o.Mode != ModeAttributes && o.Mode != ModeSelectors {
		return nil, fmt.Errorf("mode %q: want attributes or selectors", o.Mode)
	}
	names := classNames(cfg)
	out := make([]Pool, 0, len(cfg.ResourceList))
	for i := range cfg.ResourceList {
		r := &cfg.ResourceList[i]
		fail := func(field string, err error) error {
			return fmt.Errorf("resourceList[%d] (%s): %s: %w", i, r.FullName(), field, err)
		}
		var expr string
		if o.Mode == ModeAttributes {
			expr = attributesExpression(o.DriverName, r.FullName())
		} else {
			var err error
			if expr, err = SelectorExpression(cfg, i, o.DriverName); err != nil {
				return nil, fail("selectors", err)
			}
			if len(expr) > resourceapi.CELSelectorExpressionMaxLength {
				return nil, fail("selectors", fmt.Errorf("the CEL (%d bytes, with the exclusion of the earlier pools of its type) is longer than the API allows (%d); use --mode attributes",
					len(expr), resourceapi.CELSelectorExpressionMaxLength))
			}
		}
		params, err := netConfigOf(r)
		if err != nil {
			return nil, fail("additionalInfo", err)
		}
		extended := r.FullName()
		class := resourceapi.DeviceClass{
			TypeMeta:   metav1.TypeMeta{APIVersion: resourceapi.SchemeGroupVersion.String(), Kind: "DeviceClass"},
			ObjectMeta: metav1.ObjectMeta{Name: names[i]},
			Spec: resourceapi.DeviceClassSpec{
				Selectors:            []resourceapi.DeviceSelector{{CEL: &resourceapi.CELDeviceSelector{Expression: expr}}},
				Config:               []resourceapi.DeviceClassConfiguration{{DeviceConfiguration: resourceapi.DeviceConfiguration{Opaque: &resourceapi.OpaqueDeviceConfiguration{Driver: o.DriverName, Parameters: runtime.RawExtension{Raw: params}}}}},
				ExtendedResourceName: &extended,
			},
		}
		template := resourceapi.ResourceClaimTemplate{
			TypeMeta:   metav1.TypeMeta{APIVersion: resourceapi.SchemeGroupVersion.String(), Kind: "ResourceClaimTemplate"},
			ObjectMeta: metav1.ObjectMeta{Name: names[i]},
			Spec: resourceapi.ResourceClaimTemplateSpec{Spec: resourceapi.ResourceClaimSpec{Devices: resourceapi.DeviceClaim{
				Requests: []resourceapi.DeviceRequest{{Name: "dev", Exactly: &resourceapi.ExactDeviceRequest{
					DeviceClassName: names[i], AllocationMode: resourceapi.DeviceAllocationModeExactCount, Count: 1}}},
			}}},
		}
		out = append(out, Pool{ResourceName: r.FullName(), Class: class, Template: template})
	}
	return out, nil
}

func attributesExpression(driver, resourceName string) string {
	return fmt.Sprintf(`device.driver == %s && "resourceName" in device.attributes["k8s.cni.cncf.io"] && device.attributes["k8s.cni.cncf.io"].resourceName == %s`,
		quote(driver), quote(resourceName))
}

// netConfigOf is the pool's prepare options: the classic resource name (so
// the variables keep their names), vhost-net, RDMA and the "*" extra info.
func netConfigOf(r *classic.ResourceConfig) ([]byte, error) {
	nc := netconfig.NetConfig{APIVersion: netconfig.APIVersion, Kind: netconfig.Kind, ResourceName: r.FullName()}
	needVhost, rdma := false, false
	for _, s := range r.Selectors {
		needVhost = needVhost || s.NeedVhostNet
		rdma = rdma || s.IsRdma
	}
	if needVhost {
		nc.NeedVhostNet = &needVhost
	}
	if rdma {
		nc.RDMA = &rdma
	}
	for key, info := range r.AdditionalInfo {
		if key != "*" {
			return nil, fmt.Errorf("%q: extra info for one device cannot be given by a class; only \"*\" can", key)
		}
		nc.AdditionalInfo = info
	}
	return json.Marshal(nc)
}

var notLabel = regexp.MustCompile(`[^a-z0-9-]+`)

// classNames names each pool's class after its resource name as a DNS
// label; a name two pools would share (same name, other prefixes) gets the
// prefix's first label in front.
func classNames(cfg *classic.Config) []string {
	label := func(s string) string {
		s = strings.Trim(notLabel.ReplaceAllString(strings.ToLower(s), "-"), "-")
		if len(s) > 63 {
			s = strings.TrimRight(s[:63], "-")
		}
		return s
	}
	count := map[string]int{}
	for _, r := range cfg.ResourceList {
		count[label(r.ResourceName)]++
	}
	out := make([]string, len(cfg.ResourceList))
	for i, r := range cfg.ResourceList {
		out[i] = label(r.ResourceName)
		if count[out[i]] > 1 {
			first, _, _ := strings.Cut(r.ResourcePrefix, ".")
			out[i] = label(first + "-" + r.ResourceName)
		}
	}
	return out
}

// quote is a CEL string literal.
func quote(s string) string {
	b, _ := json.Marshal(s) // JSON string escapes are valid CEL escapes
	return string(b)
}
