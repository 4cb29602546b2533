//go:build !linux

package host

import "os"

// readDirNames lists a directory's entry names, unsorted. Only Linux has
// the allocation-saving version; the driver runs nowhere else.
func readDirNames(path string) ([]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return f.Readdirnames(-1)
}
