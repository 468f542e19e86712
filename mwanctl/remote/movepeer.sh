# movepeer: `wg set` on the live device, no config change (the steps were built and checked by
# transports/base.py's move_peer_steps): the peer is created first, then takes the allowed IPs
# over from the peer holding them, so no packet meets a device without a running peer for its
# address; a peer named with `remove` goes after that. With MW_RENEW (key rotation on the
# mother) the interface is renewed right after (wireguard.sh's `wg syncconf` of the committed
# config, which now only drops the old peer), and the pending apply of MW_OWNER, which renewed
# nothing, is made to renew it on rollback too: that renew makes the device equal to the old
# config again, the moved peer included.
# netifd answers `renew` before it runs wireguard.sh's renew (proto-shell starts the handler as a
# process of its own), so with MW_KEY (the router's new public key) this waits until the device
# has taken it, then prints the port it listens on now (`wg syncconf` without ListenPort may take
# a new one): the caller must not bring the other end live on the old key or the old port.
# Args: MW_WG (the wg argument lists, one per step, separated by ";") MW_OWNER MW_RENEW (an interface, or empty) MW_KEY (or empty)
# MW_WAIT (seconds to wait for MW_KEY)
if [ -n "$MW_RENEW" ]; then
	[ -d "$MW_LOCK" ] && [ "$(mw_lockval owner '')" = "$MW_OWNER" ] || { mw_say "fail not-pending"; exit 0; }
	case " $(mw_lockval renew '') " in
		*" $MW_RENEW "*) ;;
		*) echo "$(mw_lockval renew '') $MW_RENEW" > "$MW_LOCK/renew" ;;
	esac
fi
_steps=$MW_WG
while [ -n "$_steps" ]; do
	_step=${_steps%%;*}
	case "$_steps" in *";"*) _steps=${_steps#*;} ;; *) _steps= ;; esac
	# shellcheck disable=SC2086
	mw_block "wg set" wg $_step 2>&1 || { mw_say "fail set"; exit 0; }
done
if [ -n "$MW_RENEW" ]; then
	mw_block "renew" ubus call "network.interface.$MW_RENEW" renew 2>&1 || { mw_say "fail renew"; exit 0; }
fi
if [ -n "$MW_RENEW" ] && [ -n "$MW_KEY" ]; then
	_end=$(( $(mw_uptime) + MW_WAIT ))
	while :; do   # one `wg show` a try: the device's own key and its port (peers show as "peer:")
		_show=$(wg show "$MW_RENEW" 2>/dev/null)
		case "$_show" in *"public key: $MW_KEY"*) break ;; esac
		[ "$(mw_uptime)" -ge "$_end" ] && { mw_say "fail renew-late"; exit 0; }
		sleep 0.05 2>/dev/null || sleep 1
	done
	mw_say ok "$(printf '%s\n' "$_show" | sed -n 's/^ *listening port: *//p')"
	exit 0
fi
mw_say ok
