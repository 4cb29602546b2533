package framework

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"time"
)

// imageFile is one file of a locally made image.
type imageFile struct {
	path    string // inside the image, without leading slash
	mode    int64
	content []byte
	link    string // symlink target, when set
}

// ociImage describes a single-layer image.
type ociImage struct {
	name       string // e.g. registry.k8s.io/pause:3.10
	entrypoint []string
	cmd        []string
	files      []imageFile
}

// writeOCIArchive writes an OCI image-layout tar that `ctr images import`
// accepts, so the e2e cluster needs no registry.
func writeOCIArchive(path string, img ociImage) error {
	layer, diffID, err := layerTarGz(img.files)
	if err != nil {
		return err
	}
	blobs := map[string][]byte{}
	add := func(b []byte) (string, int) {
		sum := sha256.Sum256(b)
		d := "sha256:" + hex.EncodeToString(sum[:])
		blobs[d] = b
		return d, len(b)
	}
	layerDigest, layerSize := add(layer)
	config, _ := json.Marshal(map[string]any{
		"architecture": "amd64",
		"os":           "linux",
		"created":      time.Unix(0, 0).UTC().Format(time.RFC3339),
		"config":       map[string]any{"Entrypoint": img.entrypoint, "Cmd": img.cmd, "Env": []string{"PATH=/bin:/usr/bin:/sbin"}},
		"rootfs":       map[string]any{"type": "layers", "diff_ids": []string{diffID}},
	})
	configDigest, configSize := add(config)
	manifest, _ := json.Marshal(map[string]any{
		"schemaVersion": 2,
		"mediaType":     "application/vnd.oci.image.manifest.v1+json",
		"config":        map[string]any{"mediaType": "application/vnd.oci.image.config.v1+json", "digest": configDigest, "size": configSize},
		"layers":        []any{map[string]any{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": layerDigest, "size": layerSize}},
	})
	manifestDigest, manifestSize := add(manifest)
	index, _ := json.Marshal(map[string]any{
		"schemaVersion": 2,
		"mediaType":     "application/vnd.oci.image.index.v1+json",
		"manifests": []any{map[string]any{
			"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": manifestDigest, "size": manifestSize,
			"platform": map[string]string{"architecture": "amd64", "os": "linux"},
			"annotations": map[string]string{
				"io.containerd.image.name":          img.name,
				"org.opencontainers.image.ref.name": img.name,
			},
		}},
	})

	var out bytes.Buffer
	tw := tar.NewWriter(&out)
	put := func(name string, b []byte) error {
		if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: int64(len(b)), Typeflag: tar.TypeReg}); err != nil {
			return err
		}
		_, err := tw.Write(b)
		return err
	}
	if err := put("oci-layout", []byte(`{"imageLayoutVersion":"1.0.0"}`)); err != nil {
		return err
	}
	if err := put("index.json", index); err != nil {
		return err
	}
	digests := make([]string, 0, len(blobs))
	for d := range blobs {
		digests = append(digests, d)
	}
	sort.Strings(digests)
	for _, d := range digests {
		if err := put("blobs/sha256/"+d[len("sha256:"):], blobs[d]); err != nil {
			return err
		}
	}
	if err := tw.Close(); err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	return os.WriteFile(path, out.Bytes(), 0o644)
}

// layerTarGz returns the gzipped layer and the digest of its uncompressed tar.
func layerTarGz(files []imageFile) ([]byte, string, error) {
	var raw bytes.Buffer
	tw := tar.NewWriter(&raw)
	dirs := map[string]bool{}
	for _, f := range files {
		for d := filepath.Dir(f.path); d != "." && !dirs[d]; d = filepath.Dir(d) {
			dirs[d] = true
		}
	}
	sortedDirs := make([]string, 0, len(dirs))
	for d := range dirs {
		sortedDirs = append(sortedDirs, d)
	}
	sort.Strings(sortedDirs)
	for _, d := range sortedDirs {
		if err := tw.WriteHeader(&tar.Header{Name: d + "/", Mode: 0o755, Typeflag: tar.TypeDir}); err != nil {
			return nil, "", err
		}
	}
	for _, f := range files {
		h := &tar.Header{Name: f.path, Mode: f.mode, Size: int64(len(f.content)), Typeflag: tar.TypeReg}
		if f.link != "" {
			h = &tar.Header{Name: f.path, Mode: 0o777, Linkname: f.link, Typeflag: tar.TypeSymlink}
		}
		if err := tw.WriteHeader(h); err != nil {
			return nil, "", err
		}
		if f.link == "" {
			if _, err := tw.Write(f.content); err != nil {
				return nil, "", err
			}
		}
	}
	if err := tw.Close(); err != nil {
		return nil, "", err
	}
	sum := sha256.Sum256(raw.Bytes())
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	if _, err := zw.Write(raw.Bytes()); err != nil {
		return nil, "", err
	}
	if err := zw.Close(); err != nil {
		return nil, "", err
	}
	return gz.Bytes(), "sha256:" + hex.EncodeToString(sum[:]), nil
}

// Image names the e2e cluster provides without a registry.
const (
	PauseImage   = "registry.k8s.io/pause:3.10"
	BusyboxImage = "registry.local/busybox:e2e"
)

// busyboxApplets are linked into the busybox image's /bin.
var busyboxApplets = []string{"sh", "ls", "cat", "env", "echo", "sleep", "test", "grep", "stat", "true", "mount", "sort", "tr", "wc", "head"}

// buildImages writes the pause and busybox archives into dir. pauseBin is a
// static pause binary; busybox comes from Debian's busybox-static.
func buildImages(dir, pauseBin, busyboxBin string) ([]string, error) {
	pause, err := os.ReadFile(pauseBin)
	if err != nil {
		return nil, fmt.Errorf("read pause binary: %w", err)
	}
	bb, err := os.ReadFile(busyboxBin)
	if err != nil {
		return nil, fmt.Errorf("read busybox (apt-get install busybox-static): %w", err)
	}
	bbFiles := []imageFile{{path: "bin/busybox", mode: 0o755, content: bb}}
	for _, a := range busyboxApplets {
		bbFiles = append(bbFiles, imageFile{path: "bin/" + a, link: "busybox"})
	}
	images := []ociImage{
		{name: PauseImage, entrypoint: []string{"/pause"}, files: []imageFile{{path: "pause", mode: 0o755, content: pause}}},
		{name: BusyboxImage, cmd: []string{"sh"}, files: bbFiles},
	}
	var paths []string
	for i, img := range images {
		p := filepath.Join(dir, fmt.Sprintf("image-%d.tar", i))
		if err := writeOCIArchive(p, img); err != nil {
			return nil, fmt.Errorf("image %s: %w", img.name, err)
		}
		paths = append(paths, p)
	}
	return paths, nil
}
