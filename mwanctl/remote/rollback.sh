# rollback: restore the pending deploy's snapshot now (the timer, if alive, then finds no work).
# Nothing pending is an answer, not a failure: "none".
mw_rollback() {
	trap '' HUP PIPE
	[ -d "$MW_LOCK" ] || { mw_say "none"; return 0; }
	mw_claim || { mw_say "fail rolling_back"; return 1; }
	_pid=$(cat "$MW_LOCK/pid" 2>/dev/null)
	[ -n "$_pid" ] && kill "$_pid" 2>/dev/null
	mw_block restore mw_restore || { mw_say "fail restore"; return 1; }
	mw_say ok
}
mw_rollback
