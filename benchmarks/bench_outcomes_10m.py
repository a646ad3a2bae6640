"""Benchmark: 10 million hospitalization records -> region_period_outcomes, epiatlas (DuckDB) vs plain pandas.

Generates canonical Parquet inputs (records, census, regions) once under benchmarks/_work/, then runs each
implementation in its own subprocess so that wall time and peak RSS are measured separately:

  (a) epiatlas: ingest_source(census), ingest_source(hospitalizations) (contract validation) and
      region_period_outcomes for every period;
  (b) pandas: read the Parquet, apply the same transforms and validation rules, group and standardise.

Prints rows, wall seconds per phase, peak memory, the speed-up, PASS/FAIL against the targets, and checks that
both give the same cases, expected cases and standardised rates.

The pandas baseline is deliberately plain, idiomatic pandas: pyarrow-backed Parquet reads (`to_pandas`), vectorised
`.str` methods (`upper`, `replace`, `fullmatch`), `isin`, `between`, `duplicated(keep=False)`, boolean masks,
`groupby().agg` with named aggregations and `transform("sum")`; no row loops, and no hand tuning either (no
categoricals, no chunking, no numba). It applies the same contract rules but only filters rows, without building
quarantine messages, so it does less work than the epiatlas ingest.

    .venv/bin/python benchmarks/bench_outcomes_10m.py [--rows 10000000] [--regions 2000] [--years 10]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import shapely

from epiatlas.config import OutcomesConfig, SourceConfig
from epiatlas.ingest import ingest_source
from epiatlas.outcomes import region_period_outcomes
from epiatlas.outcomes.intervals import fay_feuer_ci, poisson_exact_ci

WORK = Path(__file__).resolve().parent / "_work"
FIRST_YEAR = 2015
AGE_GROUPS = [f"{a}-{a + 4}" for a in range(0, 85, 5)] + ["85+"]
AGE_LOWER = np.array([int(g.rstrip("+").split("-")[0]) for g in AGE_GROUPS])
CASE_CODES = ["E100", "E109", "E110", "E112", "E115", "E119", "E129", "E139", "E149", "E14"]
OTHER_CODES = ["I10", "I219", "I500", "J189", "J449", "K359", "N390", "A09", "O800", "S7200", "E660", "E780"]
STATUSES = np.array(["alive", "death", "transfer", "other"])
ALLOWED_STATUS = set(STATUSES)
ICD10_PATTERN = r"^[A-Z][0-9]{2}[0-9A-Z]{0,4}$"
TARGET_SPEEDUP, TARGET_PEAK_GIB, TARGET_SECONDS_10M = 5.0, 2.0, 15.0
CHUNK_ROWS = 1_000_000


def region_ids(n_regions: int) -> np.ndarray:
    """Region codes R00000, R00001, ..."""
    return np.array([f"R{i:05d}" for i in range(n_regions)])


def write_regions(path: Path, n_regions: int) -> None:
    """Regions as 0.1-degree squares on a grid over central Mexico, in the canonical layout."""
    side = int(np.ceil(np.sqrt(n_regions)))
    i = np.arange(n_regions)
    lon, lat = -104.0 + (i % side) * 0.1, 17.0 + (i // side) * 0.1
    boxes = shapely.box(lon, lat, lon + 0.1, lat + 0.1)
    table = pa.table(
        {
            "region_id": region_ids(n_regions), "name": [f"Region {k}" for k in i],
            "parent_id": pa.nulls(n_regions, pa.string()), "parent_name": pa.nulls(n_regions, pa.string()),
            "area_km2": np.full(n_regions, 110.0), "centroid_lon": lon + 0.05, "centroid_lat": lat + 0.05,
            "geometry": shapely.to_wkb(boxes),
        }
    )  # fmt: skip
    pq.write_table(table, path)


def write_census(path: Path, n_regions: int, years: list[int], rng: np.random.Generator) -> None:
    """Population by region x year x 5-year age group x sex."""
    n = n_regions * len(years) * len(AGE_GROUPS) * 2
    grid = np.indices((n_regions, len(years), len(AGE_GROUPS), 2)).reshape(4, n)
    size = rng.lognormal(9.5, 1.0, n_regions)[grid[0]]
    shares = np.exp(-AGE_LOWER / 40.0)[grid[2]]
    table = pa.table(
        {
            "region_id": region_ids(n_regions)[grid[0]], "year": np.array(years, dtype=np.int32)[grid[1]],
            "age_group": np.array(AGE_GROUPS)[grid[2]], "sex": np.array(["M", "F"])[grid[3]],
            "population": np.maximum(1, (size * shares / 10).round()).astype(np.int64) + 50,
        }
    )  # fmt: skip
    pq.write_table(table, path)


def labels(codes: np.ndarray, values: np.ndarray | list[str]) -> pa.Array:
    """String array values[codes], built through a dictionary array (fast for millions of rows)."""
    return pa.DictionaryArray.from_arrays(pa.array(codes, pa.int32()), pa.array(values)).cast(pa.string())


def hospitalization_chunk(
    start: int, rows: int, n_regions: int, years: list[int], rng: np.random.Generator
) -> pa.Table:
    """One chunk of canonical records; about 0.1% break a contract rule so validation has work to do."""
    year = rng.integers(years[0], years[-1] + 1, rows)
    admission = (year - 1970).astype("datetime64[Y]").astype("datetime64[D]") + rng.integers(0, 365, rows)
    los = rng.geometric(0.15, rows) - 1
    codes = np.array(CASE_CODES + OTHER_CODES)
    probs = np.r_[np.full(len(CASE_CODES), 0.3 / len(CASE_CODES)), np.full(len(OTHER_CODES), 0.7 / len(OTHER_CODES))]
    status = rng.choice(len(STATUSES), rows, p=[0.88, 0.05, 0.05, 0.02])
    age = np.minimum(rng.gamma(4.0, 12.0, rows).astype(np.int32), 104)
    bad = rng.random(rows) < 0.001
    age[bad & (rng.random(rows) < 0.5)] = 130  # out of range
    los[bad & (age != 130)] = -2  # discharge before admission
    icu = pa.array(rng.random(rows) < 0.05, mask=rng.random(rows) < 0.02)
    return pa.table(
        {
            "record_id": pa.array(np.arange(start, start + rows)).cast(pa.string()),
            "admission_date": pa.array(admission, pa.date32()),
            "discharge_date": pa.array(admission + los, pa.date32()),
            "region_id": labels(rng.integers(0, n_regions, rows), region_ids(n_regions)),
            "age": pa.array(age),
            "sex": labels(rng.integers(0, 2, rows), ["M", "F"]),
            "icd10": labels(rng.choice(len(codes), rows, p=probs), codes),
            "discharge_status": labels(status, STATUSES),
            "icu": icu,
        }
    )  # fmt: skip


def generate(work: Path, rows: int, n_regions: int, n_years: int) -> dict[str, Path]:
    """Write the three inputs (skipped when a previous run left the same sizes)."""
    work.mkdir(parents=True, exist_ok=True)
    paths = {name: work / f"{name}.parquet" for name in ("regions", "census", "hospitalizations")}
    stamp = work / "inputs.json"
    spec = {"rows": rows, "regions": n_regions, "years": n_years}
    if stamp.exists() and json.loads(stamp.read_text()) == spec and all(p.exists() for p in paths.values()):
        return paths
    rng = np.random.default_rng(2026)
    years = list(range(FIRST_YEAR, FIRST_YEAR + n_years))
    write_regions(paths["regions"], n_regions)
    write_census(paths["census"], n_regions, years, rng)
    first = hospitalization_chunk(0, min(rows, CHUNK_ROWS), n_regions, years, rng)
    with pq.ParquetWriter(paths["hospitalizations"], first.schema) as writer:
        writer.write_table(first)
        for start in range(CHUNK_ROWS, rows, CHUNK_ROWS):
            writer.write_table(hospitalization_chunk(start, min(CHUNK_ROWS, rows - start), n_regions, years, rng))
    stamp.write_text(json.dumps(spec))
    return paths


class Phases:
    """Wall-clock seconds of the named steps of one job."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self._last = time.perf_counter()

    def done(self, name: str) -> None:
        """Record the time since the previous step under `name`."""
        now = time.perf_counter()
        self.seconds[name] = now - self._last
        self._last = now


