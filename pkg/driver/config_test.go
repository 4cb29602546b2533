package driver

import (
	"testing"

	"github.com/stretchr/testify/assert"
)

// TestWorkDirs: only the directories of the enabled parts are created. A
// DaemonSet mounts no device-plugins directory unless legacy resources are
// served, and its root filesystem is read-only: creating one there stops
// the daemon.
func TestWorkDirs(t *testing.T) {
	base := Config{PluginDir: "/p", CDIRoot: "/cdi", RegistrarDir: "/reg", DevicePluginDir: "/dp"}
	for _, tc := range []struct {
		name   string
		dra    bool
		legacy []string
		want   []string
	}{
		{name: "DRA only", dra: true, want: []string{"/p", "/cdi", "/reg"}},
		{name: "DRA and legacy", dra: true, legacy: []string{"intel.com/a"}, want: []string{"/p", "/cdi", "/reg", "/dp"}},
		{name: "legacy only", legacy: []string{"all"}, want: []string{"/p", "/cdi", "/dp"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := base
			cfg.DRA, cfg.LegacyResources = tc.dra, tc.legacy
			assert.Equal(t, tc.want, cfg.workDirs())
		})
	}
}
