#!/bin/sh
# As Telegraf's packages: the state and log folders, and on systemd the
# unit enabled on a fresh install (an upgrade keeps the operator's choice)
# and an agent that was running restarted. The agent is not started on a
# fresh install: /etc/default/telegraf must be filled in first.
#
# Replacing Telegraf's own package, its removal scripts delete
# /etc/default/telegraf and the unit after ours were unpacked: both are
# put back from the package's copies (rpm runs this again as %posttrans,
# after the replaced package's %postun).
set -e
[ -f /lib/systemd/system/telegraf.service ] || cp /usr/share/mailtick/telegraf.service /lib/systemd/system/telegraf.service
[ -f /etc/default/telegraf ] || cp /usr/share/mailtick/default.env /etc/default/telegraf
mkdir -p /etc/telegraf/telegraf.d /var/log/telegraf /var/lib/telegraf/maillog /var/lib/telegraf/spool
chown -R telegraf:telegraf /var/log/telegraf /var/lib/telegraf
chmod 750 /var/lib/telegraf
chown root:telegraf /etc/default/telegraf
chmod 640 /etc/default/telegraf
if [ -d /run/systemd/system ]; then
    systemctl daemon-reload || true
    # deb: "configure" with no old version; rpm: 1 installed.
    if { [ "$1" = configure ] && [ -z "${2:-}" ]; } || [ "$1" = 1 ]; then
        systemctl enable telegraf.service || true
    fi
    systemctl try-restart telegraf.service || true
fi
