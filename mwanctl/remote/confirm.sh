# confirm: keep the pending deploy whose token is MW_TOKEN (any pending one when MW_TOKEN is
# empty): stop its timer, drop the snapshot, release the lock. Args: MW_TOKEN
# A confirm after the deadline is refused: the change is rolled back now, exactly as the timer
# would (it may have died, or not have woken yet), so the answer is always what the router is on.
mw_confirm() {
	trap '' HUP PIPE
	[ -d "$MW_LOCK" ] || { mw_say "fail nothing_pending"; return 1; }
	if [ -n "$MW_TOKEN" ] && [ "$(mw_lockval token '')" != "$MW_TOKEN" ]; then
		mw_say "fail other"
		mw_report_pending
		return 1
	fi
	mw_claim || { mw_say "fail rolling_back"; return 1; }
	_pid=$(cat "$MW_LOCK/pid" 2>/dev/null)
	_a=$(cat "$MW_LOCK/applying" 2>/dev/null)
	if ! { [ -n "$_a" ] && kill -0 "$_a" 2>/dev/null; } && [ "$(mw_left)" -le 0 ]; then
		[ -n "$_pid" ] && kill "$_pid" 2>/dev/null
		mw_block restore mw_restore
		mw_say "fail expired"
		return 1
	fi
	[ -n "$_pid" ] && kill "$_pid" 2>/dev/null
	rm -rf "$MW_LOCK"
	rm -f "$MW_DIR/last-rollback"
	mw_say ok
}
mw_confirm
