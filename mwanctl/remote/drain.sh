# set_drained: take an mwan3 interface out of (or back into) use without a config edit.
# Args: MW_IFACE MW_ACTION (ifdown|ifup) MW_FORGET (addresses whose conntrack entries to delete)
mw_forget() {
	# Flows already on the drained interface are pinned to it by conntrack; deleting their
	# entries makes their next packet take another uplink. Prefer the conntrack tool; OpenWrt's
	# kernel also deletes by address when one is written to /proc/net/nf_conntrack.
	for _a in $MW_FORGET; do
		if command -v conntrack >/dev/null 2>&1; then
			conntrack -D --reply-dst "$_a" >/dev/null 2>&1
			conntrack -D --orig-src "$_a" >/dev/null 2>&1
		elif [ -w /proc/net/nf_conntrack ]; then
			echo "$_a" > /proc/net/nf_conntrack 2>/dev/null
		fi
	done
	return 0
}
mw_block "mwan3 $MW_ACTION" mwan3 "$MW_ACTION" "$MW_IFACE" 2>&1 || exit 0
[ "$MW_ACTION" = ifdown ] && mw_forget
mw_say ok
