// Command image writes the node image as an OCI archive: the static
// sriov-dra binary of each platform at /usr/bin/sriov-dra, one index.
// `make image` runs it; `ctr images import` or `docker load` read the result.
package main

import (
	"flag"
	"fmt"
	"os"
	"strings"

	"github.com/sriov-dra/sriov-dra/pkg/ociimage"
)

func main() {
	name := flag.String("name", "ghcr.io/sriov-dra/sriov-dra:dev", "image reference recorded in the archive")
	out := flag.String("out", "_output/sriov-dra-image.tar", "archive to write")
	var binaries []string
	flag.Func("binary", "os/arch=path of a static sriov-dra binary; repeat for each platform", func(v string) error {
		binaries = append(binaries, v)
		return nil
	})
	flag.Parse()
	if err := run(*name, *out, binaries); err != nil {
		fmt.Fprintln(os.Stderr, "image:", err)
		os.Exit(1)
	}
}

func run(name, out string, binaries []string) error {
	if len(binaries) == 0 {
		return fmt.Errorf("no --binary given")
	}
	a := ociimage.Archive{Name: name}
	for _, b := range binaries {
		platform, file, ok := strings.Cut(b, "=")
		osName, arch, ok2 := strings.Cut(platform, "/")
		if !ok || !ok2 {
			return fmt.Errorf("--binary %q: want os/arch=path", b)
		}
		content, err := os.ReadFile(file)
		if err != nil {
			return fmt.Errorf("--binary %q: %w", b, err)
		}
		a.Images = append(a.Images, ociimage.Image{OS: osName, Architecture: arch,
			Entrypoint: []string{"/usr/bin/sriov-dra"},
			Files:      []ociimage.File{{Path: "usr/bin/sriov-dra", Mode: 0o755, Content: content}}})
	}
	sizes, err := ociimage.Write(out, a)
	if err != nil {
		return err
	}
	st, err := os.Stat(out)
	if err != nil {
		return err
	}
	fmt.Printf("%s: %s, %.1f MB\n", out, name, float64(st.Size())/1e6)
	for _, s := range sizes {
		fmt.Printf("  %-12s %.1f MB compressed (pulled), %.1f MB unpacked\n", s.Platform, float64(s.Compressed)/1e6, float64(s.Unpacked)/1e6)
	}
	return nil
}
