package host

import (
	"encoding/binary"
	"io/fs"
	"syscall"
)

// direntNameOffset is where the name starts in a linux_dirent64 record,
// after d_ino (8 bytes), d_off (8), d_reclen (2) and d_type (1).
const direntNameOffset = 19

// readDirNames lists a directory's entry names, unsorted, without "." and
// "..". Unlike os.ReadDir, which allocates an entry and a name per file,
// it reads the raw records into a stack buffer and returns names that all
// share one string: listing a device directory of a few dozen attributes
// costs two allocations, not a hundred.
func readDirNames(path string) ([]string, error) {
	fd, err := syscall.Open(path, syscall.O_RDONLY|syscall.O_DIRECTORY|syscall.O_CLOEXEC, 0)
	if err != nil {
		return nil, &fs.PathError{Op: "open", Path: path, Err: err}
	}
	defer syscall.Close(fd)
	// The buffers start on the stack and grow on the heap only for a
	// directory of more than 128 entries or 2 KiB of names.
	var (
		buf     [8192]byte
		allBuf  [2048]byte
		lensBuf [128]int
		all     = allBuf[:0] // the names, one after the other
		lens    = lensBuf[:0]
	)
	for {
		n, err := syscall.ReadDirent(fd, buf[:])
		if err == syscall.EINTR {
			continue
		}
		if err != nil {
			return nil, &fs.PathError{Op: "readdirent", Path: path, Err: err}
		}
		if n <= 0 {
			break
		}
		for rec := buf[:n]; len(rec) >= direntNameOffset; {
			reclen := int(binary.NativeEndian.Uint16(rec[16:18]))
			if reclen < direntNameOffset || reclen > len(rec) {
				return nil, &fs.PathError{Op: "readdirent", Path: path, Err: syscall.EIO}
			}
			name := rec[direntNameOffset:reclen]
			for i, c := range name {
				if c == 0 {
					name = name[:i]
					break
				}
			}
			rec = rec[reclen:]
			if string(name) == "." || string(name) == ".." {
				continue
			}
			all = append(all, name...)
			lens = append(lens, len(name))
		}
	}
	joined := string(all)
	names := make([]string, len(lens))
	for i, l := range lens {
		names[i], joined = joined[:l], joined[l:]
	}
	return names, nil
}
