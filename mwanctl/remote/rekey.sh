# rekey: key rotation on an uplink. Its new keys were committed by an apply that armed the rollback
# but made nothing live (the mother takes its new keys first, live, and from then on holds what it
# sends into the tunnel); now netifd rebuilds the tunnel with them (network reload: private_key is a
# parameter wireguard.sh declares), and the uplink starts the handshake itself: its new peer entry
# (the mother's new key) has no endpoint, an uplink learns it from handshakes, and the mother's own
# first try was refused by the old keys and is retried only after ~5 s. So the endpoint is set live
# and persistent keepalive switched on, which makes WireGuard send at once; when the handshake is
# there keepalive goes back to the configured value.
# Args: MW_OWNER MW_IFACE MW_PEER MW_ENDPOINT (host:port, may be empty) MW_KEEPALIVE (0 = off)
[ -d "$MW_LOCK" ] && [ "$(mw_lockval owner '')" = "$MW_OWNER" ] || { mw_say "fail not-pending"; exit 0; }
# the rollback must now rebuild the tunnel too (the apply recorded no reload)
case " $(mw_lockval reload '') " in
	*" network "*) ;;
	*) echo "$(mw_lockval reload '') network" > "$MW_LOCK/reload" ;;
esac
mw_block "reload network" /etc/init.d/network reload 2>&1 || { mw_say "fail reload"; exit 0; }
_n=0
until wg show "$MW_IFACE" peers 2>/dev/null | grep -qxF -- "$MW_PEER"; do
	_n=$((_n + 1))
	[ "$_n" -ge 100 ] && { mw_say "fail peer"; exit 0; }
	sleep 0.1 2>/dev/null || sleep 1
done
[ -n "$MW_ENDPOINT" ] || { mw_say ok; exit 0; }
mw_block "wg set" wg set "$MW_IFACE" peer "$MW_PEER" endpoint "$MW_ENDPOINT" persistent-keepalive 25 2>&1 \
	|| { mw_say "fail set"; exit 0; }
_n=0
while [ "$_n" -lt 50 ]; do
	_hs=$(wg show "$MW_IFACE" latest-handshakes 2>/dev/null | awk -v k="$MW_PEER" '$1 == k { print $2 }')
	[ -n "$_hs" ] && [ "$_hs" != 0 ] && break
	sleep 0.1 2>/dev/null || sleep 1
	_n=$((_n + 1))
done
mw_block "wg keepalive" wg set "$MW_IFACE" peer "$MW_PEER" persistent-keepalive "$MW_KEEPALIVE" 2>&1 \
	|| { mw_say "fail keepalive"; exit 0; }
[ -n "$_hs" ] && [ "$_hs" != 0 ] && mw_say ok || mw_say timeout
