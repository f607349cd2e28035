#!/bin/sh
# dom0 init of the testbed: brings up the Xen toolstack, then runs the scenario plan.
export PATH=/usr/local/bin:/usr/bin:/usr/sbin:/bin:/sbin:/usr/lib/xen/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mkdir -p /dev/pts /dev/shm
mount -t devpts devpts /dev/pts
mount -t tmpfs tmpfs /run
mount -t tmpfs tmpfs /tmp
mkdir -p /run/xen /run/xenstored /run/lock /var/lib/xen /var/lib/xenstored /var/log/xen/console \
    /var/lib/testbed
ln -sf /run /var/run
hostname dom0
echo "@@XDD boot stage=dom0-init uptime=$(cut -d' ' -f1 /proc/uptime)"

kver=$(uname -r)
# The kernel command line's `module.param=value` words for module $1, as modprobe would pass
# them (insmod does not): xen-pciback.hide= must reach xen-pciback, so that it takes the
# passed-through devices before virtio_pci could bind them.
params() {
    for a in $(cat /proc/cmdline); do
        case "$a" in
            *.*=*) [ "$(echo "${a%%.*}" | tr - _)" = "$1" ] && echo "${a#*.}" ;;
        esac
    done
}
while read -r m; do
    insmod "/lib/modules/$kver/$m" $(params "$(basename "$m" .ko | tr - _)") ||
        echo "@@XDD warn module=$m insmod-failed"
done < /etc/testbed/modules

mount -t xenfs xenfs /proc/xen
xenstored --pid-file /run/xenstored.pid || echo "@@XDD error xenstored-failed"
xen-init-dom0 >/var/log/xen/init-dom0.log 2>&1 || echo "@@XDD error xen-init-dom0-failed"
xenconsoled --pid-file=/run/xenconsoled.pid --log=guest --log-dir=/var/log/xen/console

brctl addbr xenbr0
echo 0 > /sys/class/net/xenbr0/bridge/forward_delay
ip addr add 10.0.0.1/24 dev xenbr0
ip link set xenbr0 up
# A NIC of dom0's own (QEMU device virtio-net-dom0; the others are hidden from dom0) goes into
# xenbr1 with no address: guests with vif=['bridge=xenbr1'] are on its segment, the path of a
# classic Xen host.
if [ -d /sys/class/net/eth0 ]; then
    brctl addbr xenbr1
    echo 0 > /sys/class/net/xenbr1/bridge/forward_delay
    brctl addif xenbr1 eth0
    ip link set eth0 up
    ip link set xenbr1 up
fi
ip link set lo up
echo "@@XDD boot stage=toolstack-up uptime=$(cut -d' ' -f1 /proc/uptime)"

testbed-agent run /testbed/plan
status=$?
echo "@@XDD done status=$status"
sync
poweroff -f
