package framework

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"

	"github.com/sriov-dra/sriov-dra/pkg/ociimage"
)

// Image names the e2e cluster provides without a registry.
const (
	PauseImage   = "registry.k8s.io/pause:3.10"
	BusyboxImage = "registry.local/busybox:e2e"
)

// busyboxApplets are linked into the busybox image's /bin.
var busyboxApplets = []string{"sh", "ls", "cat", "env", "echo", "sleep", "test", "grep", "stat", "true", "mount", "sort", "tr", "wc", "head", "ip"}

// buildImages writes the pause and busybox archives into dir, for this
// machine's platform. pauseBin is a static pause binary; busybox comes from
// Debian's busybox-static.
func buildImages(dir, pauseBin, busyboxBin string) ([]string, error) {
	pause, err := os.ReadFile(pauseBin)
	if err != nil {
		return nil, fmt.Errorf("read pause binary: %w", err)
	}
	bb, err := os.ReadFile(busyboxBin)
	if err != nil {
		return nil, fmt.Errorf("read busybox (apt-get install busybox-static): %w", err)
	}
	bbFiles := []ociimage.File{{Path: "bin/busybox", Mode: 0o755, Content: bb}}
	for _, a := range busyboxApplets {
		bbFiles = append(bbFiles, ociimage.File{Path: "bin/" + a, Link: "busybox"})
	}
	env := []string{"PATH=/bin:/usr/bin:/sbin"}
	archives := []ociimage.Archive{
		{Name: PauseImage, Images: []ociimage.Image{{OS: "linux", Architecture: runtime.GOARCH, Env: env,
			Entrypoint: []string{"/pause"}, Files: []ociimage.File{{Path: "pause", Mode: 0o755, Content: pause}}}}},
		{Name: BusyboxImage, Images: []ociimage.Image{{OS: "linux", Architecture: runtime.GOARCH, Env: env,
			Cmd: []string{"sh"}, Files: bbFiles}}},
	}
	var paths []string
	for i, a := range archives {
		p := filepath.Join(dir, fmt.Sprintf("image-%d.tar", i))
		if _, err := ociimage.Write(p, a); err != nil {
			return nil, err
		}
		paths = append(paths, p)
	}
	return paths, nil
}
