# query: read-only probes, each framed by markers. Args: MW_PROBES

# centiseconds since boot (busybox has no sub-second clock; /proc/uptime has two decimals)
mw_cs() {
	read -r _u _x < /proc/uptime
	_u=${_u%.*}${_u#*.}
	_u=${_u#"${_u%%[!0]*}"}
	echo "${_u:-0}"
}

# DNS (mwanctl/dnsview.py parses it): the upstreams dnsmasq runs with (its generated config),
# mwan3's rules, and whether each upstream answers `nslookup -type=a openwrt.org <server>` within 3 s,
# asked from the mother itself so the query takes dnsmasq's path through mwan3.
mw_dns_probe() {
	_dc=
	for _f in /var/etc/dnsmasq.conf.*; do [ -f "$_f" ] && { _dc=$_f; break; }; done
	[ -n "$_dc" ] || { echo "no dnsmasq config"; return 1; }
	_ds=$(awk -F= '$1 == "server" && $2 !~ /^\// { sub(/#.*/, "", $2); print $2 }' "$_dc")
	for _s in $_ds; do echo "server $_s"; done
	if grep -qx no-resolv "$_dc"; then echo noresolv
	else
		_rf=$(awk -F= '$1 == "resolv-file" { print $2; exit }' "$_dc")
		[ -n "$_rf" ] && [ -f "$_rf" ] && _rs=$(awk '$1 == "nameserver" { print $2 }' "$_rf") && {
			for _s in $_rs; do echo "resolv $_s"; done; _ds="$_ds $_rs"; }
	fi
	uci -q show mwan3 | awk -F= '
		{ n = split($1, k, "."); v = $2; gsub(/\047/, "", v) }
		n == 2 && v == "rule" { r[++c] = k[2] }
		n == 3 && k[3] == "dest_ip" { d[k[2]] = v }
		n == 3 && k[3] == "use_policy" { p[k[2]] = v }
		END { for (i = 1; i <= c; i++) if (d[r[i]] != "") print "rule", r[i], d[r[i]], (p[r[i]] == "" ? "-" : p[r[i]]) }'
	_dd=$(mktemp -d /tmp/mwanctl-dns.XXXXXX) || return 1
	_t0=$(mw_cs) _i=0 _pids=
	for _s in $_ds; do
		_i=$((_i + 1))
		( if nslookup -type=a openwrt.org "$_s" > /dev/null 2>&1; then _r=ok; else _r=fail; fi
		  echo "$_s $_r $(( $(mw_cs) - _t0 ))" > "$_dd/$_i.t" && mv "$_dd/$_i.t" "$_dd/$_i" ) &
		_pids="$_pids $!"
	done
	while [ "$(ls "$_dd" | grep -vc '\.t$')" -lt "$_i" ] && [ $(( $(mw_cs) - _t0 )) -lt 300 ]; do
		sleep 0.1 2>/dev/null || sleep 1
	done
	_j=0
	for _s in $_ds; do
		_j=$((_j + 1))
		if [ -f "$_dd/$_j" ]; then read -r _a _r _c < "$_dd/$_j"; echo "answer $_s $_r $_c"
		else echo "answer $_s fail 300"; fi
	done
	for _p in $_pids; do kill "$_p" 2>/dev/null; done
	rm -rf "$_dd"
}

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
		dns) mw_dns_probe ;;
		*) echo "unknown probe $1"; return 1 ;;
	esac
}
for _q in $MW_PROBES; do
	mw_block "probe $_q" mw_probe "$_q" 2>&1
done
mw_say done
