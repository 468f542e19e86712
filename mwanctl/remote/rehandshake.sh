# rehandshake: make this end start a new WireGuard session with each named peer now, instead of
# sending on a session the other end lost (a rebuilt device; WireGuard gives up on one only after
# ~15 s). One `wg set` removes the peer and adds it back with its live endpoint, allowed IPs,
# keepalive and preshared key: the session goes, nothing else changes, and with
# persistent_keepalive set the new peer sends a handshake initiation at once. Packets sent
# meanwhile wait in WireGuard's queue for the new session. Args: MW_PEERS ("iface:pubkey ...")
mw_readd() {  # $1 iface, $2 key
	_l=$(wg show "$1" dump | awk -v k="$2" 'BEGIN { FS = "\t" } NR > 1 && $1 == k { print; exit }')
	[ -n "$_l" ] || { echo "no peer ${2%"${2#????????}"}... on $1"; return 1; }
	_psk=$(printf '%s\n' "$_l" | cut -f2)
	_ep=$(printf '%s\n' "$_l" | cut -f3)
	_ips=$(printf '%s\n' "$_l" | cut -f4)
	_ka=$(printf '%s\n' "$_l" | cut -f8)
	set -- "$1" peer "$2" remove peer "$2"
	[ "$_ep" != "(none)" ] && set -- "$@" endpoint "$_ep"
	[ "$_ips" != "(none)" ] && set -- "$@" allowed-ips "$_ips"
	[ "$_ka" != "off" ] && set -- "$@" persistent-keepalive "$_ka"
	if [ "$_psk" != "(none)" ]; then
		printf '%s\n' "$_psk" | wg set "$@" preshared-key /dev/stdin
	else
		wg set "$@"
	fi
}
_failed=
for _e in $MW_PEERS; do
	mw_block "readd $_e" mw_readd "${_e%%:*}" "${_e#*:}" 2>&1 || _failed=1
done
[ -z "$_failed" ] && mw_say ok
