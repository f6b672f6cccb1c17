#!/bin/sh
# octo %preun: on erase ($1 = 0) stop octod and its sockets; sessions and data stay
# (an rpm has no purge: remove /var/lib/octod and /var/lib/octo by hand, README).
if [ "$1" = 0 ] && [ -d /run/systemd/system ]; then
	systemctl stop octod.socket octod-admin.socket octod.service || true
	systemctl disable octod.socket octod-admin.socket octod.service >/dev/null 2>&1 || true
fi
exit 0
