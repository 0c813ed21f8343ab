#!/bin/sh
# As Telegraf's packages: the state and log folders, and on systemd the
# unit enabled and an agent that was running restarted on upgrade. The
# agent is not started on a fresh install: /etc/default/telegraf must be
# filled in first (MAILTICK_DC, the databases' addresses, the keys).
set -e
mkdir -p /etc/telegraf/telegraf.d /var/log/telegraf /var/lib/telegraf/maillog /var/lib/telegraf/spool
chown -R telegraf:telegraf /var/log/telegraf /var/lib/telegraf
chmod 750 /var/lib/telegraf
chown root:telegraf /etc/default/telegraf
chmod 640 /etc/default/telegraf
if [ -d /run/systemd/system ]; then
    systemctl daemon-reload || true
    systemctl enable telegraf.service || true
    systemctl try-restart telegraf.service || true
fi
