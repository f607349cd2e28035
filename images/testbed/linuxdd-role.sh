#!/bin/sh
# Role of a Linux driver domain: a bridge for the vifs it serves, then `xl devd`.
brctl addbr xenbr0
echo 0 > /sys/class/net/xenbr0/bridge/forward_delay
ip addr add "${XDD_bridge_ip:-10.0.1.1/24}" dev xenbr0
ip link set xenbr0 up
# xdd.uplink=eth0: a NIC of its own (passed through; xdd.modules=xen-pcifront,virtio_pci,virtio_net)
# joins the bridge, so the vifs' guests are on the NIC's segment (DHCP from its network).
if [ -n "$XDD_uplink" ]; then
    for i in $(seq 1 100); do [ -d "/sys/class/net/$XDD_uplink" ] && break; sleep 0.1; done
    ip link set "$XDD_uplink" up
    brctl addif xenbr0 "$XDD_uplink" || echo "linuxdd: no uplink $XDD_uplink"
fi
mkdir -p /var/run/xen /var/lib/xen /var/log/xen
xl devd -F >/var/log/xen/devd.log 2>&1 &
sleep 0.2
testbed-agent mark devd
# The readiness contract of xdd driver domains: data/ready=1 once backends can be served.
testbed-agent xs write data/ready 1
