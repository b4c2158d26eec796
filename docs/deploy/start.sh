#!/bin/sh
# Starts the services from the directory holding their configuration (logs in ./log, process
# ids in ./run), each after `kinfold check` has passed: all of them (the adapters, then the
# gateway), or only those named (sh start.sh ae). A service already running is left as it is.
# In production give each `kinfold …` line below to your service manager (systemd or
# similar) instead; the services stop cleanly on SIGTERM or SIGINT.
set -eu
ADAPTERS="midwifery ae gp health-visiting school-nursing"
HERE=$(pwd)
mkdir -p log run
running() { [ -f "run/$1.pid" ] && kill -0 "$(cat "run/$1.pid")" 2>/dev/null; }
# check NAME: `kinfold check` of that service, tried for up to 30 seconds (the services it
# asks may be starting); then prints what is wrong and stops.
check() {
  if [ "$1" = gateway ]; then agency=""; else agency="--agency $1"; fi
  tries=0
  until kinfold check --config "$HERE/$1.toml" $agency > "log/check-$1.log" 2>&1; do
    tries=$((tries + 1))
    if [ "$tries" -ge 30 ]; then cat "log/check-$1.log"; exit 1; fi
    sleep 1
  done
}
# launch NAME: starts one service in the background.
launch() {
  if running "$1"; then echo "$1 is already running"; return; fi
  if [ "$1" = gateway ]; then
    kinfold gateway --config "$HERE/gateway.toml" >> log/gateway.log 2>&1 &
  else
    kinfold adapter --agency "$1" --config "$HERE/$1.toml" >> "log/$1.log" 2>&1 &
  fi
  echo $! > "run/$1.pid"
}
if [ $# -gt 0 ]; then
  for name in "$@"; do launch "$name"; check "$name"; done
  echo "Started: $*."
  exit 0
fi
for agency in $ADAPTERS; do launch "$agency"; done
check gateway                   # every adapter answers the gateway over mutual TLS
launch gateway
for agency in $ADAPTERS; do
  check "$agency"               # and the gateway answers each adapter's outbox
done
echo "Started: the gateway and $ADAPTERS (logs in $HERE/log)."
