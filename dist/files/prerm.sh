#!/bin/sh
set -e
if [ -d /run/systemd/system ] && { [ "$1" = remove ] || [ "$1" = 0 ]; }; then
    systemctl stop telegraf.service || true
    systemctl disable telegraf.service || true
fi
