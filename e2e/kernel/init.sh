#!/bin/busybox sh
# /init of the kernel-tier VM: load the drivers, create VFs, run the tests,
# report on the console, power off.
/bin/busybox --install -s /bin
export PATH=/bin:/sbin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mount -t tmpfs tmpfs /tmp
mount -t tmpfs tmpfs /run
echo "INIT-UPTIME=$(cut -d' ' -f1 /proc/uptime)"
for m in $(cat /modules.order); do
	insmod /lib/modules/$m.ko || echo "insmod $m failed"
done
for pf in /sys/bus/pci/drivers/igb/0000:*; do
	ip link set "$(ls $pf/net)" up
	echo 4 > $pf/sriov_numvfs || echo "sriov_numvfs on $pf failed"
done
# Wait for the condition, not a time: every VF bound to igbvf with its
# netdev (two PFs x 4 VFs), for at most 20 s.
want=$(( $(ls -d /sys/bus/pci/drivers/igb/0000:* | wc -l) * 4 ))
for i in $(seq 1 200); do
	have=$(ls -d /sys/bus/pci/drivers/igbvf/0000:*/net/* 2>/dev/null | wc -l)
	[ "$have" -ge "$want" ] && break
	sleep 0.1
done
echo "VF-NETDEVS=$have/$want after $(cut -d' ' -f1 /proc/uptime)s"
# The virtio-net NIC is the guest's uplink: QEMU's user network (restricted:
# nothing leaves the VM) answers at 10.0.2.2.
for n in /sys/class/net/*; do
	[ "$(basename "$(readlink "$n/device/driver")")" = virtio_net ] && uplink=$(basename "$n")
done
ip link set "$uplink" up
ip addr add 10.0.2.15/24 dev "$uplink"
ip route add default via 10.0.2.2 dev "$uplink"
echo "UPLINK=$uplink"
echo "=== KERNEL TEST LOG BEGIN"
/bin/kernel.test -test.v -test.timeout 300s $(cat /test-args) 2>&1
rc=$?
echo "=== KERNEL TEST LOG END"
echo "KERNEL-TEST-EXIT=$rc"
poweroff -f
