#!/bin/sh
# Stops the services start.sh started (or only those named: sh stop.sh ae) with SIGTERM, and
# waits until each has finished the requests it was answering and logged its stop.
set -eu
for name in ${*:-gateway midwifery ae gp health-visiting school-nursing}; do
  [ -f "run/$name.pid" ] || continue
  pid=$(cat "run/$name.pid")
  kill "$pid" 2>/dev/null || true
  while kill -0 "$pid" 2>/dev/null; do sleep 0.2; done
  rm "run/$name.pid"
done
