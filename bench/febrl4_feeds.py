"""FEBRL4 through Kinfold's real feeds, as an integration engineer would send it: file A as the
GP's FHIR Bundles, file B as school nursing extract rows, no NHS numbers and no id, into a
fresh `kinfold demo` with no synthetic families. When the gateway has filed every record, its
record locator (`kinfold identity links`) is held against the truth. Prints one row of
BENCHMARKS.md's identity table.

    python3 bench/febrl4_feeds.py KINFOLD_BINARY FEBRL4_DIR   # FEBRL4_DIR from bench/febrl4.py
"""
import csv
import io
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path


def read(path):
    rows = []
    for line in Path(path).read_text().splitlines():
        f = line.split("\t")
        rows.append({"id": f[0], "given": f[1], "family": f[2], "number": f[3], "street": f[4],
                     "line2": f[5], "suburb": f[6], "postcode": f[7], "dob": f[9]})
    return rows


def birth_date(text):
    if len(text) != 8:
        return None
    try:
        return date(int(text[:4]), int(text[4:6]), int(text[6:])).isoformat()
    except ValueError:
        return None


def lines(r):
    first = f"{r['number']} {r['street']}".strip()
    return [l for l in (first, r["line2"]) if l]


def patient(r):
    resource = {"resourceType": "Patient", "id": r["id"]}
    if r["family"] or r["given"]:
        name = {}
        if r["family"]:
            name["family"] = r["family"]
        if r["given"]:
            name["given"] = [r["given"]]
        resource["name"] = [name]
    if birth_date(r["dob"]):
        resource["birthDate"] = birth_date(r["dob"])
    address = {k: v for k, v in (("line", lines(r)), ("city", r["suburb"]), ("postalCode", r["postcode"])) if v}
    if address:
        resource["address"] = [address]
    return {"resource": resource, "request": {"method": "PUT", "url": f"Patient/{r['id']}"}}


def school_row(n, r):
    child = {"local_id": r["id"]}
    if r["family"]:
        child["family"] = r["family"]
    if r["given"]:
        child["given"] = [r["given"]]
    if birth_date(r["dob"]):
        child["birth_date"] = birth_date(r["dob"])
    address = {k: v for k, v in (("lines", lines(r)), ("city", r["suburb"]), ("postcode", r["postcode"])) if v}
    if address:
        child["address"] = address
    return {"record": "school", "row_id": f"FEBRL-B-{n}", "child": child,
            "school_urn": "100000", "school_name": "Benchmark school", "from": "2026-09-01"}


def main(binary, febrl):
    a, b = read(Path(febrl) / "a.tsv"), read(Path(febrl) / "b.tsv")
    work = Path(tempfile.mkdtemp(prefix="febrl4-feeds-"))
    data = work / "data"
    demo = subprocess.Popen([binary, "demo", "--data-dir", str(data), "--port", "19580", "--families", "0"],
                            stdout=subprocess.DEVNULL, stderr=open(work / "demo.log", "w"))
    try:
        for _ in range(300):
            if (data / "demo.json").exists() and (data / "demo.json").stat().st_size > 0:
                break
            time.sleep(1)
        started = time.time()
        rejected = 0
        for k in range(0, len(a), 1000):
            bundle = {"resourceType": "Bundle", "type": "transaction", "entry": [patient(r) for r in a[k:k + 1000]]}
            path = work / f"a-{k}.json"
            path.write_text(json.dumps(bundle))
            out = subprocess.run([binary, "import", "--agency", "gp", str(path), "--data-dir", str(data)],
                                 capture_output=True, text=True)
            rejected += out.stderr.count("\nline ") + out.stderr.startswith("line ")
        extract = work / "b.ndjson"
        extract.write_text("\n".join(json.dumps(school_row(n, r)) for n, r in enumerate(b)) + "\n")
        out = subprocess.run([binary, "import", "--agency", "school-nursing", str(extract), "--data-dir", str(data)],
                             capture_output=True, text=True)
        rejected += sum(1 for l in out.stderr.splitlines() if l.startswith("line "))
        # Wait until the gateway has filed every record the feeds stored.
        expected = len(a) + len(b) - rejected
        ours = {("gp", f"Patient/{r['id']}") for r in a} | {("school-nursing", f"Patient/local-{r['id']}") for r in b}
        links = []
        for _ in range(900):
            out = subprocess.run([binary, "identity", "links", "--db", f"sqlite://{data}/gateway.db"],
                                 capture_output=True, text=True)
            links = [l for l in csv.DictReader(io.StringIO(out.stdout)) if (l["agency"], l["reference"]) in ours]
            if len(links) >= expected:
                break
            time.sleep(1)
        took = time.time() - started
    finally:
        demo.send_signal(signal.SIGINT)
        demo.wait(timeout=60)
    person = {(l["agency"], l["reference"]): l["person"] for l in links}
    def truth(rec):
        return rec.split("-")[1]
    by_person = {}
    for r in a:
        p = person.get(("gp", f"Patient/{r['id']}"))
        if p:
            by_person.setdefault(p, ([], []))[0].append(truth(r["id"]))
    for r in b:
        p = person.get(("school-nursing", f"Patient/local-{r['id']}"))
        if p:
            by_person.setdefault(p, ([], []))[1].append(truth(r["id"]))
    linked = right = 0
    for left, right_side in by_person.values():
        for x in left:
            for y in right_side:
                linked += 1
                right += x == y
    precision = right / max(linked, 1)
    recall = right / len(a)
    f1 = 2 * precision * recall / max(precision + recall, 1e-12)
    print(f"| FEBRL4 through the feeds ({len(a):,} + {len(b):,} records; file A as the GP's FHIR Bundles, file B as school nursing extract rows; "
          f"{len(links)} records filed, {rejected} rows refused by the feeds) | precision {precision:.4f}, "
          f"recall {recall:.4f}, F1 {f1:.4f}; {took:.0f} s from first send to all filed | as above |")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
