package prepare

import (
	"encoding/json"
	"strings"
)

// EnvName is the classic variable for a resource: PCIDEVICE_ and the
// upper-cased resource name with '.', '/' and '-' as '_' (the classic plugin
// keeps '-', which no shell can name; we do not).
func EnvName(resourceName string) string {
	return "PCIDEVICE_" + strings.ToUpper(strings.NewReplacer(".", "_", "/", "_", "-", "_").Replace(resourceName))
}

// Env returns the two classic variables for a resource's devices:
// PCIDEVICE_<R>=<id>,<id> and PCIDEVICE_<R>_INFO={"<id>":{...}}.
func Env(resourceName string, devices []DeviceEdits) ([]string, error) {
	ids := make([]string, 0, len(devices))
	info := make(map[string]Info, len(devices))
	for _, d := range devices {
		if _, dup := info[d.ID]; !dup {
			ids = append(ids, d.ID)
		}
		info[d.ID] = d.Info
	}
	b, err := json.Marshal(info)
	if err != nil {
		return nil, err
	}
	name := EnvName(resourceName)
	return []string{name + "=" + strings.Join(ids, ","), name + "_INFO=" + string(b)}, nil
}
