#!/usr/bin/env python3
"""Generate the growth test cases that Kinfold's SDS must agree with.

The oracle is the RCPCH reference implementation, the PyPI package `rcpchgrowth` (AGPL-3.0),
called only through its public `Measurement` class; its answers are written to
crates/kinfold-growth/tests/data/oracle-cases.csv, which `cargo test -p kinfold-growth` reads.
Nothing from the package is copied into Kinfold. Run it in a virtual environment:

    python3 -m venv /tmp/rcpch && /tmp/rcpch/bin/pip install rcpchgrowth==4.6.5
    /tmp/rcpch/bin/python scripts/growth/oracle_cases.py

Cases: random term and preterm children across 23 weeks' gestation to 20 years for every measure
and sex, plus the ages either side of each reference boundary (2 weeks after term, 2 years,
4 years, 20 years, head circumference's 17 and 18 years) and ages where there is no reference.
The value measured is drawn near the reference (within about ±3.5 SDS) and rounded as a clinic
would record it; the oracle's SDS for that rounded value is the expected answer.
"""

import csv
import pathlib
import random
from datetime import date, timedelta
from importlib import metadata

from rcpchgrowth import Measurement
from rcpchgrowth.global_functions import measurement_from_sds

OUT = (pathlib.Path(__file__).resolve().parents[2] / "crates" / "kinfold-growth" / "tests" / "data"
       / "oracle-cases.csv")
MEASURES = ["weight", "height", "bmi", "ofc"]
SEXES = ["male", "female"]
DECIMALS = {"weight": 3, "height": 1, "bmi": 2, "ofc": 1}
rng = random.Random(20261126)


def oracle(sex, birth, observed, weeks, days, measure, value):
    """The oracle's chronological and corrected SDS, or None where it has no reference."""
    result = Measurement(sex=sex, birth_date=birth, observation_date=observed,
                         measurement_method=measure, observation_value=value,
                         gestation_weeks=weeks, gestation_days=days,
                         reference="uk-who").measurement["measurement_calculated_values"]
    return result["chronological_sds"], result["corrected_sds"]


def plausible_value(sex, age, measure):
    """A value near the reference at this age, or a made-up one where there is no reference."""
    z = rng.uniform(-3.5, 3.5)
    try:
        value = measurement_from_sds(reference="uk-who", requested_sds=z,
                                     measurement_method=measure, sex=sex, age=age)
    except Exception:  # no reference at this age: any positive value will do
        value = None
    if value is None:
        value = {"weight": 2.0, "height": 40.0, "bmi": 14.0, "ofc": 30.0}[measure] * rng.uniform(0.8, 1.2)
    return round(float(value), DECIMALS[measure])


def case(sex, weeks, days, age_days_from_birth, measure):
    birth = date(2010, 1, 1) + timedelta(days=rng.randrange(0, 3000))
    observed = birth + timedelta(days=age_days_from_birth)
    correction = 280 - (weeks * 7 + days)
    # Draw the value for the age the chart would use: corrected for the preterm, chronological otherwise.
    chart_age = (age_days_from_birth - (correction if weeks < 37 else 0)) / 365.25
    value = plausible_value(sex, chart_age, measure)
    chronological, corrected = oracle(sex, birth, observed, weeks, days, measure, value)
    return {
        "sex": sex, "birth_date": birth.isoformat(), "observation_date": observed.isoformat(),
        "gestation_weeks": weeks, "gestation_days": days, "measurement_method": measure,
        "observation_value": value,
        "chronological_sds": "" if chronological is None else repr(float(chronological)),
        "corrected_sds": "" if corrected is None else repr(float(corrected)),
    }


def main():
    rows = []
    # Random term children, 0 to 20 years.
    for _ in range(360):
        rows.append(case(rng.choice(SEXES), rng.randint(37, 41), rng.randint(0, 6),
                         rng.randint(0, int(20 * 365.25)), rng.choice(MEASURES)))
    # Random preterm babies, 23 to 36 weeks, from birth to 3 years.
    for _ in range(200):
        rows.append(case(rng.choice(SEXES), rng.randint(23, 36), rng.randint(0, 6),
                         rng.randint(0, 3 * 365), rng.choice(MEASURES)))
    # Boundaries, for every measure and sex: days from birth of a 40-week baby.
    boundaries = [13, 14, 15, 729, 730, 731, 732, 1460, 1461, 1462, 6209, 6210, 6574, 6575, 7304,
                  7305, 7306]
    for measure in MEASURES:
        for sex in SEXES:
            for day in boundaries:
                rows.append(case(sex, 40, 0, day, measure))
            # Preterm babies either side of 2 weeks after term and at birth.
            for weeks, day in [(24, 0), (26, 0), (30, 111), (30, 112), (30, 113), (34, 55), (34, 56)]:
                rows.append(case(sex, weeks, 0, day, measure))
    fields = ["sex", "birth_date", "observation_date", "gestation_weeks", "gestation_days",
              "measurement_method", "observation_value", "chronological_sds", "corrected_sds"]
    with OUT.open("w", newline="") as out:
        out.write(f"# Expected SDS from rcpchgrowth {metadata.version('rcpchgrowth')} (PyPI), "
                  "generated by scripts/growth/oracle_cases.py; empty = no reference.\n")
        writer = csv.DictWriter(out, fieldnames=fields, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    print(f"{len(rows)} cases, "
          f"{sum(1 for r in rows if r['chronological_sds'] == '')} without a chronological reference")


if __name__ == "__main__":
    main()
