#!/bin/sh
# Sends the first records through the feeds (each with the feed's certificate): a school
# nursing and a health visiting extract and an A&E attendance in HL7 v2 over MLLP/TLS, all for
# one child; then asks the gateway for him as the area's safeguarding lead.
set -eu
DOCS=$(dirname "$0")/..
url() { sed -n 's/^public_base_url = "\(.*\)"$/\1/p' "$1.toml"; }
MLLP=$(sed -n 's/^mllp_bind = ".*:\([0-9]*\)"$/\1/p' ae.toml)
FEED="--cert pki/feed.pem --key pki/feed-key.pem --ca pki/ca.pem"
kinfold import --agency school-nursing "$DOCS/feeds/samples/school-nursing.ndjson" --adapter "$(url school-nursing)" $FEED
kinfold import --agency health-visiting "$DOCS/feeds/samples/health-visiting.ndjson" --adapter "$(url health-visiting)" $FEED
kinfold import --agency ae "$DOCS/deploy/adt.hl7" --mllp "tls://localhost:$MLLP" $FEED

# A token for a person (here: the area's safeguarding lead), issued by you (--operator). Its
# issue is recorded in the ledger first; a system client gets its tokens itself (smart.md).
TOKEN=$(kinfold token --config gateway.toml --subject lead-1 --name "Area safeguarding lead" \
  --org "${DEPLOY_AREA:-Q99}" --role safeguarding-professional --purpose safeguarding --ttl 600 \
  --operator "$(id -un)")
GATEWAY=$(url gateway)
ask() { curl -sS --fail-with-body --cacert pki/ca.pem -H "Authorization: Bearer $TOKEN" "$GATEWAY/$1"; }
ID=$(ask "Patient?identifier=https://fhir.nhs.uk/Id/nhs-number%7C9990000026" | jq -r '.entry[0].resource.id')
echo "The child is Patient/$ID. Everything every agency holds about him:"
ask "Patient/$ID/\$everything" > everything.json
jq -r '.entry[].resource.resourceType' everything.json | sort | uniq -c
