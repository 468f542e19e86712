# read_state: each package as committed in /etc/config, plus any pending deploy.
# The files are read directly, not with `uci export`: libuci always layers the user's
# uncommitted /tmp/.uci/<pkg> changes on top (even with -t), and a deploy never commits
# those; they are reported as "uncommitted" instead. Args: MW_PKGS
mw_read_state() {
	for _p in $MW_PKGS; do
		if [ -f "$MW_CONF/$_p" ]; then
			mw_block "pkg $_p" cat "$MW_CONF/$_p"
		else
			mw_say "absent $_p"
		fi
		[ -s "$MW_USER_DELTA/$_p" ] && mw_say "uncommitted $_p"
	done
	mw_report_pending
	[ -f "$MW_DIR/last-rollback" ] && mw_block last_rollback cat "$MW_DIR/last-rollback"
	mw_say done
}
mw_read_state
