package host

import (
	"bufio"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// DefaultRouteInterfaces returns the names of the interfaces that carry an
// IPv4 or IPv6 default route, read from /proc/net/route and
// /proc/net/ipv6_route. Reading procfs rather than netlink avoids netlink's
// habit of reporting the IPv4 default as 0.0.0.0/0 instead of a nil
// destination, which made the classic plugin never exclude that NIC, and lets
// a written tree carry a default route.
func (h *Host) DefaultRouteInterfaces() (map[string]bool, error) {
	ifaces := map[string]bool{}
	var errs []error
	v4 := filepath.Join(h.procRoot, "net", "route")
	if err := scanLines(v4, func(fields []string) {
		// Iface Destination Gateway Flags RefCnt Use Metric Mask ...
		if len(fields) >= 8 && fields[1] == "00000000" && fields[7] == "00000000" {
			ifaces[fields[0]] = true
		}
	}); err != nil {
		errs = append(errs, err)
	}
	v6 := filepath.Join(h.procRoot, "net", "ipv6_route")
	if err := scanLines(v6, func(fields []string) {
		// dest destlen src srclen nexthop metric refcnt use flags iface
		if len(fields) >= 10 && strings.Trim(fields[0], "0") == "" && fields[1] == "00" && fields[9] != "lo" {
			ifaces[fields[9]] = true
		}
	}); err != nil {
		errs = append(errs, err)
	}
	return ifaces, errors.Join(errs...)
}

func scanLines(path string, each func(fields []string)) error {
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("open %s: %w", path, err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		each(strings.Fields(sc.Text()))
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("read %s: %w", path, err)
	}
	return nil
}
