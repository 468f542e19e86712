# --- mwanctl's hook dispatcher (static part; the generated table above says which commands) -----
#
# hotplug-call runs every /etc/hotplug.d/iface/* script for every interface event, in name order,
# each in its own subshell: this file comes after mwan3's 15-mwan3 (which records the state mwan3
# balances by in $MW_HOOK_MWAN3/<iface>) and 16-mwan3-user (the user's own /etc/mwan3.user, which
# mwanctl never touches). One state change can arrive as several events (netifd's `ifup` and then
# mwan3track's first `connected`; `ifdown` and then mwan3track's `disconnected`), and a restart
# of mwan3 sends `disconnected` with MWAN3_SHUTDOWN=1 for every interface: the dispatcher keeps
# the last state it acted on per interface in $MW_HOOK_RUN and fires a state's commands only when
# the state differs from it, so each change runs them exactly once. After a boot (the record is
# on tmpfs) the first state counts as a change only when it is online.
#
# The commands are the user's own shell code: each runs as `sh -c <command>` with a clean
# environment (as /etc/mwan3.user gets it): ACTION, INTERFACE, DEVICE, plus MWANCTL_SITE,
# MWANCTL_UPLINK, MWANCTL_STATE (online|offline) and MWANCTL_FAMILY (ipv4|ipv6). They run one
# after another while this event is handled, so keep them short (`curl -m 5 …`), or end a long
# one with `&`.

mw_hook_log() { logger -t mwanctl-hooks -p "daemon.$1" "$2" 2>/dev/null; return 0; }

# The state that counts, as $_state: mwan3's own record where there is one (mother), else the
# event itself.
mw_hook_state() {
	_state=
	if [ "$MW_HOOK_MODE" = mwan3 ] && [ -r "$MW_HOOK_MWAN3/$INTERFACE" ]; then
		read -r _state < "$MW_HOOK_MWAN3/$INTERFACE" 2>/dev/null
	fi
	case "$_state" in
	online|offline) ;;
	*)
		case "$ACTION" in
		connected|ifup) _state=online ;;
		*) _state=offline ;;
		esac
		;;
	esac
}

# A lock directory, so events handled at the same time (netifd's hotplug and mwan3track call
# hotplug-call independently) cannot both see the old state; a holder that died is replaced.
mw_hook_lock() {
	_tries=0
	while ! mkdir "$MW_HOOK_RUN/lock" 2>/dev/null; do
		_holder=
		[ -r "$MW_HOOK_RUN/lock/pid" ] && read -r _holder < "$MW_HOOK_RUN/lock/pid"
		if [ -n "$_holder" ] && ! kill -0 "$_holder" 2>/dev/null; then
			rm -rf "$MW_HOOK_RUN/lock"
			continue
		fi
		_tries=$((_tries + 1))
		[ "$_tries" -ge 600 ] && return 1      # 60 s: the holder's commands hang
		sleep 0.1 2>/dev/null || sleep 1
	done
	echo "$$" > "$MW_HOOK_RUN/lock/pid"
}

mw_hook_exec() {
	env -i PATH="${PATH:-/usr/sbin:/usr/bin:/sbin:/bin}" ACTION="$ACTION" INTERFACE="$INTERFACE" \
		DEVICE="$DEVICE" MWANCTL_SITE="$MW_HOOK_SITE" MWANCTL_UPLINK="$MW_HOOK_UPLINK" \
		MWANCTL_STATE="$_state" MWANCTL_FAMILY="$MW_HOOK_FAMILY" sh -c "$1" < /dev/null
	_rc=$?
	[ "$_rc" -eq 0 ] || mw_hook_log warn "$INTERFACE $_state: a hook command exited $_rc"
	return 0
}

mw_hook_main() {
	case "$ACTION" in
	connected|disconnected|ifup|ifdown) ;;
	*) return 0 ;;                          # connecting, disconnecting, ifupdate, …
	esac
	[ "$MWAN3_SHUTDOWN" = 1 ] && return 0   # mwan3 stopping or restarting: no uplink changed
	mw_hook_iface "$INTERFACE" || return 0  # not an interface this site has hooks for
	mkdir -p "$MW_HOOK_RUN" 2>/dev/null || return 0
	mw_hook_lock || { mw_hook_log err "$INTERFACE: lock held for 60 s, $ACTION not handled"; return 0; }
	mw_hook_state
	_last=
	[ -r "$MW_HOOK_RUN/$INTERFACE" ] && read -r _last < "$MW_HOOK_RUN/$INTERFACE"
	if [ "$_state" != "$_last" ]; then
		echo "$_state" > "$MW_HOOK_RUN/$INTERFACE"
		# the first state known since boot is a change only to online: an interface that was
		# never online cannot go offline
		if [ -n "$_last" ] || [ "$_state" = online ]; then
			mw_hook_log notice "$INTERFACE is $_state ($ACTION): running its hooks"
			mw_hook_commands "$INTERFACE" "$_state"
		fi
	fi
	rm -rf "$MW_HOOK_RUN/lock"
	return 0
}

mw_hook_main