def run_epiatlas(paths: dict[str, Path], years: list[int], phases: Phases) -> tuple[pd.DataFrame, int]:
    """Contract-validated ingest of census and records, then region_period_outcomes for every year."""
    con = duckdb.connect()
    con.execute(f"SET temp_directory = '{paths['regions'].parent / 'duckdb_spill'}'")
    con.execute(f"CREATE TABLE regions AS SELECT * FROM read_parquet('{paths['regions']}')")
    ingest_source(con, "census", SourceConfig(path=paths["census"]))
    phases.done("regions+census")
    result = ingest_source(con, "hospitalizations", SourceConfig(path=paths["hospitalizations"]))
    phases.done("read+validate")
    con.execute("CREATE VIEW census AS SELECT * FROM staged_census")
    con.execute("CREATE VIEW hospitalizations AS SELECT * FROM staged_hospitalizations")
    out = region_period_outcomes(con, OutcomesConfig(), years)
    phases.done("outcomes")
    return out, result.rows_read


def pandas_valid_rows(records: pd.DataFrame, regions: set[str]) -> pd.Series:
    """The hospitalizations contract's transforms and rules in pandas: True for rows that would be staged."""
    records["sex"] = records["sex"].str.upper()
    records["icd10"] = records["icd10"].str.upper().str.replace(".", "", regex=False)
    records["discharge_status"] = records["discharge_status"].str.lower()
    required = ["record_id", "admission_date", "discharge_date", "region_id", "age", "sex", "icd10", "discharge_status"]
    return (
        records[required].notna().all(axis=1)
        & records["age"].between(0, 120)
        & records["sex"].isin(["M", "F"])
        & records["discharge_status"].isin(ALLOWED_STATUS)
        & records["icd10"].str.fullmatch(ICD10_PATTERN).fillna(False).astype(bool)
        & (records["discharge_date"] >= records["admission_date"])
        & records["region_id"].isin(regions)
        & ~records["record_id"].duplicated(keep=False)
    )


