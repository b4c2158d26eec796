#!/usr/bin/env python3
"""Writes the largest transactions one adapter accepts, each refused by its last entry.

  bundles.py OUT_DIR MAX_BYTES MAX_ENTRIES MAX_JSON_VALUES

plain.json:  MAX_ENTRIES Observations padded with text to just under MAX_BYTES; the last has
             the date 2020-02-30, so the adapter parses every entry before refusing it.
nodes.json:  MAX_ENTRIES Observations carrying as many tiny extension objects as keep the
             Bundle just under MAX_JSON_VALUES: the most parsed values a sender can make the
             adapter hold. Refused by its last entry, like plain.json.
dense.json:  as many tiny objects as fit in MAX_BYTES (over MAX_JSON_VALUES: refused unread).
over.json:   one entry more than MAX_ENTRIES (refused before any entry is parsed).
"""
import json
import sys

out, max_bytes, max_entries, max_values = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
budget = max_bytes - 200  # the Bundle's own text


def observation(date, extra):
    resource = {"resourceType": "Observation", "status": "final",
                "code": {"coding": [{"system": "http://loinc.org", "code": "29463-7"}]},
                "subject": {"reference": "Patient/p1"}, "effectiveDateTime": date}
    resource.update(extra)
    return {"resource": resource, "request": {"method": "POST", "url": "Observation"}}


def write(name, entries):
    text = json.dumps({"resourceType": "Bundle", "type": "transaction", "entry": entries},
                      separators=(",", ":"))
    assert len(text) <= max_bytes, (name, len(text))
    with open(f"{out}/{name}", "w") as f:
        f.write(text)
    print(name, len(text), len(entries))


per_entry = budget // max_entries
base = len(json.dumps(observation("2020-01-01", {"valueString": ""}), separators=(",", ":"))) + 1
plain = [observation("2020-01-01", {"valueString": "x" * (per_entry - base)})
         for _ in range(max_entries - 1)]
plain.append(observation("2020-02-30", {"valueString": "x" * (per_entry - base)}))
write("plain.json", plain)

tiny = {"url": "u"}
tiny_len = len(json.dumps(tiny, separators=(",", ":"))) + 1
base = len(json.dumps(observation("2020-01-01", {"extension": []}), separators=(",", ":"))) + 1
count = max(0, (per_entry - base) // tiny_len)
dense = [observation("2020-01-01", {"extension": [tiny] * count}) for _ in range(max_entries - 1)]
dense.append(observation("2020-02-30", {"extension": [tiny] * count}))
write("dense.json", dense)

# Values in one entry without extensions, counted as the adapter counts them (members and
# items): entry 2 + resource 6 + code 1 + coding 1 + coding item 2 + subject 1 + extension 1.
per_entry_values = 15
room = max_values - 10 - max_entries * per_entry_values
count = max(0, room // (2 * max_entries) - 1)
nodes = [observation("2020-01-01", {"extension": [tiny] * count}) for _ in range(max_entries - 1)]
nodes.append(observation("2020-02-30", {"extension": [tiny] * count}))
write("nodes.json", nodes)

write("over.json", [observation("2020-01-01", {}) for _ in range(max_entries + 1)])
