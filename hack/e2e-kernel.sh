#!/usr/bin/env bash
# make e2e-kernel: boots a Debian 6.12 kernel under QEMU (TCG) with two
# emulated Intel 82576 NICs (QEMU's igb), whose real igb/igbvf drivers create
# real VFs behind a real (emulated) IOMMU, and runs the kernel-tier tests
# (e2e/kernel) inside against /sys. The exit code is the tests' verdict; the
# guest console and test log are kept in _output/kernel-artifacts. A
# virtio-net NIC carries the guest's default route: the uplink discovery must
# never offer.
# Arguments are passed to the test binary (e.g. -test.run Discovery).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
out=$root/_output
kdir=$out/kernel
art=$out/kernel-artifacts
mkdir -p "$kdir" "$art"
log() { printf '[e2e-kernel] %s\n' "$*" >&2; }
fail() { log "FAIL: $*"; exit 1; }

# QEMU 7.2 in bookworm has no igb device: QEMU 10 comes from bookworm-backports.
ensure_packages() {
	local have_igb=0
	if command -v qemu-system-x86_64 >/dev/null && qemu-system-x86_64 -device help 2>/dev/null | grep -q '"igb"'; then
		have_igb=1
	fi
	if [ $have_igb = 0 ] || ! command -v cpio >/dev/null || ! command -v depmod >/dev/null || ! command -v busybox >/dev/null; then
		[ "$(id -u)" = 0 ] || fail "need root to install qemu-system-x86 (bookworm-backports), kmod, cpio, busybox-static"
		if ! grep -rqs bookworm-backports /etc/apt/sources.list /etc/apt/sources.list.d/; then
			log "adding the bookworm-backports suite"
			printf 'Types: deb\nURIs: http://deb.debian.org/debian\nSuites: bookworm-backports\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n' \
				>/etc/apt/sources.list.d/bookworm-backports.sources
		fi
		export DEBIAN_FRONTEND=noninteractive
		apt-get update -qq || fail "apt-get update failed"
		apt-get install -y -qq --no-install-recommends cpio busybox-static xz-utils >/dev/null || fail "install cpio busybox-static xz-utils"
		apt-get install -y -qq --no-install-recommends -t bookworm-backports qemu-system-x86 kmod >/dev/null ||
			fail "qemu-system-x86 from bookworm-backports is needed (the igb device is new in QEMU 8); is the backports suite reachable?"
		qemu-system-x86_64 -device help 2>/dev/null | grep -q '"igb"' || fail "installed QEMU has no igb device"
	fi
}

