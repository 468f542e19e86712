#!/bin/sh
# Install what mwanctl's tests need on a fresh Debian (12+) machine, as root:
# dropbear (OpenWrt's SSH server), busybox (OpenWrt's shell), WireGuard in user space,
# iproute2 for network namespaces, and a Python virtual environment with mwanctl in it.
set -eu
cd "$(dirname "$0")/.."
export DEBIAN_FRONTEND=noninteractive
if [ "$(id -u)" != 0 ]; then
	echo "setup-debian.sh: run as root (it installs Debian packages)" >&2
	exit 1
fi
apt-get update -qq
apt-get install -y -qq --no-install-recommends \
	python3 python3-venv python3-pip ca-certificates \
	dropbear-bin busybox wireguard-go wireguard-tools iproute2 iputils-ping procps util-linux \
	nftables conntrack openssl dnsmasq-base \
	chromium chromium-driver >/dev/null
[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/pip install -q --upgrade pip
.venv/bin/pip install -q -e '.[test,ssh,ubus,web]'
