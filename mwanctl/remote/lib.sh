# mwanctl router-side library (POSIX sh / busybox ash; only what OpenWrt ships).
# Prepended to every operation script. The caller defines MW_MARK (a random token that
# starts every protocol line) and the operation's MW_* arguments, all shell-quoted.
#
# State lives in /etc/mwanctl (flash, not /tmp): the pending dir is both the deploy lock
# (mkdir is atomic) and the snapshot of the files a deploy replaced. On flash it survives a
# reboot, so after a power cut during the confirm window `mwanctl rollback` can still restore
# the old files and the lock keeps a second deploy from stacking on an unconfirmed one.

MW_DIR=/etc/mwanctl
MW_LOCK=$MW_DIR/pending
MW_CONF=/etc/config
MW_USER_DELTA=/tmp/.uci

mw_say() { printf '%s %s\n' "$MW_MARK" "$*"; }

# mw_block NAME CMD...: CMD's output framed by markers; the end marker carries its exit code.
# The end marker always starts on a new line; the reader drops exactly that one newline.
mw_block() {
	_n=$1; shift
	mw_say "begin $_n"
	"$@"
	_rc=$?
	printf '\n%s end %s %s\n' "$MW_MARK" "$_n" "$_rc"
	return $_rc
}

mw_uptime() { read -r _up _idle < /proc/uptime; echo "${_up%%.*}"; }
mw_boot_id() { cat /proc/sys/kernel/random/boot_id 2>/dev/null || echo none; }

# Seconds left before the rollback timer fires; 0 when the router rebooted (timer gone).
# A file of the lock dir, or $2 when it is missing or empty (another apply may be writing it).
mw_lockval() { _v=$(cat "$MW_LOCK/$1" 2>/dev/null); echo "${_v:-$2}"; }

mw_left() {
	if [ "$(mw_lockval boot none)" = "$(mw_boot_id)" ]; then
		_d=$(mw_lockval deadline 0)
		echo $(( _d - $(mw_uptime) ))
	else
		echo 0
	fi
}

mw_timer_state() {
	_pid=$(cat "$MW_LOCK/pid" 2>/dev/null)
	if [ "$(cat "$MW_LOCK/boot" 2>/dev/null)" = "$(mw_boot_id)" ] && [ -n "$_pid" ] \
		&& kill -0 "$_pid" 2>/dev/null; then echo running; else echo gone; fi
}

# Report a pending deploy (if any): "<mark> pending <since> <left> <timer>" + an owner block.
mw_report_pending() {
	[ -d "$MW_LOCK" ] || return 1
	mw_say "pending $(mw_lockval since 0) $(mw_left) $(mw_timer_state)"
	mw_block owner cat "$MW_LOCK/owner" 2>/dev/null
	return 0
}

mw_md5() { _s=$(md5sum); echo "${_s%% *}"; }

# The user's own uncommitted changes (/tmp/.uci/<pkg>) are on libuci's delta path even with
# `-t <dir>`, so staging or committing would pick them up. Park them during our commit.
mw_park_user_delta() {  # $1 = dir
	mkdir -p "$1"
	for _p in $MW_PKGS; do
		[ -f "$MW_USER_DELTA/$_p" ] && mv "$MW_USER_DELTA/$_p" "$1/$_p"
	done
	return 0
}

mw_unpark_user_delta() {  # $1 = dir; changes made meanwhile are appended after the parked ones
	for _p in $MW_PKGS; do
		[ -f "$1/$_p" ] || continue
		[ -f "$MW_USER_DELTA/$_p" ] && cat "$MW_USER_DELTA/$_p" >> "$1/$_p"
		mkdir -p "$MW_USER_DELTA"
		mv -f "$1/$_p" "$MW_USER_DELTA/$_p"
	done
	return 0
}

