# apply: lock, snapshot, stage, verify, commit, arm the rollback timer, reload, restart, check.
# Args: MW_OWNER MW_PKGS MW_BATCH MW_EXPECT ("pkg:md5 ...") MW_TIMEOUT MW_RELOAD MW_IFACES
#       MW_RENEW (ifaces whose change reload does not see) MW_PEERS ("iface:pubkey ...")
#       MW_PEER_TRIES MW_PEER_PAUSE (base.py's peer-check policy)
#       MW_FILES MW_FILE_<n> MW_LINKS MW_REMOVE (see mw_files)
# The whole operation is one function, so the shell has read all of it before it starts, and
# HUP/PIPE are ignored: a connection lost mid-way (e.g. the reload cut it) does not stop it
# half-done; the armed timer then rolls back unless a later confirm arrives.

mw_take_lock() {
	mkdir -p "$MW_DIR" || return 1
	if ! mkdir "$MW_LOCK" 2>/dev/null; then
		# the holder may have just taken it: give it a moment to write who and when
		for _w in 1 2 3 4 5 6 7 8 9 10; do
			[ -s "$MW_LOCK/deadline" ] && break
			sleep 0.1 2>/dev/null || sleep 1
		done
		mw_say "locked"
		mw_report_pending
		return 1
	fi
	printf '%s\n' "$MW_OWNER" > "$MW_LOCK/owner"
	date +%s > "$MW_LOCK/since"
	echo $(( $(mw_uptime) + MW_TIMEOUT )) > "$MW_LOCK/deadline"
	mw_boot_id > "$MW_LOCK/boot"
	echo "$MW_PKGS" > "$MW_LOCK/packages"
	echo "$MW_RELOAD" > "$MW_LOCK/reload"
	echo "$MW_IFACES" > "$MW_LOCK/ifaces"
	echo "$MW_RENEW" > "$MW_LOCK/renew"
	# a token identifies this deploy to its timer (a pid alone may be reused)
	echo "$MW_MARK" > "$MW_LOCK/token"
}

mw_snapshot() {
	mkdir "$MW_LOCK/snap" || return 1
	for _p in $MW_PKGS; do
		if [ -f "$MW_CONF/$_p" ]; then
			cp -p "$MW_CONF/$_p" "$MW_LOCK/snap/$_p" || return 1
		else
			: > "$MW_LOCK/snap/$_p.absent"
		fi
	done
	sync
}

# Undo everything before the commit: nothing of ours stays on the router.
mw_unstage() {
	for _p in $MW_PKGS; do
		[ -f "$MW_LOCK/snap/$_p.absent" ] && rm -f "$MW_CONF/$_p"
	done
	mw_unpark_user_delta "$MW_STAGE/user"
	rm -rf "$MW_STAGE" "$MW_LOCK"
}

mw_stage_and_check() {
	MW_STAGE=$(mktemp -d /tmp/mwanctl-stage.XXXXXX) || return 1
	mkdir "$MW_STAGE/delta"
	mw_park_user_delta "$MW_STAGE/user"
	for _p in $MW_PKGS; do
		[ -f "$MW_CONF/$_p" ] || : > "$MW_CONF/$_p"  # uci cannot edit a missing package
	done
	printf '%s\n' "$MW_BATCH" | uci -t "$MW_STAGE/delta" batch > "$MW_STAGE/batch.out" 2>&1
	# uci batch exits 0 even when lines fail; it only prints why. mwanctl's batches print nothing
	# when every line works (lists are rebuilt with set + delete + add_list), so any output is a
	# failed line; whatever a line could still hide, the export comparison below catches.
	if [ -s "$MW_STAGE/batch.out" ]; then
		mw_say "batch_error"
		mw_block batch cat "$MW_STAGE/batch.out"
		return 1
	fi
	for _e in $MW_EXPECT; do
		_p=${_e%%:*}
		if [ "$(uci -t "$MW_STAGE/delta" export "$_p" 2>/dev/null | mw_md5)" != "${_e#*:}" ]; then
			mw_say "mismatch $_p"
			mw_block staged uci -t "$MW_STAGE/delta" export "$_p"
			mw_block batch cat "$MW_STAGE/batch.out"
			return 1
		fi
	done
}

mw_commit() {
	for _p in $MW_PKGS; do
		uci -t "$MW_STAGE/delta" commit "$_p" > "$MW_STAGE/commit.out" 2>&1 || {
			mw_block commit cat "$MW_STAGE/commit.out"; return 1; }
	done
	for _e in $MW_EXPECT; do  # what landed in /etc/config is what was verified
		_p=${_e%%:*}
		[ "$(uci -t "$MW_STAGE/delta" export "$_p" 2>/dev/null | mw_md5)" = "${_e#*:}" ] || {
			mw_say "mismatch $_p"; mw_block staged uci -t "$MW_STAGE/delta" export "$_p"; return 1; }
	done
	sync
}

# A detached process that restores the snapshot at the deadline unless confirm claimed it.
# While this apply is still reloading (its shell alive, "applying" present) the timer waits:
# the confirm window starts when the change is live, not when it was committed, so slow
# restarts cannot eat it (pitfalls: a 30 s window reverted valid changes). If the apply shell
# dies, the timer goes by the deadline alone.
mw_arm_timer() {
	echo $$ > "$MW_LOCK/applying"
	(
		trap '' HUP PIPE
		while :; do
			sleep 1
			[ "$(cat "$MW_LOCK/token" 2>/dev/null)" = "$MW_MARK" ] || exit 0
			_a=$(cat "$MW_LOCK/applying" 2>/dev/null)
			[ -n "$_a" ] && kill -0 "$_a" 2>/dev/null && continue
			[ "$(mw_uptime)" -ge "$(cat "$MW_LOCK/deadline" 2>/dev/null || echo 0)" ] && break
		done
		mw_claim || exit 0
		mw_restore
	) < /dev/null > /tmp/mwanctl-rollback.log 2>&1 &
	echo $! > "$MW_LOCK/pid"
}

