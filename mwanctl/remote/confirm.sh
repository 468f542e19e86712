# confirm: disarm the timer, drop the snapshot, release the lock.
mw_confirm() {
	[ -d "$MW_LOCK" ] || { mw_say "fail nothing_pending"; return 1; }
	mw_claim || { mw_say "fail rolling_back"; return 1; }
	_pid=$(cat "$MW_LOCK/pid" 2>/dev/null)
	[ -n "$_pid" ] && kill "$_pid" 2>/dev/null
	rm -rf "$MW_LOCK"
	rm -f "$MW_DIR/last-rollback"
	mw_say ok
}
mw_confirm
