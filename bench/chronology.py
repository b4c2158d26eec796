"""A family chronology at the gateway (issue 23): a family of five (a mother, three children and
the mother's partner, named in police notifications) with about 500 events from four agencies,
sent through the real feeds (health visiting and school nursing extracts, A&E HL7 v2, a GP
Bundle) into a fresh `kinfold demo` with no synthetic families. When every record is filed,
asks `GET /Patient/{youngest}/$chronology?family=true` over one keep-alive connection, as the
area's safeguarding lead, and prints the median and 99th percentile of the answer times.

    python3 bench/chronology.py KINFOLD_BINARY [REQUESTS]

Prints one row of BENCHMARKS.md's chronology table; bench/chronology.sh writes the section.
"""
import http.client
import json
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path
from urllib.parse import urlparse


def nhs_number(first_nine):
    total = sum(int(d) * (10 - i) for i, d in enumerate(first_nine))
    check = 11 - total % 11
    check = 0 if check == 11 else check
    return None if check == 10 else first_nine + str(check)


def numbers(count, start=900000300):
    out, n = [], start
    while len(out) < count:
        found = nhs_number(str(n))
        if found:
            out.append(found)
        n += 1
    return out


MOTHER, NOAH, IVY, FINN = numbers(4)
POSTCODE = "LS8 4RT"


def person(nhs, given, family, born, sex):
    return {"nhs_number": nhs, "family": family, "given": [given], "birth_date": born, "sex": sex,
            "postcode": POSTCODE}


mother = person(MOTHER, "Grace", "Holloway", "1992-05-14", "female")
noah = person(NOAH, "Noah", "Holloway", "2019-02-03", "male")
ivy = person(IVY, "Ivy", "Holloway", "2021-08-19", "female")
finn = person(FINN, "Finn", "Holloway", "2024-11-02", "male")
partner = {"name": "Dean Carter", "relationship": "mother's partner", "birth_date": "1989-09-09"}


def days(start, count, step):
    first = date.fromisoformat(start)
    return [(first + timedelta(days=step * k)).isoformat() for k in range(count)]


def health_visiting():
    """The youngest child's own contacts and weights, his allocation, and the police
    notifications about the household (safeguarding items, in every child's family view)."""
    rows = []
    for n, child in enumerate((noah, ivy, finn)):
        rows.append({"record": "carers", "row_id": f"B-HV-C{n}", "child": child,
                     "carers": [{"person": mother, "relationship": "mother", "parental_responsibility": True}]})
    rows.append({"record": "allocation", "row_id": "B-HV-A", "child": finn,
                 "date": finn["birth_date"], "health_visitor": {"name": "R. Shah"}})
    for k, day in enumerate(days("2024-11-12", 150, 4)):
        rows.append({"record": "contact", "row_id": f"B-HV-c{k}", "child": finn, "date": day,
                     "contact_type": "ad-hoc", "child_seen": True})
    for k, day in enumerate(days("2024-11-12", 80, 7)):
        rows.append({"record": "growth", "row_id": f"B-HV-g{k}", "child": finn, "date": day,
                     "weight_kg": round(3.6 + 0.03 * k * 7 / 7, 2)})
    for k, day in enumerate(days("2024-03-01", 30, 20)):
        rows.append({"record": "da-notification", "row_id": f"B-HV-D{k}", "child": ivy if k % 2 else finn,
                     "incident_date": day, "received_date": day, "from": "Police", "children_present": True,
                     "child_seen": True, "child_seen_by": "Police officer attending",
                     "adult_victim_risk_grade": "medium", "adults_named": [partner]})
    return rows


def school_nursing():
    """The eldest child's injuries recorded at school, appointments he was not brought to, and
    his school nursing contacts."""
    rows = [{"record": "school", "row_id": "B-SN-S", "child": noah, "school_urn": "100001",
             "school_name": "Benchmark Primary", "from": "2023-09-04"}]
    for k, day in enumerate(days("2023-10-01", 60, 11)):
        rows.append({"record": "welfare-concern", "row_id": f"B-SN-w{k}", "child": noah, "date": day,
                     "reported_by": {"name": "E. Clarke", "role": "class teacher"},
                     "description": "Bruising to the forearm", "body_site": "forearm", "explanation_given": "Fell"})
    for k, day in enumerate(days("2023-11-01", 30, 23)):
        rows.append({"record": "was-not-brought", "row_id": f"B-SN-n{k}", "child": noah, "appointment_date": day,
                     "service": "School nursing review", "reason": "No reply"})
    for k, day in enumerate(days("2023-09-10", 30, 23)):
        rows.append({"record": "contact", "row_id": f"B-SN-c{k}", "child": noah, "date": day,
                     "contact_type": "drop-in", "child_seen": True, "seen_alone": True})
    return rows


def ae():
    """Attendances: the youngest's and his sister's falls with injuries, the mother's
    overdoses."""
    people = [(FINN, "Holloway^Finn", "20241102", "M", 10, "FALL^Fall^LOCAL"),
              (IVY, "Holloway^Ivy", "20210819", "F", 40, "FALL^Fall^LOCAL"),
              (MOTHER, "Holloway^Grace", "19920514", "F", 20, "OD^Overdose^LOCAL")]
    messages = []
    for nhs, name, born, sex, count, reason in people:
        for k, day in enumerate(days("2024-12-05", count, 13)):
            at = day.replace("-", "") + "101500+0000"
            injury = ("\rOBX|1|CWE|injury-type^Injury type^KINFOLD-INJ||125667009^Bruise^SCT"
                      if nhs != MOTHER else "\rDG1|1||55680006^Drug overdose^SCT")
            messages.append(
                f"MSH|^~\\&|EPR|RXX|KINFOLD|AE|{at}||ADT^A04^ADT_A01|B-AE-{nhs}-{k}|P|2.4\rEVN|A04|{at}\r"
                f"PID|1||{nhs}^^^NHS^NH||{name}||{born}|{sex}|||9 Oak Road^^Leeds^^{POSTCODE}^GBR\r"
                f"PV1|1|E|AE^^^RXX||||||||||||||||V-B-{nhs}-{k}|||||||||||||||||01||||||||{at}"
                f"\rPV2|||{reason}{injury}")
    return "\r\n".join(messages) + "\r\n"


