#!/usr/bin/env bash
# Kinfold's standing robustness suite, the long version of what CI runs short:
#
#  1. the property tests (search returns exactly what matches; a transaction is stored whole
#     or not at all) with many more cases, on SQLite and PostgreSQL;
#  2. libFuzzer on every parser that takes outside input (cargo-fuzz, nightly toolchain), for a
#     bounded time each, its corpus kept in fuzz/corpus/ and minimised after the run;
#  3. a schema-driven run (schemathesis, from PyPI, in a throwaway virtualenv) against a running
#     demo's gateway and an adapter: no 5xx, no response outside the documented schema;
#  4. an adapter's peak memory while it refuses the largest ingests it can be sent, one at a
#     time and four at once;
#  5. how much 10,000 unauthenticated requests grow the gateway's ledger.
#
# Then it rewrites the "Robustness" section of BENCHMARKS.md (between its markers).
#
#   bash bench/robustness.sh
#
# Knobs: FUZZ_SECONDS per target (default 120), PROPTEST_CASES (default 2000), SCHEMA_EXAMPLES
# per operation (default 100), REQUESTS (default 10000). Needs python3, jq, curl, the nightly
# toolchain, and PostgreSQL as for the tests. Loopback only; every loop is bounded and stops by
# itself.
set -euo pipefail
cd "$(dirname "$0")/.."

FUZZ_SECONDS=${FUZZ_SECONDS:-120}
PROPTEST_CASES=${PROPTEST_CASES:-2000}
SCHEMA_EXAMPLES=${SCHEMA_EXAMPLES:-100}
REQUESTS=${REQUESTS:-10000}
PORT=${PORT:-18780}
export KINFOLD_TEST_POSTGRES_URL="${KINFOLD_TEST_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/postgres}"

for tool in python3 jq curl; do
  command -v "$tool" >/dev/null || { echo "$tool is needed" >&2; exit 1; }
done

work=$(mktemp -d)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT
seconds() { date +%s; }

echo "== building (release)"
cargo build --release -q -p kinfold
kinfold=$PWD/target/release/kinfold

# 1. Property tests -------------------------------------------------------------------------
echo "== property tests, $PROPTEST_CASES cases per backend each"
start=$(seconds)
PROPTEST_CASES=$PROPTEST_CASES cargo test -q -p kinfold-store --test search_property >"$work/prop1.log" 2>&1
PROPTEST_CASES=$PROPTEST_CASES cargo test -q -p kinfold-tests --test ingest_property >"$work/prop2.log" 2>&1
prop_minutes=$(python3 -c "print(f'{($(seconds) - $start) / 60:.1f}')")
prop_passed=$(grep -ho '[0-9]* passed' "$work/prop1.log" "$work/prop2.log" | awk '{s+=$1} END {print s}' || true)

