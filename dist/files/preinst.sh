#!/bin/sh
# The user and group of Telegraf's own packages (its scripts/deb/pre-install.sh).
set -e
if ! getent group telegraf >/dev/null; then
    groupadd -r telegraf
fi
if ! id telegraf >/dev/null 2>&1; then
    useradd -r -M telegraf -s /bin/false -d /etc/telegraf -g telegraf
fi
