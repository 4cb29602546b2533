package ociimage_test

import (
	"archive/tar"
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sriov-dra/sriov-dra/pkg/ociimage"
)

// untar unpacks an archive into a directory.
func untar(t *testing.T, file string) string {
	t.Helper()
	dir := t.TempDir()
	f, err := os.Open(file)
	require.NoError(t, err)
	defer f.Close()
	tr := tar.NewReader(f)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return dir
		}
		require.NoError(t, err)
		p := filepath.Join(dir, h.Name)
		if h.Typeflag == tar.TypeDir {
			require.NoError(t, os.MkdirAll(p, 0o755))
			continue
		}
		require.NoError(t, os.MkdirAll(filepath.Dir(p), 0o755))
		b, err := io.ReadAll(tr)
		require.NoError(t, err)
		require.NoError(t, os.WriteFile(p, b, 0o644))
	}
}

// layerFiles reads an image's layer: path → content, or "-> target" for links.
func layerFiles(t *testing.T, img v1.Image) map[string]string {
	t.Helper()
	layers, err := img.Layers()
	require.NoError(t, err)
	require.Len(t, layers, 1)
	rc, err := layers[0].Uncompressed()
	require.NoError(t, err)
	defer rc.Close()
	out := map[string]string{}
	tr := tar.NewReader(rc)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return out
		}
		require.NoError(t, err)
		switch h.Typeflag {
		case tar.TypeSymlink:
			out[h.Name] = "-> " + h.Linkname
		case tar.TypeReg:
			b, err := io.ReadAll(tr)
			require.NoError(t, err)
			out[h.Name] = string(b)
			assert.Equal(t, int64(0o755), h.Mode, h.Name)
		}
	}
}

func TestWriteMultiPlatformArchive(t *testing.T) {
	a := ociimage.Archive{Name: "registry.local/x:1", Images: []ociimage.Image{
		{OS: "linux", Architecture: "amd64", Entrypoint: []string{"/usr/bin/x"},
			Files: []ociimage.File{{Path: "usr/bin/x", Mode: 0o755, Content: []byte("amd64 binary")}, {Path: "bin/y", Link: "/usr/bin/x"}}},
		{OS: "linux", Architecture: "arm64", Entrypoint: []string{"/usr/bin/x"},
			Files: []ociimage.File{{Path: "usr/bin/x", Mode: 0o755, Content: []byte("arm64 binary")}}},
	}}
	file := filepath.Join(t.TempDir(), "x.tar")
	sizes, err := ociimage.Write(file, a)
	require.NoError(t, err)
	require.Len(t, sizes, 2)
	assert.Equal(t, "linux/amd64", sizes[0].Platform)
	assert.Equal(t, "linux/arm64", sizes[1].Platform)
	for _, s := range sizes {
		assert.Positive(t, s.Compressed)
		assert.Greater(t, s.Unpacked, int64(len("amd64 binary")), "a tar holds headers too")
	}

	p, err := layout.FromPath(untar(t, file))
	require.NoError(t, err)
	top, err := p.ImageIndex()
	require.NoError(t, err)
	topManifest, err := top.IndexManifest()
	require.NoError(t, err)
	require.Len(t, topManifest.Manifests, 1, "one named image")
	named := topManifest.Manifests[0]
	assert.Equal(t, "registry.local/x:1", named.Annotations["io.containerd.image.name"])
	assert.Equal(t, "registry.local/x:1", named.Annotations["org.opencontainers.image.ref.name"])
	assert.Equal(t, "application/vnd.oci.image.index.v1+json", string(named.MediaType))

	idx, err := top.ImageIndex(named.Digest)
	require.NoError(t, err)
	im, err := idx.IndexManifest()
	require.NoError(t, err)
	require.Len(t, im.Manifests, 2)
	want := map[string]string{"amd64": "amd64 binary", "arm64": "arm64 binary"}
	for _, d := range im.Manifests {
		require.NotNil(t, d.Platform)
		assert.Equal(t, "linux", d.Platform.OS)
		assert.Equal(t, "application/vnd.oci.image.manifest.v1+json", string(d.MediaType))
		img, err := idx.Image(d.Digest)
		require.NoError(t, err)
		cf, err := img.ConfigFile()
		require.NoError(t, err)
		assert.Equal(t, d.Platform.Architecture, cf.Architecture, "the config names the manifest's platform")
		assert.Equal(t, []string{"/usr/bin/x"}, cf.Config.Entrypoint)
		files := layerFiles(t, img)
		assert.Equal(t, want[d.Platform.Architecture], files["usr/bin/x"])
		if d.Platform.Architecture == "amd64" {
			assert.Equal(t, "-> /usr/bin/x", files["bin/y"])
		}
	}

	// The same input gives the same bytes: digests do not change between builds.
	again := filepath.Join(t.TempDir(), "x.tar")
	_, err = ociimage.Write(again, a)
	require.NoError(t, err)
	b1, err := os.ReadFile(file)
	require.NoError(t, err)
	b2, err := os.ReadFile(again)
	require.NoError(t, err)
	assert.True(t, bytes.Equal(b1, b2), "reproducible archive")

	_, err = ociimage.Write(filepath.Join(t.TempDir(), "none.tar"), ociimage.Archive{Name: "registry.local/empty:1"})
	assert.ErrorContains(t, err, "image registry.local/empty:1: no platform")
}
