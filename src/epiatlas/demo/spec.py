"""The knobs of the synthetic demo: sizes and the seed. Defaults give the full demo."""

from __future__ import annotations

import zlib
from dataclasses import asdict, dataclass

import numpy as np


@dataclass(frozen=True)
class DemoSpec:
    """Size and seed of a demo data set; the same spec always gives the same files."""

    seed: int = 20240517
    n_municipalities: int = 2400
    min_municipalities_per_state: int = 3
    first_year: int = 2013
    n_years: int = 10
    n_stations: int = 130
    population_2020: int = 126_000_000
    records_scale: float = 0.35
    defect_share: float = 0.0005
    implausible_reading_share: float = 0.00002
    n_images: int = 3200  # synthetic chest X-ray phantoms spread over the municipalities and years
    image_size: int = 128
    n_imaging_centres: int = 40
    imaging_epochs: int = 5

    @classmethod
    def small(cls, seed: int = 20240517) -> DemoSpec:
        """A few-second demo for tests: ~150 municipalities, 3 years, ~20 stations, ~30k records."""
        return cls(
            seed=seed,
            n_municipalities=150,
            min_municipalities_per_state=2,
            first_year=2018,
            n_years=3,
            n_stations=20,
            population_2020=10_000_000,
            defect_share=0.001,
            implausible_reading_share=0.0005,
            n_images=480,
            n_imaging_centres=12,
            image_size=64,
            imaging_epochs=3,
        )

    @property
    def years(self) -> list[int]:
        """The calendar years covered, in order."""
        return list(range(self.first_year, self.first_year + self.n_years))

    def rng(self, component: str) -> np.random.Generator:
        """An independent random stream per component, so each part is reproducible on its own."""
        return np.random.default_rng([self.seed, zlib.crc32(component.encode("utf-8"))])

    def as_dict(self) -> dict[str, int | float]:
        """The spec as plain JSON-ready values."""
        return asdict(self)
