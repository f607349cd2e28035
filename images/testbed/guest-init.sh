#!/bin/sh
# Guest init (Linux PV/PVH test frontends and Linux driver domains).
export PATH=/usr/local/bin:/usr/bin:/usr/sbin:/bin:/sbin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mkdir -p /dev/pts /run /tmp /var/log /var/run /var/lib/xen /run/xen /var/log/xen
mount -t devpts devpts /dev/pts
mount -t tmpfs tmpfs /run
mount -t tmpfs tmpfs /tmp

kver=$(uname -r)
# xdd.nomodules=1 leaves the frontends out (the harness self-test's guest that never connects).
grep -q 'xdd.nomodules=1' /proc/cmdline || while read -r m; do
    insmod "/lib/modules/$kver/$m" 2>/dev/null || echo "guest: insmod $m failed"
done < /etc/testbed/modules
[ -d /proc/xen ] && mount -t xenfs xenfs /proc/xen 2>/dev/null

# Settings from the kernel command line (xl.cfg extra=): xdd.name, xdd.ip, xdd.gw, xdd.dhcp,
# and the role's (a driver domain's xdd.bridge_ip, xdd.uplink): exported for the role script.
for arg in $(cat /proc/cmdline); do
    case "$arg" in
        xdd.*=*) k=${arg%%=*}; k=${k#xdd.}; eval "export XDD_$k=\"${arg#*=}\"" ;;
    esac
done
hostname "${XDD_name:-guest}"
for m in $(echo "$XDD_modules" | tr ',' ' '); do
    modprobe "$m" || echo "guest: modprobe $m failed"
done
ip link set lo up
if [ -n "$XDD_ip" ] || [ -n "$XDD_dhcp" ]; then
    for i in $(seq 1 100); do [ -d /sys/class/net/eth0 ] && break; sleep 0.1; done
    ip link set eth0 up
    if [ -n "$XDD_dhcp" ]; then
        udhcpc -i eth0 -s /etc/testbed/udhcpc.script -q -n -t 10 -T 2
    else
        ip addr add "$XDD_ip" dev eth0
        [ -n "$XDD_gw" ] && ip route add default via "$XDD_gw"
    fi
fi
testbed-agent mark booted
echo "guest: ${XDD_name:-guest} up at $(cut -d' ' -f1 /proc/uptime)s"
[ -x /etc/testbed/role ] && /etc/testbed/role
if [ -x /scenario.sh ]; then
    /scenario.sh
    echo "guest: scenario script finished ($?)"
fi
