#!/usr/bin/env python3
"""Extract the UK-WHO LMS figures into Kinfold's own table format.

The reachable copy of the UK90 figures is the data shipped in the PyPI package `rcpchgrowth`
(AGPL-3.0). This script reads only the numbers from its JSON data files (none of its code is
used or copied) and writes one CSV per reference into crates/kinfold-growth/data/, each headed by
its provenance. Run it in a virtual environment with the package installed:

    python3 -m venv /tmp/rcpch && /tmp/rcpch/bin/pip install rcpchgrowth==4.6.5
    /tmp/rcpch/bin/python scripts/growth/extract_lms.py

Output columns: measure (weight, height, bmi, ofc), sex (male, female), decimal_age (years from
the expected date of delivery at 40 weeks, exactly as published), l, m, s. Rows the source leaves
blank (no reference at that age) are left out.
"""

import json
import pathlib
from importlib import metadata, resources

OUT = pathlib.Path(__file__).resolve().parents[2] / "crates" / "kinfold-growth" / "data"
PACKAGE_VERSION = metadata.version("rcpchgrowth")

TABLES = [
    # (output file, source file inside rcpchgrowth/data_tables, age limit kept, description)
    ("uk90-preterm.csv", "uk90_preterm.json", None,
     "UK90 preterm and birth: 23 to 42 weeks' gestation (used below 2 weeks after term)"),
    ("who2006-infant.csv", "who/who_infants.json", None,
     "WHO 2006 Child Growth Standards, 0 to 2 years, length lying (used from 2 weeks to 2 years)"),
    ("who2006-child.csv", "who/who_children.json", 4.02,
     "WHO 2006 Child Growth Standards, 2 years on, height standing (used from 2 to 4 years)"),
    ("uk90-child.csv", "uk90_child.json", None,
     "UK90, 4 to 20 years (used from 4 to 20 years)"),
]

UK90_NOTICE = (
    "UK 1990 reference data, reanalysed 2009 (Cole TJ, Freeman JV, Preece MA; Medical Research "
    "Council). Copyright (c) Medical Research Council / RCPCH. Free to use with acknowledgement of "
    "its source; not to be supplied to others for financial gain; no rights are claimed over it."
)
WHO_NOTICE = (
    "WHO Multicentre Growth Reference Study Group. WHO Child Growth Standards: length/height-for-"
    "age, weight-for-age, weight-for-length, weight-for-height and body mass index-for-age: "
    "methods and development. Geneva: World Health Organization, 2006. (c) World Health "
    "Organization."
)


def fmt(value):
    return repr(float(value)) if not isinstance(value, int) else str(value)


def main():
    base = resources.files("rcpchgrowth.data_tables")
    for out_name, source, age_limit, description in TABLES:
        data = json.loads((base / source).read_text())
        measurements = data["measurement"]
        notice = WHO_NOTICE if source.startswith("who/") else UK90_NOTICE
        rows = 0
        lines = []
        for measure in ("weight", "height", "bmi", "ofc"):
            for sex in ("male", "female"):
                for entry in measurements[measure][sex]:
                    if any(entry[key] in ("", None) for key in ("L", "M", "S")):
                        continue
                    if age_limit is not None and entry["decimal_age"] > age_limit:
                        continue
                    lines.append(",".join([measure, sex, repr(entry["decimal_age"]),
                                           fmt(entry["L"]), fmt(entry["M"]), fmt(entry["S"])]))
                    rows += 1
        header = [
            f"# {description}.",
            f"# {notice}",
            f"# Numbers extracted by scripts/growth/extract_lms.py from rcpchgrowth {PACKAGE_VERSION}"
            f" (PyPI), data_tables/{source}; {rows} rows"
            + (f", ages up to {age_limit} years kept" if age_limit else "") + ".",
            "measure,sex,decimal_age,l,m,s",
        ]
        (OUT / out_name).write_text("\n".join(header + lines) + "\n")
        print(f"{out_name}: {rows} rows")


if __name__ == "__main__":
    main()
