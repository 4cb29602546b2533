package framework

import (
	"bufio"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// cgroupRoots are where the kubelet makes its kubepods hierarchy on a host
// with hybrid cgroups (every v1 controller plus the unified v2 tree).
func cgroupRoots() []string {
	var roots []string
	entries, _ := os.ReadDir("/sys/fs/cgroup")
	for _, e := range entries {
		roots = append(roots, filepath.Join("/sys/fs/cgroup", e.Name()))
	}
	return roots
}

// podCgroupDirs lists every kubepods cgroup directory, deepest first.
func podCgroupDirs() []string {
	var dirs []string
	for _, root := range cgroupRoots() {
		for _, top := range []string{"kubepods", "kubepods.slice"} {
			base := filepath.Join(root, top)
			_ = filepath.WalkDir(base, func(path string, d os.DirEntry, err error) error {
				if err == nil && d.IsDir() {
					dirs = append(dirs, path)
				}
				return nil
			})
		}
	}
	sort.Slice(dirs, func(i, j int) bool { return strings.Count(dirs[i], "/") > strings.Count(dirs[j], "/") })
	return dirs
}

// killPodProcesses kills every process left in a pod cgroup (containers whose
// kubelet and containerd are gone cannot be stopped any other way).
func killPodProcesses(logf func(string, ...any)) {
	for attempt := 0; attempt < 20; attempt++ {
		found := 0
		for _, d := range podCgroupDirs() {
			b, err := os.ReadFile(filepath.Join(d, "cgroup.procs"))
			if err != nil {
				continue
			}
			for _, f := range strings.Fields(string(b)) {
				if pid, err := strconv.Atoi(f); err == nil && pid > 1 {
					found++
					_ = syscall.Kill(pid, syscall.SIGKILL)
				}
			}
		}
		if found == 0 {
			return
		}
		if attempt == 0 {
			logf("killed %d leftover pod processes", found)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// killShims ends containerd shims started for the cluster in dir.
func killShims(dir string, logf func(string, ...any)) {
	for _, pid := range processesMentioning(dir) {
		logf("killing leftover process %d (a containerd shim or component)", pid)
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}
}

// componentNames are the programs a cluster runs; only these are ever
// killed by command line, so a shell or make that mentions the directory is
// left alone.
var componentNames = map[string]bool{
	"etcd": true, "kube-apiserver": true, "kube-controller-manager": true, "kube-scheduler": true,
	"kubelet": true, "containerd": true, "containerd-shim-runc-v2": true, "sriov-dra": true,
}

// processesMentioning lists cluster component PIDs whose command line contains s.
func processesMentioning(s string) []int {
	var pids []int
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil || !strings.Contains(string(b), s) {
			continue
		}
		argv0, _, _ := strings.Cut(string(b), "\x00")
		if componentNames[filepath.Base(argv0)] {
			pids = append(pids, pid)
		}
	}
	return pids
}

// mountsUnder lists mount points at or below dir, deepest first.
func mountsUnder(dir string) []string {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return nil
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 5 {
			continue
		}
		mp := unescapeMount(fields[4])
		if mp == dir || strings.HasPrefix(mp, dir+"/") {
			out = append(out, mp)
		}
	}
	sort.Slice(out, func(i, j int) bool { return len(out[i]) > len(out[j]) })
	return out
}

func unescapeMount(s string) string {
	return strings.NewReplacer(`\040`, " ", `\011`, "\t", `\012`, "\n", `\134`, `\`).Replace(s)
}

func unmountUnder(dir string, logf func(string, ...any)) {
	for i := 0; i < 5; i++ {
		mps := mountsUnder(dir)
		if len(mps) == 0 {
			return
		}
		for _, mp := range mps {
			if err := syscall.Unmount(mp, syscall.MNT_DETACH); err != nil {
				logf("unmount %s: %v", mp, err)
			}
		}
	}
}

func removePodCgroups(logf func(string, ...any)) {
	for _, d := range podCgroupDirs() {
		if err := os.Remove(d); err != nil && !os.IsNotExist(err) {
			logf("remove cgroup %s: %v", d, err)
		}
	}
}

// CleanupDir removes whatever a cluster whose state lived in dir left on
// the machine, even when the process that ran it was killed: pod processes,
// shims and components, mounts, pod cgroups, network devices, the directory.
func CleanupDir(dir string, logf func(string, ...any)) {
	killPodProcesses(logf)
	killShims(dir, logf)
	unmountUnder(dir, logf)
	removePodCgroups(logf)
	// Tests' own netdevs a killed test left, too.
	for _, dev := range append([]string{vethName, cniBridge}, testNetdevs()...) {
		if _, err := os.Stat("/sys/class/net/" + dev); err == nil {
			if out, err := exec.Command("ip", "link", "del", dev).CombinedOutput(); err != nil {
				logf("remove %s: %v: %s", dev, err, out)
			}
		}
	}
	// The kubelet's device-plugins directory is fixed (not under the
	// cluster's dir); sockets a killed driver left there are removed.
	socks, _ := filepath.Glob("/var/lib/kubelet/device-plugins/sriov.dra.dev-*.sock")
	for _, s := range socks {
		_ = os.Remove(s)
	}
	if err := os.RemoveAll(dir); err != nil {
		logf("remove %s: %v", dir, err)
	}
}

// testNetdevs are the netdevs tests made on the host (NetdevPrefix*).
func testNetdevs() []string {
	own, _ := filepath.Glob("/sys/class/net/" + NetdevPrefix + "*")
	for i := range own {
		own[i] = filepath.Base(own[i])
	}
	return own
}

// Leftovers describes anything a cluster in dir left on the machine:
// processes, mounts, pod cgroups, network devices. Empty means clean.
func Leftovers(dir string) []string {
	var out []string
	for _, pid := range processesMentioning(dir) {
		cmd, _ := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "cmdline"))
		out = append(out, "process "+strconv.Itoa(pid)+": "+strings.ReplaceAll(string(cmd), "\x00", " "))
	}
	for _, mp := range mountsUnder(dir) {
		out = append(out, "mount "+mp)
	}
	for _, d := range podCgroupDirs() {
		out = append(out, "cgroup "+d)
	}
	for _, dev := range append([]string{cniBridge, vethName, vethPeer}, testNetdevs()...) {
		if _, err := os.Stat("/sys/class/net/" + dev); err == nil {
			out = append(out, "network device "+dev)
		}
	}
	if _, err := os.Stat(dir); err == nil {
		out = append(out, "directory "+dir)
	}
	return out
}