def run_pandas(paths: dict[str, Path], years: list[int], phases: Phases) -> tuple[pd.DataFrame, int]:
    """The same job in plain pandas: read, validate, case-filter, group by stratum, standardise."""
    regions = pd.read_parquet(paths["regions"], columns=["region_id"])
    census = pd.read_parquet(paths["census"])
    census = census[census["region_id"].isin(set(regions["region_id"])) & (census["population"] >= 0)]
    records = pq.read_table(paths["hospitalizations"]).to_pandas(date_as_object=False)
    rows_read = len(records)
    records = records[pandas_valid_rows(records, set(regions["region_id"]))]
    phases.done("read+validate")
    prefix = records["icd10"].str.slice(0, 3)
    cases = records[(prefix >= "E10") & (prefix <= "E14")].copy()
    cases["period"] = cases["admission_date"].dt.year
    cases = cases[cases["period"].isin(years)]
    group = np.searchsorted(AGE_LOWER, cases["age"].to_numpy(), side="right") - 1
    cases["age_group"] = np.array(AGE_GROUPS)[group]
    los = (cases["discharge_date"] - cases["admission_date"]).dt.days
    cases["death"] = cases["discharge_status"] == "death"
    cases["severe"] = cases["death"] | (los > 14) | cases["icu"].fillna(False).astype(bool)
    keys = ["region_id", "period", "age_group", "sex"]
    counted = cases.groupby(keys).agg(
        cases=("record_id", "size"), deaths=("death", "sum"), severe_cases=("severe", "sum")
    )
    pop = census[census["year"].isin(years)].rename(columns={"year": "period"}).groupby(keys)["population"].sum()
    strata = pd.concat([pop, counted], axis=1).fillna(0).reset_index()
    rates = strata.groupby(["period", "age_group", "sex"])[["cases", "population"]].transform("sum")
    strata["expected"] = strata["population"] * rates["cases"] / rates["population"]
    reference = census.groupby(["age_group", "sex"])["population"].sum()
    stratum_keys = pd.MultiIndex.from_frame(strata[["age_group", "sex"]])
    strata["w"] = (reference / reference.sum()).reindex(stratum_keys).to_numpy()
    safe_n = strata["population"].where(strata["population"] > 0)
    strata["dsr"] = strata["w"] * strata["cases"] / safe_n
    strata["var"] = strata["w"] ** 2 * strata["cases"] / safe_n**2
    strata["wmax"] = strata["w"] / safe_n
    out = strata.groupby(["region_id", "period"]).agg(
        cases=("cases", "sum"), deaths=("deaths", "sum"), severe_cases=("severe_cases", "sum"),
        population=("population", "sum"), expected_cases=("expected", "sum"), std_rate=("dsr", "sum"),
        var=("var", "sum"), wmax=("wmax", "max"),
    ).reset_index()  # fmt: skip
    lo, hi = poisson_exact_ci(out["cases"].to_numpy(), 0.95)
    out["shr"], out["shr_lower"], out["shr_upper"] = (x / out["expected_cases"] for x in (out["cases"], lo, hi))
    out["crude_rate"] = out["cases"] / out["population"] * 1e5
    std_lo, std_hi = fay_feuer_ci(out["std_rate"], out["var"], out["wmax"], 0.95)
    out["std_rate_lower"], out["std_rate_upper"] = std_lo * 1e5, std_hi * 1e5
    out["std_rate"] = out["std_rate"] * 1e5
    out["suppressed"] = (out["cases"] > 0) & (out["cases"] < 5)
    out = out.drop(columns=["var", "wmax"]).sort_values(["region_id", "period"], ignore_index=True)
    phases.done("outcomes")
    return out, rows_read


