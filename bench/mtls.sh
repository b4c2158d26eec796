#!/usr/bin/env bash
# What mutual TLS between the gateway and the adapters costs: writes the mutual TLS section of
# BENCHMARKS.md (between its markers; bench/run.sh keeps the section as it is).
#
#   bash bench/mtls.sh
#
# Runs `cargo bench -p kinfold --bench mtls` (release build): the transport alone (plain TCP
# against an established mutual-TLS session and a new one per request, the same bytes), then
# an adapter search and the gateway's `$everything` on a running demo.
set -euo pipefail
cd "$(dirname "$0")/.."

rows=$(cargo bench -q -p kinfold --bench mtls 2>/dev/null | grep '^|')
# What an established session adds to one $everything: at most ten adapter requests (a search
# and a $everything at each of five agencies), each paying the per-request cost.
per=$(grep -F 'established session' <<<"$rows" | grep -F derived | awk -F'|' '{print $3}' | tr -dc '0-9')
every=$(grep -F 'gateway `$everything`' <<<"$rows" | awk -F'|' '{print $3}' | tr -dc '0-9')
share=$(python3 -c "print(f'{10 * ${per:-0} / 1000:.2f} ms, {1000 * ${per:-0} / max(${every:-1}, 1):.1f}%')")
cpu=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//')
load=$(cut -d' ' -f1-3 /proc/loadavg)
section=$(cat <<MD
<!-- mtls:start -->
## Mutual TLS

Written by \`bash bench/mtls.sh\` on $(date -u +%Y-%m-%d) ($(nproc) cores, $cpu; load average
before: $load): \`cargo bench -p kinfold --bench mtls\`, release build, 2,000 requests one after
another for each row (500 for the new-session row). The transport rows are an A/B in one
process: a loopback server answering each 200-byte request with one adapter answer's worth of
bytes, over plain TCP and over TLS 1.3 with client certificates (the demo's P-256 keys). The
rest run against a demo of 200 children with 20 weights each (release build, SQLite): an
adapter search read with the gateway's certificate, on a kept-alive connection and on a new
one each time, and the gateway's \`\$everything\` (which reads every agency over pooled
mutual-TLS connections, so a handshake is paid once per connection, not per request).

An established session adds its per-request cost to each adapter request; a \`\$everything\`
makes at most ten (a search and a \`\$everything\` at each of five agencies): at most $share
of the \`\$everything\` median here. A handshake is paid when the gateway opens a connection
(pooled, kept 60 s idle). Before the servers set \`TCP_NODELAY\`, a new connection's first
request waited about 40 ms for a delayed ACK (41.9 ms median for the new-connection row); this
benchmark found it.

| what | median | p99 |
|---|---|---|
$rows
<!-- mtls:end -->
MD
)
if grep -q '<!-- mtls:start -->' BENCHMARKS.md 2>/dev/null; then
  python3 - "$section" <<'PY'
import re, sys
text = open("BENCHMARKS.md").read()
text = re.sub(r"<!-- mtls:start -->.*?<!-- mtls:end -->", lambda _: sys.argv[1], text, flags=re.S)
open("BENCHMARKS.md", "w").write(text)
PY
else
  printf '\n%s\n' "$section" >>BENCHMARKS.md
fi
echo "wrote the mutual TLS section of BENCHMARKS.md"
