# rehandshake: make this end start a new WireGuard session with each named peer now, instead of
# sending on a session the other end lost (a rebuilt device; WireGuard gives up on it only after
# ~15 s). The peer is removed and netifd's renew puts it back from the config (wg syncconf); with
# persistent_keepalive set, the re-added peer sends a handshake initiation at once.
# Args: MW_PEERS ("iface:pubkey ...")
_ifs=
for _e in $MW_PEERS; do
	_i=${_e%%:*}
	mw_block "remove $_e" wg set "$_i" peer "${_e#*:}" remove 2>&1
	case " $_ifs " in *" $_i "*) ;; *) _ifs="$_ifs $_i" ;; esac
done
for _i in $_ifs; do
	mw_block "renew $_i" ubus call "network.interface.$_i" renew 2>&1 || { mw_say "fail renew $_i"; exit 1; }
done
mw_say ok