# The change is live: the confirm window starts now.
mw_start_window() {
	echo $(( $(mw_uptime) + MW_TIMEOUT )) > "$MW_LOCK/deadline"
	rm -f "$MW_LOCK/applying"
}

mw_activate() {
	for _s in $MW_RELOAD; do
		mw_block "reload $_s" "/etc/init.d/$_s" reload || return 1
	done
	for _i in $MW_IFACES; do
		mw_block "ifdown $_i" ubus call "network.interface.$_i" down || return 1
		mw_block "ifup $_i" ubus call "network.interface.$_i" up || return 1
	done
	# wireguard.sh's renew: `wg syncconf` with the new config, same device, sessions kept
	for _i in $MW_RENEW; do
		mw_block "renew $_i" ubus call "network.interface.$_i" renew || return 1
	done
}

# Every expected peer must be live in the kernel, not just in the config (pitfalls: netifd
# does not apply peer-only changes on reload). netifd may need a moment after ifup.
mw_check_peers() {
	_tries=0
	while :; do
		_missing=
		# one `wg` call per try, however many tunnels: "iface:peer-key" per peer line of the dump
		_live=$(wg show all dump 2>/dev/null | awk 'BEGIN { FS = "\t" } NF == 9 { print $1 ":" $2 }')
		for _e in $MW_PEERS; do
			printf '%s\n' "$_live" | grep -qxF -- "$_e" || _missing="$_missing $_e"
		done
		[ -z "$_missing" ] && return 0
		_tries=$((_tries + 1))
		[ "$_tries" -ge "${MW_PEER_TRIES:-10}" ] && break  # the policy is base.py's PEER_CHECK_*
		sleep "${MW_PEER_PAUSE:-1}"
	done
	mw_say "missing_peers$_missing"
	return 1
}

# Files besides /etc/config (the handover tracker): MW_FILES "path ..." with their texts in
# MW_FILE_1, MW_FILE_2, ...; MW_LINKS "path:target ..."; MW_REMOVE "path ..." (init scripts among
# them are stopped first). Each path is snapshotted in the lock dir first, so the timer, rollback
# and the boot guard put it back with the config (mw_restore_files).
mw_files() {
	[ -n "$MW_FILES$MW_LINKS$MW_REMOVE" ] || return 0
	mkdir -p "$MW_LOCK/files" || return 1
	_n=0
	for _f in $MW_FILES ${MW_LINKS:+$(echo "$MW_LINKS" | sed 's/:[^ ]*//g')} $MW_REMOVE; do
		_n=$((_n + 1))
		if [ -e "$_f" ] || [ -L "$_f" ]; then cp -a "$_f" "$MW_LOCK/files/$_n" || return 1
		else : > "$MW_LOCK/files/$_n.absent"; fi
		echo "$_n $_f" >> "$MW_LOCK/files/list"
	done
	sync
	for _f in $MW_REMOVE; do
		case "$_f" in /etc/init.d/*) [ -x "$_f" ] && "$_f" stop >/dev/null 2>&1 ;; esac
		rm -f "$_f"
	done
	_n=0
	for _f in $MW_FILES; do
		_n=$((_n + 1))
		eval "_t=\$MW_FILE_$_n"
		mkdir -p "${_f%/*}" && printf '%s\n' "$_t" > "$_f.mwanctl-new" && chmod 755 "$_f.mwanctl-new" \
			&& mv -f "$_f.mwanctl-new" "$_f" || return 1
	done
	for _l in $MW_LINKS; do
		mkdir -p "$(dirname "${_l%%:*}")" && ln -sf "${_l#*:}" "${_l%%:*}" || return 1
	done
	sync
}

mw_apply() {
	trap '' HUP PIPE
	mw_take_lock || return 3
	mw_snapshot || { mw_say "fail snapshot"; rm -rf "$MW_LOCK"; return 1; }
	mw_install_guard || { mw_say "fail guard"; rm -rf "$MW_LOCK"; return 1; }
	if ! mw_stage_and_check; then
		mw_unstage
		mw_say "fail stage"
		return 1
	fi
	if ! mw_commit; then
		mw_unpark_user_delta "$MW_STAGE/user"
		rm -rf "$MW_STAGE"
		mw_claim; mw_restore > /dev/null 2>&1
		mw_say "fail commit"
		return 1
	fi
	mw_unpark_user_delta "$MW_STAGE/user"
	rm -rf "$MW_STAGE"
	if ! mw_files; then
		mw_claim; mw_restore > /dev/null 2>&1
		mw_say "fail files"
		return 1
	fi
	mw_arm_timer
	mw_say "armed $MW_TIMEOUT"
	if ! mw_activate; then
		mw_claim && mw_block rollback mw_restore
		mw_say "fail activate"
		return 1
	fi
	if ! mw_check_peers; then
		mw_claim && mw_block rollback mw_restore
		mw_say "fail peers"
		return 1
	fi
	mw_start_window
	mw_say ok
}
mw_apply
