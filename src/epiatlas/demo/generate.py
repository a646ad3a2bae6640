"""Write the whole demo folder: input files in Mexican-extract style, truth, README and config.yaml."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

from epiatlas.demo import defects, hospitalizations, pollution, socioeconomic, tables, truth
from epiatlas.demo.config_file import FILES, IMAGE_ROOT, REGIONS_LAYER, write_demo_config
from epiatlas.demo.spec import DemoSpec
from epiatlas.demo.world import build_world
from epiatlas.imaging.phantoms import generate_phantoms

Progress = Callable[[str, float], None]
"""Told after each generation stage: what was done, and the seconds since generation started."""


def _stage_clock(progress: Progress | None) -> Callable[[str], None]:
    """A function reporting one finished stage to `progress` (if any) with the elapsed seconds."""
    start = time.perf_counter()

    def done(stage: str) -> None:
        if progress is not None:
            progress(stage, time.perf_counter() - start)

    return done


def generate_demo(out_dir: Path, spec: DemoSpec = DemoSpec(), progress: Progress | None = None) -> Path:
    """Generate the synthetic demo into `out_dir` and return the path of its config.yaml; `progress` hears of each
    stage as it finishes."""
    done = _stage_clock(progress)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    world = build_world(spec)
    done(f"world: {len(world.municipalities)} municipalities, factors, population, pollution field")
    codes = world.municipalities["CVE_MUN"].to_numpy()

    counts = hospitalizations.sample_counts(world, spec.rng("hospitalizations.counts"))
    records, diag = hospitalizations.records_frame(world, counts, spec.rng("hospitalizations.records"))
    records, defect_counts, defect_diabetes = defects.inject_record_defects(
        records, diag, spec.defect_share, spec.rng("hospitalizations.defects")
    )
    done(f"hospitalizations: {len(records)} records")
    stations = pollution.place_stations(world.municipalities, world.sizes, spec)
    readings, implausible = pollution.inject_implausible(pollution.daily_readings(world.field, stations, spec), spec)
    census = tables.census_table(codes, world.population, spec)
    indicators = tables.indicator_table(codes, socioeconomic.indicator_percents(world.factors, spec), spec)
    done(f"stations, readings ({len(readings)}), census, socioeconomic indicators")

    tables.write_gpkg(world.municipalities, out_dir / FILES["regions"], REGIONS_LAYER)
    tables.write_csv(census, out_dir / FILES["census"])
    tables.write_parquet(records, out_dir / FILES["hospitalizations"], ("fecha_ingreso", "fecha_egreso"))
    tables.write_csv(stations, out_dir / FILES["pollutant_stations"])
    tables.write_parquet(readings, out_dir / FILES["pollutant_readings"], ("fecha",))
    tables.write_csv(indicators, out_dir / FILES["socioeconomic_indicators"])
    done("source files written")
    # Imaging centres: the most populous municipalities, so region x year cells hold enough studies to publish.
    centres = codes[np.argsort(-world.sizes, kind="stable")[: spec.n_imaging_centres]]
    phantoms = generate_phantoms(out_dir / IMAGE_ROOT, spec.n_images, spec.image_size, spec.seed,
                                 regions=pd.DataFrame({"region_id": centres}), periods=spec.years)  # fmt: skip
    phantoms.drop(columns="marker_corner").to_csv(out_dir / FILES["cxr_manifest"], index=False)
    done(f"chest X-ray phantoms: {len(phantoms)} images")
    region_period = truth.region_period_frame(world, counts[0].sum(axis=(2, 3)))
    tables.write_parquet(region_period, out_dir / truth.REGION_PERIOD_FILE)

    summary = {
        "files": FILES,
        "rows": {
            "municipalities": len(world.municipalities),
            "census": len(census),
            "hospitalizations": len(records),
            "diabetes_records_sampled": int(counts[0].sum()),
            "stations": len(stations),
            "readings": len(readings),
            "socioeconomic_indicators": len(indicators),
            "cxr_phantoms": len(phantoms),
        },
        "expected_records": world.expected_records(),
        "injected_defects": defect_counts,
        "injected_defects_on_diabetes_records": defect_diabetes,
        "injected_implausible_readings": implausible,
    }
    document = truth.truth_document(world, summary)
    (out_dir / "truth.json").write_text(json.dumps(document, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    tables.write_readme(out_dir / "README.txt", spec)
    config = write_demo_config(spec, out_dir)
    done("truth.json, README.txt, config.yaml")
    return config