# 2. Fuzzing ---------------------------------------------------------------------------------
echo "== fuzzing, $FUZZ_SECONDS s per target"
command -v cargo-fuzz >/dev/null || cargo install -q cargo-fuzz --locked
fuzz_rows=""
for target in fhir_json search_params ingest_bundle identifiers hl7v2; do
  corpus=fuzz/corpus/$target
  mkdir -p "$corpus"
  if [ -z "$(ls -A "$corpus")" ]; then
    case $target in
      fhir_json|ingest_bundle) cp tests/conformance/fhir-r4-core/*.json tests/conformance/nhs/*.json "$corpus/" ;;
      search_params) printf 'patient=Patient/a&code=http://loinc.org|29463-7,8302-2&date=ge2020-01&_count=5' >"$corpus/seed" ;;
      identifiers) printf '9434765919' >"$corpus/nhs"; printf '2024-02-29T10:00:00+01:00' >"$corpus/date" ;;
      hl7v2) cp tests/conformance/hl7v2/*.hl7 tests/conformance/hl7v2/malformed/*.hl7 "$corpus/" ;;
    esac
  fi
  log=$work/fuzz-$target.log
  set +e
  (cd fuzz && cargo +nightly fuzz run -O "$target" "corpus/$target" -- \
      -max_total_time="$FUZZ_SECONDS" -max_len=16384 -rss_limit_mb=2048 -print_final_stats=1) >"$log" 2>&1
  status=$?
  set -e
  runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | awk '{print $2}' | tail -n1 || true)
  crashes=$(ls fuzz/artifacts/"$target" 2>/dev/null | wc -l)
  if [ "$status" -ne 0 ] && [ "$crashes" -eq 0 ]; then crashes="run failed (exit $status; see $log)"; cp "$log" /tmp/; fi
  (cd fuzz && cargo +nightly fuzz cmin -O "$target" "corpus/$target" >/dev/null 2>&1) || true
  kept=$(ls "fuzz/corpus/$target" | wc -l)
  minutes=$(python3 -c "print(f'{$FUZZ_SECONDS / 60:.1f}')")
  fuzz_rows="$fuzz_rows| \`$target\` | $minutes | ${runs:-?} | $crashes | $kept |
"
done

# 3 and 5 share a running demo -------------------------------------------------------------
echo "== starting the demo"
"$kinfold" demo --data-dir "$work/demo" --port "$PORT" --families 20 >"$work/demo.log" 2>&1 &
pids+=($!)
for _ in $(seq 1 120); do [ -s "$work/demo/demo.json" ] && break; sleep 1; done
[ -s "$work/demo/demo.json" ] || { echo "the demo did not start" >&2; cat "$work/demo.log" >&2; exit 1; }
gateway=$(jq -r .gateway "$work/demo/demo.json")
ae=$(jq -r '.adapters.ae' "$work/demo/demo.json")
token=$(jq -r .token "$work/demo/demo.json")
patient=$(jq -r .example_patient.id "$work/demo/demo.json")

# 5. Ledger growth from unauthenticated requests (before the schema run adds its own entries).
echo "== $REQUESTS unauthenticated requests"
sleep 3
size() { curl -s "$gateway/ledger/v1/get-sth" | jq .tree_size; }
before=$(size)
statuses=$(python3 - "$gateway" "$patient" "$REQUESTS" <<'PY'
import http.client, sys, urllib.parse, collections
base, patient, n = urllib.parse.urlsplit(sys.argv[1]), sys.argv[2], int(sys.argv[3])
counts = collections.Counter()
conn = http.client.HTTPConnection(base.hostname, base.port, timeout=10)
for i in range(n):
    conn.request("GET", f"/Patient/{patient}/$everything")
    response = conn.getresponse()
    response.read()
    counts[response.status] += 1
print(" ".join(f"{status}: {count}" for status, count in sorted(counts.items())))
PY
)
echo "   answers: $statuses; waiting for the refusal interval (60 s) and a tree head"
sleep 66
after=$(size)
growth=$((after - before))
growth_share=$(python3 -c "print(f'{100 * $growth / $REQUESTS:.2f}')")

# 3. Schema-driven run ----------------------------------------------------------------------
echo "== schemathesis"
python3 -m venv "$work/venv" >/dev/null
"$work/venv/bin/pip" install -q schemathesis
st_version=$("$work/venv/bin/st" --version | awk '{print $NF}')
cat >"$work/st.toml" <<'TOML'
[parameters]
"path.id" = "${KINFOLD_PATIENT}"
TOML
checks=not_a_server_error,response_schema_conformance,content_type_conformance,status_code_conformance
schema_rows=""
for api in gateway adapter; do
  if [ "$api" = gateway ]; then url=$gateway; extra=(-H "Authorization: Bearer $token"); else url=$ae; extra=(); fi
  start=$(seconds)
  set +e
  KINFOLD_PATIENT=$patient "$work/venv/bin/st" --config-file "$work/st.toml" run "openapi/$api.json" \
    --url "$url" "${extra[@]}" --checks "$checks" --max-examples "$SCHEMA_EXAMPLES" --workers 2 \
    --phases examples,fuzzing,stateful --seed 20261129 >"$work/st-$api.log" 2>&1
  st_status=$?
  set -e
  minutes=$(python3 -c "print(f'{($(seconds) - $start) / 60:.1f}')")
  cases=$(grep -Eo '[0-9]+ generated' "$work/st-$api.log" | awk '{print $1}' | tail -n1 || true)
  failures=$(grep -Eo '[0-9]+ unique failures?' "$work/st-$api.log" | awk '{print $1}' | tail -n1 || true)
  server_errors=$(grep -c 'Server error' "$work/st-$api.log" || true)
  schema_breaks=$(grep -Ec 'Response violates schema|Undocumented status code|Undocumented Content-Type' "$work/st-$api.log" || true)
  [ "$st_status" -eq 0 ] || cp "$work/st-$api.log" "/tmp/schemathesis-$api.log"
  schema_rows="$schema_rows| $api (\`openapi/$api.json\`) | ${cases:-?} | $minutes | $server_errors | $schema_breaks | ${failures:-0} (exit $st_status) |
"
done
kill "${pids[0]}" 2>/dev/null || true; wait "${pids[0]}" 2>/dev/null || true; pids=()

# 4. Adapter memory while refusing the largest ingests --------------------------------------
echo "== adapter memory"
max_body=8388608; max_entries=5000; max_values=200000
python3 bench/robustness/bundles.py "$work" "$max_body" "$max_entries" "$max_values" >/dev/null
pki=$work/demo/pki   # the demo's authority: the adapter serves over mutual TLS, the feed sends
peak() {
  # Starts a fresh adapter, sends the given files at once, and prints the rise in its peak
  # resident memory (VmHWM) in MiB, and the statuses it answered.
  local port=$((PORT + 50)) dir=$work/adapter-$RANDOM
  mkdir -p "$dir"
  cat >"$dir/gp.toml" <<TOML
bind = "127.0.0.1:$port"
database_url = "sqlite://$dir/gp.db"
[ledger]
signing_key = "$(head -c32 /dev/urandom | base64)"
[tls]
cert = "$pki/adapter.pem"
key = "$pki/adapter-key.pem"
client_ca = "$pki/ca.pem"
gateway_names = ["gateway.kinfold.internal"]
feed_names = ["feed.kinfold.internal"]
TOML
  "$kinfold" adapter --agency gp --config "$dir/gp.toml" >"$dir/log" 2>&1 &
  local pid=$!
  for _ in $(seq 1 50); do curl -s -o /dev/null --cacert "$pki/ca.pem" "https://127.0.0.1:$port/metadata" && break; sleep 0.2; done
  local base
  base=$(awk '/VmHWM/ {print $2}' "/proc/$pid/status")
  local answers=""
  for file in "$@"; do
    curl -s -o /dev/null -w '%{http_code}\n' -H 'content-type: application/fhir+json' \
      --cacert "$pki/ca.pem" --cert "$pki/feed.pem" --key "$pki/feed-key.pem" \
      --data-binary "@$work/$file" "https://127.0.0.1:$port/" >>"$dir/answers" &
  done
  wait $(jobs -p | grep -v "^$pid$") 2>/dev/null || true
  answers=$(sort "$dir/answers" | uniq -c | awk '{printf "%s×%s ", $1, $2}')
  local top
  top=$(awk '/VmHWM/ {print $2}' "/proc/$pid/status")
  kill "$pid"; wait "$pid" 2>/dev/null || true
  python3 -c "print(f'{($top - $base) / 1024:.1f} | {($top - $base) * 1024 / $max_body:.1f} | $answers')"
}
mem_rows="| the largest Bundle of plain Observations (8 MiB, 5,000 entries), refused by its last entry | $(peak plain.json) |
| 5,000 entries at the JSON-value limit (200,000 values), refused by its last entry | $(peak nodes.json) |
| 8 MiB of tiny objects (over the value limit: refused before parsing) | $(peak dense.json) |
| 5,001 entries (over the entry limit: refused before parsing) | $(peak over.json) |
| four of the largest plain Bundles at once (two ingests run at a time, so the bound is twice the first row) | $(peak plain.json plain.json plain.json plain.json) |
"

# Write the section ------------------------------------------------------------------------
cpu=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//')
section=$(cat <<MD
<!-- robustness:start -->
## Robustness

Written by \`bash bench/robustness.sh\` on $(date -u +%Y-%m-%d) ($(nproc) cores, $cpu). CI runs the same
property tests with fewer cases (\`cargo test\`); the fuzzing, the schema-driven run and the
measurements below are this script's.

### Property tests

$prop_passed property tests passed with $PROPTEST_CASES cases each ($prop_minutes minutes): search on SQLite
and on PostgreSQL returns exactly the resources the in-memory meaning of the search matches
(\`crates/kinfold-store/tests/search_property.rs\`), and a random transaction, good or with one
fault, is stored whole or not at all, over real HTTP, on both databases
(\`tests/tests/ingest_property.rs\`).

### Fuzzing (libFuzzer via cargo-fuzz, nightly)

| target | minutes | inputs run | crashes | corpus kept (after cmin) |
|---|---|---|---|---|
$fuzz_rows
Targets are in \`fuzz/fuzz_targets/\`; the minimised corpora are committed in \`fuzz/corpus/\`.

### Schema-driven run (schemathesis $st_version against a running demo)

Checks: $checks. Phases: examples, fuzzing, stateful; up to $SCHEMA_EXAMPLES examples per operation; the
gateway with the demo's token and example patient.

| API | cases | minutes | server errors (5xx) | responses outside the schema | failures |
|---|---|---|---|---|---|
$schema_rows
### Ledger growth from unauthenticated requests

$REQUESTS requests without a token to \`Patient/{id}/\$everything\` from one address (answers: $statuses)
grew the gateway's ledger by **$growth $([ "$growth" -eq 1 ] && echo entry || echo entries) ($growth_share% of the requests)**; target: under 1%.
Refusals are counted by source address, reason and route and written once a minute.

### Adapter memory while refusing the largest ingests

The rise in the adapter process's peak resident memory (VmHWM) over its idle peak, release
build, SQLite. Limits: body $max_body bytes (8 MiB), $max_entries entries, $max_values JSON values, two
ingests at once. Target: under 8 times the body limit (64 MiB) for one; four at once bounded by
the concurrency limit.

| what was sent | peak rise (MiB) | times the body limit | answers |
|---|---|---|---|
$mem_rows<!-- robustness:end -->
MD
)
python3 - "$section" <<'PY'
import re, sys
section = sys.argv[1]
text = open("BENCHMARKS.md").read()
pattern = re.compile(r"<!-- robustness:start -->.*<!-- robustness:end -->", re.S)
text = pattern.sub(lambda _: section, text) if pattern.search(text) else text.rstrip() + "\n\n" + section + "\n"
open("BENCHMARKS.md", "w").write(text)
PY
echo "BENCHMARKS.md updated"