# The kernel: the newest linux-image-6.12.*+deb12-amd64 from backports,
# unpacked (never installed), cached under _output/kernel.
ensure_kernel() {
	if ls "$kdir"/root/boot/vmlinuz-* >/dev/null 2>&1; then return; fi
	local pkg
	pkg=$(apt-cache search --names-only '^linux-image-6\.12\.[0-9]+\+deb12-amd64$' | sort -V | tail -1 | cut -d' ' -f1)
	[ -n "$pkg" ] || fail "no linux-image-6.12.*+deb12-amd64 in apt (bookworm-backports missing?)"
	log "fetching $pkg"
	(cd "$kdir" && rm -f ./*.deb && apt-get download "$pkg" >/dev/null 2>&1) || fail "apt-get download $pkg"
	rm -rf "$kdir/root.tmp" && mkdir -p "$kdir/root.tmp"
	dpkg -x "$kdir"/*.deb "$kdir/root.tmp"
	depmod -b "$kdir/root.tmp" "$(ls "$kdir/root.tmp/lib/modules")"
	mv "$kdir/root.tmp" "$kdir/root"
}

build_initramfs() {
	local ver ird=$kdir/initramfs
	ver=$(ls "$kdir/root/lib/modules")
	rm -rf "$ird" && mkdir -p "$ird"/{bin,sbin,proc,sys,dev,tmp,lib/modules,run}
	cp "$(command -v busybox)" "$ird/bin/busybox"
	log "building static sriov-dra and the kernel-tier test binary"
	(cd "$root" && CGO_ENABLED=0 go build -o "$ird/bin/sriov-dra" ./cmd/sriov-dra)
	(cd "$root" && CGO_ENABLED=0 go test -c -tags kernel -o "$ird/bin/kernel.test" ./e2e/kernel)
	: >"$ird/modules.order"
	for m in igb igbvf vfio-pci vfio_iommu_type1 virtio_net bonding; do
		modprobe -d "$kdir/root" -S "$ver" --show-depends "$m" | awk '$1 == "insmod" {print $2}'
	done | awk '!seen[$0]++' | while read -r ko; do
		local name
		name=$(basename "$ko" .ko.xz)
		xz -dc "$ko" >"$ird/lib/modules/$name.ko"
		echo "$name" >>"$ird/modules.order"
	done
	# iproute2's ip (busybox's shows no VF settings and knows no netns),
	# with the libraries it links, as /usr/sbin/ip.
	command -v /usr/sbin/ip >/dev/null || fail "iproute2 is needed (apt-get install iproute2)"
	mkdir -p "$ird/usr/sbin"
	cp /usr/sbin/ip "$ird/usr/sbin/ip"
	ldd /usr/sbin/ip | grep -o '/[^ ]*' | while read -r lib; do
		mkdir -p "$ird$(dirname "$lib")"
		cp -L "$lib" "$ird$lib"
	done
	cp "$root/e2e/kernel/init.sh" "$ird/init"
	chmod +x "$ird/init"
	printf '%s\n' "$@" >"$ird/test-args"
	(cd "$ird" && find . | cpio -o -H newc --quiet | gzip -1) >"$kdir/initramfs.cpio.gz"
}

run_vm() {
	local ver console=$art/console.log
	ver=$(ls "$kdir/root/lib/modules")
	log "booting $ver under QEMU (TCG), two igb NICs and a virtio-net uplink"
	local start=$SECONDS
	timeout 600 qemu-system-x86_64 -machine q35 -accel tcg -cpu max -m 1024 -smp 2 -nographic -no-reboot \
		-kernel "$kdir/root/boot/vmlinuz-$ver" -initrd "$kdir/initramfs.cpio.gz" \
		-append "console=ttyS0 intel_iommu=on no_timer_check panic=-1 quiet" \
		-device intel-iommu,intremap=on,eim=on,caching-mode=on \
		-device pcie-root-port,id=rp1,chassis=1,slot=1 -device pcie-root-port,id=rp2,chassis=2,slot=2 \
		-netdev user,id=n1,restrict=on,ipv6=off -device igb,bus=rp1,netdev=n1 \
		-netdev user,id=n2,restrict=on,ipv6=off -device igb,bus=rp2,netdev=n2 \
		-netdev user,id=n0,restrict=on,ipv6=off -device virtio-net-pci,netdev=n0 \
		</dev/null >"$console" 2>&1 || true
	log "VM ran $((SECONDS - start))s"
	sed -n '/^=== KERNEL TEST LOG BEGIN/,/^=== KERNEL TEST LOG END/p' "$console" >"$art/test.log"
	local rc
	rc=$(sed -n 's/^KERNEL-TEST-EXIT=\([0-9]*\).*/\1/p' "$console" | tail -1)
	[ -n "$rc" ] || { tail -40 "$console" >&2; fail "the VM did not report a result (console: $console)"; }
	cat "$art/test.log"
	log "boot to /init: $(grep -o 'INIT-UPTIME=[0-9.]*' "$console" | cut -d= -f2)s; tests exit $rc"
	return "$rc"
}

total=$SECONDS
ensure_packages
ensure_kernel
build_initramfs "$@"
rc=0
run_vm || rc=$?
log "total $((SECONDS - total))s, exit $rc (artifacts: $art)"
exit $rc
