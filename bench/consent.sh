#!/usr/bin/env bash
# What the consent decisions add to `$everything`: writes the consent section of BENCHMARKS.md
# (between its markers; bench/run.sh keeps the section as it is).
#
#   bash bench/consent.sh
#
# Runs `cargo bench -p kinfold-gateway --bench disclosure` (the facts, the relationship and every
# record decided, for an answer the size of the benchmark child's) and sets it against the
# one-connection `$everything` median that bench/run.sh last wrote to BENCHMARKS.md.
set -euo pipefail
cd "$(dirname "$0")/.."

median=$(grep -F '$everything` across five adapters' BENCHMARKS.md | grep -F '| 1 |' | head -n1 | awk -F'|' '{print $4}' | tr -d ' ')
case "$median" in
  *us) ms=$(echo "${median%us} / 1000" | bc -l) ;;
  *ms) ms=${median%ms} ;;
  *s) ms=$(echo "${median%s} * 1000" | bc -l) ;;
  *) ms="" ;;
esac
measured_on=$(grep -m1 -o 'bench/run.sh` on [0-9-]*' BENCHMARKS.md | awk '{print $3}')
rows=$(EVERYTHING_MEDIAN_MS="$ms" cargo bench -q -p kinfold-gateway --bench disclosure 2>/dev/null | grep '^|')
cpu=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//')
section=$(cat <<MD
<!-- consent:start -->
## Consent decisions

Written by \`bash bench/consent.sh\` on $(date -u +%Y-%m-%d) ($(nproc) cores, $cpu): \`cargo bench -p
kinfold-gateway --bench disclosure\`, release build, one thread, against the one-connection
\`\$everything\` median above (${median:-not measured}, written by \`bench/run.sh\` on ${measured_on:-an unknown day};
that median already includes the decisions, and the adapter calls over mutual TLS). Every \`\$everything\` now also reads the person's recorded
dissents (one indexed query) and decides each record; the row measures the deciding. What
mutual TLS between the gateway and the adapters costs is in its own section (\`bench/mtls.sh\`).

| what | measured | target (issue 13) |
|---|---|---|
$rows
<!-- consent:end -->
MD
)
if grep -q '<!-- consent:start -->' BENCHMARKS.md 2>/dev/null; then
  python3 - "$section" <<'PY'
import re, sys
text = open("BENCHMARKS.md").read()
text = re.sub(r"<!-- consent:start -->.*?<!-- consent:end -->", lambda _: sys.argv[1], text, flags=re.S)
open("BENCHMARKS.md", "w").write(text)
PY
else
  printf '\n%s\n' "$section" >>BENCHMARKS.md
fi
echo "wrote the consent section of BENCHMARKS.md"
