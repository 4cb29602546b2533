package host

import (
	"bytes"
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"syscall"

	"github.com/vishvananda/netlink"
)

// ueventSubsystems are the kernel objects whose events may change what
// discovery finds: functions added or removed, drivers bound, VFs created,
// netdevs, RDMA and vDPA devices, subfunctions.
var ueventSubsystems = map[string]bool{"pci": true, "net": true, "infiniband": true, "auxiliary": true, "vdpa": true}

// WatchEvents reports, until ctx ends, the kernel's link updates (carrier
// and operstate, over rtnetlink) and uevents of PCI, net, RDMA, vDPA and
// auxiliary devices (add, remove, bind, unbind, VF creation after a
// sriov_numvfs write). A host under another root than /sys has no kernel to
// ask and reports nothing.
func (h *Host) WatchEvents(ctx context.Context, notify func(reason string)) error {
	if filepath.Clean(h.sysfsRoot) != DefaultSysfsRoot {
		<-ctx.Done()
		return nil
	}
	links := make(chan netlink.LinkUpdate, 64)
	var linkErr error
	var mu sync.Mutex
	err := netlink.LinkSubscribeWithOptions(links, ctx.Done(), netlink.LinkSubscribeOptions{
		ErrorCallback: func(err error) {
			mu.Lock()
			linkErr = err
			mu.Unlock()
		},
	})
	if err != nil {
		return fmt.Errorf("subscribe to link updates: %w", err)
	}
	uevents, err := openUevents()
	if err != nil {
		return err
	}
	go func() {
		<-ctx.Done()
		syscall.Close(uevents)
	}()
	go readUevents(uevents, notify)
	// Whatever changed before the subscriptions were in place is seen by
	// one rescan now.
	notify("kernel events subscribed")
	for {
		select {
		case <-ctx.Done():
			return nil
		case u, ok := <-links:
			if !ok {
				mu.Lock()
				defer mu.Unlock()
				return fmt.Errorf("link updates ended: %w", linkErr)
			}
			notify(fmt.Sprintf("link %s %s", u.Attrs().Name, u.Attrs().OperState))
		}
	}
}

// openUevents opens the kernel's uevent multicast socket.
func openUevents() (int, error) {
	fd, err := syscall.Socket(syscall.AF_NETLINK, syscall.SOCK_DGRAM|syscall.SOCK_CLOEXEC, syscall.NETLINK_KOBJECT_UEVENT)
	if err != nil {
		return -1, fmt.Errorf("open uevent socket: %w", err)
	}
	if err := syscall.Bind(fd, &syscall.SockaddrNetlink{Family: syscall.AF_NETLINK, Groups: 1}); err != nil {
		syscall.Close(fd)
		return -1, fmt.Errorf("bind uevent socket: %w", err)
	}
	return fd, nil
}

// readUevents reports the uevents of the subsystems that matter until the
// socket is closed.
func readUevents(fd int, notify func(string)) {
	buf := make([]byte, 16<<10)
	for {
		n, _, err := syscall.Recvfrom(fd, buf, 0)
		if err == syscall.EINTR {
			continue
		}
		if err != nil {
			return
		}
		if reason, ok := ParseUevent(buf[:n]); ok {
			notify(reason)
		}
	}
}

// ParseUevent reads "ACTION@DEVPATH\0KEY=VALUE\0..." and returns a reason
// for the subsystems that matter.
func ParseUevent(msg []byte) (string, bool) {
	fields := bytes.Split(msg, []byte{0})
	if len(fields) == 0 {
		return "", false
	}
	action, devpath, _ := strings.Cut(string(fields[0]), "@")
	for _, f := range fields[1:] {
		if sub, ok := strings.CutPrefix(string(f), "SUBSYSTEM="); ok {
			if ueventSubsystems[sub] {
				return fmt.Sprintf("uevent %s %s %s", action, sub, devpath), true
			}
			return "", false
		}
	}
	return "", false
}
