#!/bin/sh
# octo %post: the octo user and group, its subordinate ids, directories, linger. $1 is 1 on
# install, 2 on upgrade (octod is restarted in %postun, after the old files are gone).
# Subordinate ids for the containers' user namespaces (UserNS=auto takes 1024 per session):
# 10,485,760 ids, about 10,000 sessions, after every range already assigned, so no two
# users share ids. An existing range for octo is kept as the administrator left it.
SUBID_COUNT=10485760
assign_subids() {
	file=$1
	option=$2
	if [ -f "$file" ] && grep -q '^octo:' "$file"; then
		return 0
	fi
	start=$(awk -F: 'BEGIN { end = 100000 }
		NF >= 3 && $2 ~ /^[0-9]+$/ && $3 ~ /^[0-9]+$/ { if ($2 + $3 > end) end = $2 + $3 }
		END { printf "%.0f", end }' "$file" 2>/dev/null || echo 100000)
	[ -n "$start" ] || start=100000
	usermod "$option" "$start-$((start + SUBID_COUNT - 1))" octo
}

systemd-sysusers octo.conf
touch /etc/subuid /etc/subgid
assign_subids /etc/subuid --add-subuids
assign_subids /etc/subgid --add-subgids
systemd-tmpfiles --create octo.conf
if [ -d /run/systemd/system ]; then
	systemctl daemon-reload
	# logind may refuse (seen in a container: EUNATCH) after writing the linger file;
	# then start the manager directly.
	loginctl enable-linger octo 2>/dev/null ||
		systemctl start "user@$(id -u octo).service" || true
fi
# octod's HTTP socket moved from TCP to /run/octod/http.sock (Caddy's group only).
/usr/libexec/octo/migrate-http-socket
exit 0
