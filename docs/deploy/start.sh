#!/bin/sh
# Starts the five adapters, then the gateway, from the directory holding their configuration
# (logs in ./log, process ids in ./run), each after `kinfold check` has passed. In production
# give each `kinfold …` line below to your service manager (systemd or similar) instead.
set -eu
AGENCIES="midwifery ae gp health-visiting school-nursing"
mkdir -p log run
# check CONFIG [AGENCY]: tries for up to 30 seconds (the services it asks may be starting),
# then prints what is wrong and stops.
check() {
  tries=0
  until kinfold check --config "$1" ${2:+--agency "$2"} > log/check.log 2>&1; do
    tries=$((tries + 1))
    if [ "$tries" -ge 30 ]; then cat log/check.log; exit 1; fi
    sleep 1
  done
}
for agency in $AGENCIES; do
  kinfold adapter --agency "$agency" --config "$agency.toml" >> "log/$agency.log" 2>&1 &
  echo $! > "run/$agency.pid"
done
check gateway.toml                  # every adapter answers the gateway over mutual TLS
kinfold gateway --config gateway.toml >> log/gateway.log 2>&1 &
echo $! > run/gateway.pid
for agency in $AGENCIES; do
  check "$agency.toml" "$agency"    # and the gateway answers each adapter's outbox
done
echo "Started: the gateway and $AGENCIES (logs in $(pwd)/log)."
