#!/usr/bin/env bash
# The family chronology at the gateway (issue 23): writes the chronology section of
# BENCHMARKS.md (between its markers; the other scripts keep it as it is).
#
#   bash bench/chronology.sh
#
# Builds the release binary, then runs bench/chronology.py: a family of five with about 500
# events sent through the real feeds into a fresh demo, then the family chronology asked over
# one keep-alive connection.
set -euo pipefail
cd "$(dirname "$0")/.."

cargo build --release -p kinfold >/dev/null
row=$(python3 bench/chronology.py target/release/kinfold "${REQUESTS:-300}")
cpu=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//')
section=$(cat <<MD
<!-- chronology:start -->
## Chronology

Written by \`bash bench/chronology.sh\` on $(date -u +%Y-%m-%d) ($(nproc) cores, $cpu): release
build, embedded SQLite, the demo's five adapters over mutual TLS, no synthetic families. One
family (a mother, three children, the mother's partner named in police notifications) is sent
through the real feeds: health visiting and school nursing extracts, A&E HL7 v2 ADT, a GP
Bundle. The area's safeguarding lead then asks the youngest child's family chronology over one
keep-alive connection from Python on the same machine (times include the client). Each answer
fetches every person's records from all five adapters, decides each, runs the pattern rules and
the growth history, and records one ledger entry per person before it is sent.

| what | median | p99 | target (issue 23) |
|---|---|---|---|
$row
<!-- chronology:end -->
MD
)
if grep -q '<!-- chronology:start -->' BENCHMARKS.md 2>/dev/null; then
  python3 - "$section" <<'PY'
import re, sys
text = open("BENCHMARKS.md").read()
text = re.sub(r"<!-- chronology:start -->.*?<!-- chronology:end -->", lambda _: sys.argv[1], text, flags=re.S)
open("BENCHMARKS.md", "w").write(text)
PY
else
  printf '\n%s\n' "$section" >>BENCHMARKS.md
fi
echo "wrote the chronology section of BENCHMARKS.md"
