// Package ociimage writes OCI image archives (an image layout in a tar, as
// `ctr images import` and `docker load` take them) from files in memory,
// without a builder or a registry: the node image for each platform in one
// index, and the e2e harness's pause and busybox images.
package ociimage

import (
	"archive/tar"
	"bytes"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"sort"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// File is one file of an image's single layer.
type File struct {
	Path    string // inside the image, without the leading slash
	Mode    int64
	Content []byte
	Link    string // symlink target, when set
}

// Image is one platform's image.
type Image struct {
	OS, Architecture string
	Entrypoint, Cmd  []string
	Env              []string
	Files            []File
}

// Archive is a named index of images, one per platform.
type Archive struct {
	// Name is the reference the runtime records, "registry.local/x:tag".
	Name   string
	Images []Image
}

// epoch makes archives reproducible: the same files give the same digests.
var epoch = time.Unix(0, 0).UTC()

// Size is one platform's image size: its blobs as pulled (compressed
// layer, config, manifest) and its layer unpacked.
type Size struct {
	Platform   string
	Compressed int64
	Unpacked   int64
}

// Write writes the archive as an OCI image-layout tar at file and returns
// each platform's size.
func Write(file string, a Archive) ([]Size, error) {
	if len(a.Images) == 0 {
		return nil, fmt.Errorf("image %s: no platform", a.Name)
	}
	var adds []mutate.IndexAddendum
	var sizes []Size
	for _, img := range a.Images {
		platform := img.OS + "/" + img.Architecture
		built, size, err := build(img)
		if err != nil {
			return nil, fmt.Errorf("image %s %s: %w", a.Name, platform, err)
		}
		size.Platform = platform
		sizes = append(sizes, size)
		adds = append(adds, mutate.IndexAddendum{Add: built, Descriptor: v1.Descriptor{
			Platform: &v1.Platform{OS: img.OS, Architecture: img.Architecture}}})
	}
	return sizes, writeIndex(file, a.Name, adds)
}

func writeIndex(file, name string, adds []mutate.IndexAddendum) error {
	index := mutate.IndexMediaType(mutate.AppendManifests(empty.Index, adds...), types.OCIImageIndex)
	dir, err := os.MkdirTemp("", "ociimage-")
	if err != nil {
		return err
	}
	defer func() { _ = os.RemoveAll(dir) }()
	lp, err := layout.Write(dir, empty.Index)
	if err != nil {
		return fmt.Errorf("image %s: %w", name, err)
	}
	// Both annotations: containerd names the image after the first, other
	// OCI tools after the second.
	if err := lp.AppendIndex(index, layout.WithAnnotations(map[string]string{
		"io.containerd.image.name":          name,
		"org.opencontainers.image.ref.name": name,
	})); err != nil {
		return fmt.Errorf("image %s: %w", name, err)
	}
	return tarDir(dir, file)
}

func build(img Image) (v1.Image, Size, error) {
	var size Size
	layerTar, err := layerTar(img.Files)
	if err != nil {
		return nil, size, err
	}
	size.Unpacked = int64(len(layerTar))
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(layerTar)), nil
	}, tarball.WithMediaType(types.OCILayer))
	if err != nil {
		return nil, size, err
	}
	base := mutate.ConfigMediaType(mutate.MediaType(empty.Image, types.OCIManifestSchema1), types.OCIConfigJSON)
	out, err := mutate.AppendLayers(base, layer)
	if err != nil {
		return nil, size, err
	}
	cf, err := out.ConfigFile()
	if err != nil {
		return nil, size, err
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture = img.OS, img.Architecture
	cf.Created = v1.Time{Time: epoch}
	cf.Config.Entrypoint, cf.Config.Cmd = img.Entrypoint, img.Cmd
	cf.Config.Env = img.Env
	if cf.Config.Env == nil {
		cf.Config.Env = []string{"PATH=/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin"}
	}
	final, err := mutate.ConfigFile(out, cf)
	if err != nil {
		return nil, size, err
	}
	size.Compressed, err = pulledSize(final)
	return final, size, err
}

// pulledSize adds up what a registry would serve: manifest, config, layers.
func pulledSize(img v1.Image) (int64, error) {
	m, err := img.Manifest()
	if err != nil {
		return 0, err
	}
	raw, err := img.RawManifest()
	if err != nil {
		return 0, err
	}
	total := int64(len(raw)) + m.Config.Size
	for _, l := range m.Layers {
		total += l.Size
	}
	return total, nil
}

// layerTar is the layer's uncompressed tar: parent directories first, each
// once, then the files in the order given.
func layerTar(files []File) ([]byte, error) {
	var raw bytes.Buffer
	tw := tar.NewWriter(&raw)
	dirs := map[string]bool{}
	for _, f := range files {
		for d := path.Dir(f.Path); d != "." && d != "/" && !dirs[d]; d = path.Dir(d) {
			dirs[d] = true
		}
	}
	sorted := make([]string, 0, len(dirs))
	for d := range dirs {
		sorted = append(sorted, d)
	}
	sort.Strings(sorted)
	for _, d := range sorted {
		if err := tw.WriteHeader(&tar.Header{Name: d + "/", Mode: 0o755, Typeflag: tar.TypeDir, ModTime: epoch}); err != nil {
			return nil, err
		}
	}
	for _, f := range files {
		h := &tar.Header{Name: f.Path, Mode: f.Mode, Size: int64(len(f.Content)), Typeflag: tar.TypeReg, ModTime: epoch}
		if f.Link != "" {
			h = &tar.Header{Name: f.Path, Mode: 0o777, Linkname: f.Link, Typeflag: tar.TypeSymlink, ModTime: epoch}
		}
		if err := tw.WriteHeader(h); err != nil {
			return nil, err
		}
		if f.Link == "" {
			if _, err := tw.Write(f.Content); err != nil {
				return nil, err
			}
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return raw.Bytes(), nil
}

// tarDir packs an image layout directory into one tar file.
func tarDir(dir, file string) error {
	if err := os.MkdirAll(filepath.Dir(file), 0o755); err != nil {
		return err
	}
	tmp := file + ".tmp"
	out, err := os.Create(tmp)
	if err != nil {
		return err
	}
	defer func() { _ = os.Remove(tmp) }() // gone already once renamed
	tw := tar.NewWriter(out)
	err = filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		if err != nil || p == dir {
			return err
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil {
			return err
		}
		h, err := tar.FileInfoHeader(fi, "")
		if err != nil {
			return err
		}
		h.Name, h.ModTime, h.Uid, h.Gid, h.Uname, h.Gname = filepath.ToSlash(rel), epoch, 0, 0, "", ""
		if fi.IsDir() {
			h.Name += "/"
		}
		if err := tw.WriteHeader(h); err != nil {
			return err
		}
		if fi.Mode().IsRegular() {
			f, err := os.Open(p)
			if err != nil {
				return err
			}
			defer f.Close()
			_, err = io.Copy(tw, f)
			return err
		}
		return nil
	})
	if err != nil {
		out.Close()
		return fmt.Errorf("pack %s: %w", file, err)
	}
	if err := tw.Close(); err != nil {
		out.Close()
		return err
	}
	if err := out.Close(); err != nil {
		return err
	}
	return os.Rename(tmp, file)
}
