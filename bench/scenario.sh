#!/usr/bin/env bash
# The review, replayed (issue 25): how long a four-year scenario takes to replay. Writes the
# scenario section of BENCHMARKS.md (between its markers).
#
#   bash bench/scenario.sh
#
# Runs the release binary on docs/scenarios/review.yaml three times (SQLite), and once with
# the control family.
set -euo pipefail
cd "$(dirname "$0")/.."

cargo build -q --release -p kinfold
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
rows=""
for n in 1 2 3; do
  line=$(target/release/kinfold scenario run docs/scenarios/review.yaml --report-dir "$out" 2>/dev/null | tail -n 1)
  line=${line#*: }
  rows+="| review.yaml, run $n | ${line%%; report in*} |"$'\n'
done
line=$(target/release/kinfold scenario run docs/scenarios/control.yaml --report-dir "$out" 2>/dev/null | tail -n 1)
line=${line#*: }
rows+="| control.yaml | ${line%%; report in*} |"
cpu=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//')
section=$(cat <<MD
<!-- scenario:start -->
## Scenario replay

Written by \`bash bench/scenario.sh\` on $(date -u +%Y-%m-%d) ($(nproc) cores, $cpu): the release
binary, \`kinfold scenario run\` on embedded SQLite, each run starting its own gateway and five
adapters. The review's scenario spans four years (1 March 2023 to 1 March 2027: 20 steps
through the native feeds and the API, 12 expectations); the time is the whole run, start-up
and report included. Most of it is the runner waiting, at each of the clock's stops for an
escalation, for the gateway's notification work, which looks for due escalations once a
second. Target (issue 25): a four-year scenario for one family in under a minute.

| scenario | result |
|---|---|
$rows
<!-- scenario:end -->
MD
)
if grep -q '<!-- scenario:start -->' BENCHMARKS.md 2>/dev/null; then
  python3 - "$section" <<'PY'
import re, sys
text = open("BENCHMARKS.md").read()
text = re.sub(r"<!-- scenario:start -->.*?<!-- scenario:end -->", lambda _: sys.argv[1], text, flags=re.S)
open("BENCHMARKS.md", "w").write(text)
PY
else
  printf '\n%s\n' "$section" >>BENCHMARKS.md
fi
echo "wrote the scenario section of BENCHMARKS.md"