# Put the snapshot back byte for byte (copy to a temp name, then rename over), reload the
# same services, restart the same interfaces, then release the lock. Used by the timer,
# by rollback, and by apply when a post-commit check fails.
mw_restore() {
	for _p in $(cat "$MW_LOCK/packages"); do
		if [ -f "$MW_LOCK/snap/$_p.absent" ]; then
			rm -f "$MW_CONF/$_p"
		else
			cp -p "$MW_LOCK/snap/$_p" "$MW_CONF/.$_p.mwanctl-restore" \
				&& mv -f "$MW_CONF/.$_p.mwanctl-restore" "$MW_CONF/$_p" || return 1
		fi
	done
	sync
	mw_restore_files "$1"
	if [ "$1" != boot ]; then  # at boot the services have not started yet: nothing to reload
		for _s in $(cat "$MW_LOCK/reload"); do
			[ -x "/etc/init.d/$_s" ] && "/etc/init.d/$_s" reload
		done
		for _i in $(cat "$MW_LOCK/ifaces"); do
			ubus call "network.interface.$_i" down
			ubus call "network.interface.$_i" up
		done
		# what reload does not see (peers, `list addresses`) goes back live the way it came
		for _i in $(cat "$MW_LOCK/renew" 2>/dev/null); do
			ubus call "network.interface.$_i" renew
		done
	fi
	echo "$(date +%s) $(cat "$MW_LOCK/owner" 2>/dev/null)" > "$MW_DIR/last-rollback"
	rm -rf "$MW_LOCK"
}

# The boot guard: the rollback timer does not survive a reboot, so a router restarted while a
# deploy awaits confirmation would keep the unconfirmed config forever. This init script
# (START=11, before network/firewall/mwan3) restores the snapshot at boot instead. It carries a
# copy of this library, so the restore at boot is the same code as the timer's.
mw_install_guard() {
	_g=/etc/init.d/mwanctl
	{
		echo '#!/bin/sh /etc/rc.common'
		echo '# Installed by mwanctl: restores the config of an unconfirmed deploy at boot.'
		echo 'START=11'
		echo 'boot() {'
		echo '	[ -d /etc/mwanctl/pending ] || return 0'
		echo '	. /etc/mwanctl/lib.sh && mw_restore boot'  # nothing else runs this early
		echo '}'
	} > "$_g.tmp" && chmod 755 "$_g.tmp" && mv -f "$_g.tmp" "$_g" || return 1
	printf '%s\n' "$MW_LIB" > "$MW_DIR/lib.sh.tmp" && mv -f "$MW_DIR/lib.sh.tmp" "$MW_DIR/lib.sh" || return 1
	mkdir -p /etc/rc.d && ln -sf ../init.d/mwanctl /etc/rc.d/S11mwanctl   # what `enable` does
}

# The files an apply installed or removed besides /etc/config (the handover tracker, see
# mw_files in apply.sh) go back as they were: an init script that goes or changes is stopped
# first, one that is back is started (not at boot: the boot sequence starts it).
mw_restore_files() {
	[ -f "$MW_LOCK/files/list" ] || return 0
	while read -r _n _f; do
		case "$_f" in /etc/init.d/*) [ "$1" != boot ] && [ -x "$_f" ] && "$_f" stop >/dev/null 2>&1 ;; esac
		rm -f "$_f"
		[ -f "$MW_LOCK/files/$_n.absent" ] || cp -a "$MW_LOCK/files/$_n" "$_f"
	done < "$MW_LOCK/files/list"
	[ "$1" = boot ] && return 0
	while read -r _n _f; do
		case "$_f" in /etc/init.d/*) [ -x "$_f" ] && "$_f" start >/dev/null 2>&1 ;; esac
	done < "$MW_LOCK/files/list"
	return 0
}

# Claim the pending deploy for exactly one of: timer, confirm, rollback (mkdir is atomic).
mw_claim() { mkdir "$MW_LOCK/claim" 2>/dev/null; }