def child(which: str, work: Path, years: list[int]) -> None:
    """Run one implementation, write its output, print wall seconds, phases and peak RSS as JSON."""
    paths = {name: work / f"{name}.parquet" for name in ("regions", "census", "hospitalizations")}
    job = run_epiatlas if which == "epiatlas" else run_pandas
    phases = Phases()
    out, rows_read = job(paths, years, phases)
    out.to_parquet(work / f"out_{which}.parquet")
    peak_gib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / 2**30
    figures = {"seconds": sum(phases.seconds.values()), "phases": phases.seconds, "peak_gib": peak_gib}
    print(json.dumps({**figures, "rows_read": rows_read, "out_rows": len(out)}))


def measure(which: str, work: Path, years: list[int]) -> dict:
    """Run `child` in a fresh interpreter and parse its figures."""
    cmd = [sys.executable, __file__, "--child", which, "--work", str(work), "--years", str(len(years))]
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"{which} failed:\n{done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def same_results(work: Path) -> bool:
    """Both implementations agree on cases, deaths, severe cases, expected cases and standardised rates."""
    a = pd.read_parquet(work / "out_epiatlas.parquet").set_index(["region_id", "period"]).sort_index()
    b = pd.read_parquet(work / "out_pandas.parquet").set_index(["region_id", "period"]).sort_index()
    columns = ["cases", "deaths", "severe_cases", "expected_cases", "shr_upper", "std_rate", "std_rate_upper"]
    a, b = a[columns].astype(float), b[columns].astype(float)
    return list(a.index) == list(b.index) and np.allclose(a.to_numpy(), b.to_numpy(), rtol=1e-9, equal_nan=True)


def report(figures: dict[str, dict], rows: int, work: Path) -> None:
    """Print each job's figures and PASS/FAIL against the targets."""
    for which, f in figures.items():
        phases = ", ".join(f"{name} {sec:.2f} s" for name, sec in f["phases"].items())
        print(f"{which:9s} rows read {f['rows_read']:>12,}  output rows {f['out_rows']:>7,}  "
              f"wall {f['seconds']:7.2f} s ({phases})  peak RSS {f['peak_gib']:5.2f} GiB")  # fmt: skip
    ours, theirs = figures["epiatlas"], figures["pandas"]
    speedup = theirs["seconds"] / ours["seconds"]
    per_10m = ours["seconds"] * 10_000_000 / rows
    checks = {
        f"speed-up {speedup:.1f}x >= {TARGET_SPEEDUP:.0f}x": speedup >= TARGET_SPEEDUP,
        f"epiatlas peak {ours['peak_gib']:.2f} GiB < {TARGET_PEAK_GIB:.0f} GiB": ours["peak_gib"] < TARGET_PEAK_GIB,
        f"epiatlas {per_10m:.1f} s per 10M rows < {TARGET_SECONDS_10M:.0f} s": per_10m < TARGET_SECONDS_10M,
        "epiatlas and pandas give the same table": same_results(work),
    }
    for label, passed in checks.items():
        print(f"{'PASS' if passed else 'FAIL'}  {label}")


def main() -> None:
    """Generate inputs if needed, measure both jobs in subprocesses, print the comparison."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--regions", type=int, default=2000)
    parser.add_argument("--years", type=int, default=10)
    parser.add_argument("--work", type=Path, default=WORK)
    parser.add_argument("--child", choices=["epiatlas", "pandas"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    years = list(range(FIRST_YEAR, FIRST_YEAR + args.years))
    if args.child:
        child(args.child, args.work, years)
        return
    started = time.perf_counter()
    generate(args.work, args.rows, args.regions, args.years)
    elapsed = time.perf_counter() - started
    print(f"inputs: {args.rows:,} records, {args.regions:,} regions, {args.years} years (ready in {elapsed:.1f} s)")
    report({which: measure(which, args.work, years) for which in ("epiatlas", "pandas")}, args.rows, args.work)


if __name__ == "__main__":
    main()
