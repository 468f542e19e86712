# query: read-only probes, each framed by markers. Args: MW_PROBES
mw_probe() {
	case "$1" in
		mwan3_status) ubus call mwan3 status ;;
		# the private-key column of interface lines never leaves the router
		wg_dump) wg show all dump | awk 'BEGIN { FS = OFS = "\t" } NF == 5 { $2 = "(hidden)" } { print }' ;;
		wan_status) ubus call network.interface.wan status ;;
		uptime) cat /proc/uptime ;;
		epoch) date +%s ;;
		ip_addr) ip -o addr show ;;
		ip_link) ip -o link show ;;
		proto_handlers) ubus call network get_proto_handlers ;;
		iface_dump) ubus call network.interface dump ;;
		# mwanctl's handover tracker: its view of each uplink (see mwanctl/trackerview.py)
		# (its own variable names: mw_block keeps the block name in _n)
		tracker) for _tf in /var/run/mwanctl-track/*.state; do
				[ -f "$_tf" ] || continue; _tn=${_tf##*/}; echo "== ${_tn%.state}"; cat "$_tf"
			done ;;
		*) echo "unknown probe $1"; return 1 ;;
	esac
}
for _q in $MW_PROBES; do
	mw_block "probe $_q" mw_probe "$_q" 2>&1
done
mw_say done
