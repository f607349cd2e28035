#!/bin/sh
# Role of a Linux driver domain: a bridge for the vifs it serves, then `xl devd`.
brctl addbr xenbr0
echo 0 > /sys/class/net/xenbr0/bridge/forward_delay
ip addr add "${XDD_bridge_ip:-10.0.1.1/24}" dev xenbr0
ip link set xenbr0 up
mkdir -p /var/run/xen /var/lib/xen /var/log/xen
xl devd -F >/var/log/xen/devd.log 2>&1 &
sleep 0.2
testbed-agent mark devd
# The readiness contract of xdd driver domains: data/ready=1 once backends can be served.
testbed-agent xs write data/ready 1
