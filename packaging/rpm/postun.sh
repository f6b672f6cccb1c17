#!/bin/sh
# octo %postun: on upgrade ($1 >= 1) restart octod only; the sessions are units of the octo
# user's manager and keep running.
if [ -d /run/systemd/system ]; then
	systemctl daemon-reload || true
	if [ "$1" -ge 1 ]; then
		systemctl try-restart octod.service || true
	fi
fi
exit 0