def gp():
    """The mother's own consultations: not safeguarding items, so withheld from the child's
    professionals, and counted."""
    entry = [{"resource": {"resourceType": "Patient", "id": "b-grace",
                           "identifier": [{"system": "https://fhir.nhs.uk/Id/nhs-number", "value": MOTHER}],
                           "name": [{"family": "Holloway", "given": ["Grace"]}], "birthDate": "1992-05-14",
                           "gender": "female"},
              "request": {"method": "PUT", "url": "Patient/b-grace"}}]
    for k, day in enumerate(days("2023-01-10", 50, 17)):
        entry.append({"resource": {"resourceType": "Encounter", "id": f"b-grace-{k}", "status": "finished",
                                   "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "AMB"},
                                   "subject": {"reference": "Patient/b-grace"},
                                   "period": {"start": f"{day}T10:00:00Z"}},
                      "request": {"method": "PUT", "url": f"Encounter/b-grace-{k}"}})
    return {"resourceType": "Bundle", "type": "transaction", "identifier": {"value": "B-GP-1"}, "entry": entry}


def main(binary, requests):
    work = Path(tempfile.mkdtemp(prefix="chronology-bench-"))
    data = work / "data"
    demo = subprocess.Popen([binary, "demo", "--data-dir", str(data), "--port", "19680", "--families", "0"],
                            stdout=subprocess.DEVNULL, stderr=open(work / "demo.log", "w"))
    try:
        for _ in range(300):
            if (data / "demo.json").exists() and (data / "demo.json").stat().st_size > 0:
                break
            time.sleep(1)
        info = json.loads((data / "demo.json").read_text())
        sent = 0
        for agency, name, text in (("health-visiting", "hv.ndjson", "\n".join(json.dumps(r) for r in health_visiting()) + "\n"),
                                   ("school-nursing", "sn.ndjson", "\n".join(json.dumps(r) for r in school_nursing()) + "\n"),
                                   ("ae", "ae.hl7", ae()),
                                   ("gp", "gp.json", json.dumps(gp()))):
            path = work / name
            path.write_text(text)
            out = subprocess.run([binary, "import", "--agency", agency, str(path), "--data-dir", str(data)],
                                 capture_output=True, text=True)
            if out.returncode != 0:
                sys.exit(f"{agency}: {out.stdout}{out.stderr}")
            sent += (text.count("\n") if agency != "ae" else text.count("\r\n")) if agency != "gp" else len(gp()["entry"]) - 1
        url = urlparse(info["gateway"])
        headers = {"Authorization": f"Bearer {info['token']}"}
        connection = http.client.HTTPConnection(url.hostname, url.port, timeout=30)

        def get(path):
            connection.request("GET", path, headers=headers)
            response = connection.getresponse()
            return response.status, response.read()

        status, body = get(f"/Patient?identifier=https://fhir.nhs.uk/Id/nhs-number|{FINN}")
        finn_id = json.loads(body)["entry"][0]["resource"]["id"]
        path = f"/Patient/{finn_id}/$chronology?family=true"
        # Wait until the gateway has filed every record (the entries stop growing).
        last, steady = -1, 0
        for _ in range(600):
            status, body = get(path)
            answer = json.loads(body)
            held = len(answer.get("entries", []))
            steady = steady + 1 if held == last else 0
            if steady >= 5 and held > 0:
                break
            last = held
            time.sleep(1)
        people = len({e["person"] for e in answer["entries"]})
        status, body = get(f"/Patient/{finn_id}/$family")
        family = 1 + len(json.loads(body).get("member", []))
        def timed(path):
            for _ in range(20):
                get(path)
            times = []
            for _ in range(requests):
                started = time.perf_counter()
                status, body = get(path)
                times.append((time.perf_counter() - started) * 1000)
                if status != 200:
                    sys.exit(f"{status}: {body[:300]!r}")
            times.sort()
            return statistics.median(times), times[min(len(times) - 1, int(len(times) * 0.99))]

        median, p99 = timed(path)
        findings = len(answer.get("findings", []))
        withheld = answer.get("withheld", {}).get("count", 0)
        print(f"| family chronology (`$chronology?family=true`) of a family of {family} from {sent} events sent: "
              f"{held} entries about {people} of them, {findings} findings, {withheld} records withheld and counted; "
              f"one keep-alive connection, {requests} requests "
              f"| {median:.1f} ms | {p99:.1f} ms | median ≤ 20 ms |")
        median, p99 = timed(f"/Patient/{finn_id}/$everything?family=true")
        print(f"| the same family's `$everything?family=true` (the same fan-out, decisions and ledger entries, "
              f"without the chronology), for comparison | {median:.1f} ms | {p99:.1f} ms | |")
    finally:
        demo.send_signal(signal.SIGINT)
        demo.wait(timeout=60)


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 300)
