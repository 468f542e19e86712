# query: read-only probes, each framed by markers. Args: MW_PROBES
mw_probe() {
	case "$1" in
		mwan3_status) ubus call mwan3 status ;;
		# the private-key column of interface lines never leaves the router
		wg_dump) wg show all dump | awk 'BEGIN { FS = OFS = "\t" } NF == 5 { $2 = "(hidden)" } { print }' ;;
		wan_status) ubus call network.interface.wan status ;;
		uptime) cat /proc/uptime ;;
		epoch) date +%s ;;
		# mwanctl's handover tracker: its view of each uplink (see mwanctl/trackerview.py)
		tracker) for _f in /var/run/mwanctl-track/*.state; do
				[ -f "$_f" ] || continue; _n=${_f##*/}; echo "== ${_n%.state}"; cat "$_f"
			done ;;
		*) echo "unknown probe $1"; return 1 ;;
	esac
}
for _q in $MW_PROBES; do
	mw_block "probe $_q" mw_probe "$_q" 2>&1
done
mw_say done
