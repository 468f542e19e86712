# set_drained: take an mwan3 interface out of (or back into) use without a config edit.
# Args: MW_IFACE MW_ACTION (ifdown|ifup)
mw_block "mwan3 $MW_ACTION" mwan3 "$MW_ACTION" "$MW_IFACE" 2>&1 && mw_say ok
