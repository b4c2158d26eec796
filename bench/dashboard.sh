#!/usr/bin/env bash
# The dashboard's pages, timed (issue 24): writes the dashboard section of BENCHMARKS.md
# (between its markers; the other scripts keep it as it is).
#
#   bash bench/dashboard.sh
#
# Runs crates/kinfold/benches/dashboard.rs (release) against a fresh demo.
set -euo pipefail
cd "$(dirname "$0")/.."

rows=$(cargo bench -q -p kinfold --bench dashboard 2>/dev/null | grep '^|')
cpu=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//')
section=$(cat <<MD
<!-- dashboard:start -->
## Dashboard

Written by \`bash bench/dashboard.sh\` on $(date -u +%Y-%m-%d) ($(nproc) cores, $cpu): release
build, the demo with its default population (200 families) on embedded SQLite, its five
adapters over mutual TLS. Each page is asked for 200 times in a row after 20 unmeasured, by one
signed-in client over loopback; the time is the whole round trip, which includes every API
call the page makes (each through the disclosure pipeline, its fan-out to the adapters and its
ledger entry) and the rendering; the growth chart is an image the browser fetches beside the
page, timed on its own row. Target (issue 24): 50 ms median for every page.

| page | median | p99 | size |
|---|---|---|---|
$rows
<!-- dashboard:end -->
MD
)
if grep -q '<!-- dashboard:start -->' BENCHMARKS.md 2>/dev/null; then
  python3 - "$section" <<'PY'
import re, sys
text = open("BENCHMARKS.md").read()
text = re.sub(r"<!-- dashboard:start -->.*?<!-- dashboard:end -->", lambda _: sys.argv[1], text, flags=re.S)
open("BENCHMARKS.md", "w").write(text)
PY
else
  printf '\n%s\n' "$section" >>BENCHMARKS.md
fi
echo "wrote the dashboard section of BENCHMARKS.md"
