"""The demo's config.yaml: relative source paths, the Spanish column names and the code recodes."""

from __future__ import annotations

from pathlib import Path

from epiatlas.config import (
    EpiatlasConfig,
    ExposureConfig,
    PeriodsConfig,
    SourceConfig,
    SourcesConfig,
    WarehouseConfig,
    dump_config,
)
from epiatlas.demo.pollution import POLLUTANTS
from epiatlas.demo.severity import STATUS_CODES
from epiatlas.demo.socioeconomic import INDICATORS
from epiatlas.demo.spec import DemoSpec
from epiatlas.imaging.config import ImagingConfig
from epiatlas.imaging.settings import TrainSettings
from epiatlas.indices.settings import IndicesSettings
from epiatlas.reports.config import ReportsConfig

DEMO_NAME = "epiatlas demo (synthetic data)"
PROJECTED_CRS = "EPSG:6372"  # Mexico ITRF2008 / LCC
FILES = {
    "regions": "regions.gpkg",
    "census": "censo.csv",
    "hospitalizations": "egresos.parquet",
    "pollutant_stations": "estaciones.csv",
    "pollutant_readings": "mediciones.parquet",
    "socioeconomic_indicators": "indicadores_socioeconomicos.csv",
    "cxr_manifest": "cxr/manifest.csv",
}
IMAGE_ROOT = "cxr"
REGIONS_LAYER = "municipios"
SEX_RECODE = {"H": "M", "M": "F"}


def demo_sources() -> SourcesConfig:
    """Source entries for the files the generator writes."""
    return SourcesConfig(
        regions=SourceConfig(
            path=Path(FILES["regions"]),
            layer=REGIONS_LAYER,
            columns={"region_id": "CVE_MUN", "name": "NOM_MUN", "parent_id": "CVE_ENT", "parent_name": "NOM_ENT"},
        ),
        census=SourceConfig(
            path=Path(FILES["census"]),
            columns={
                "region_id": "cve_mun", "year": "anio", "age_group": "grupo_edad", "sex": "sexo",
                "population": "poblacion",
            },
            recode={"sex": SEX_RECODE},
        ),
        hospitalizations=SourceConfig(
            path=Path(FILES["hospitalizations"]),
            columns={
                "record_id": "folio", "admission_date": "fecha_ingreso", "discharge_date": "fecha_egreso",
                "region_id": "cve_mun_res", "age": "edad", "sex": "sexo", "icd10": "diag_principal",
                "discharge_status": "motivo_egreso", "icu": "uci",
            },
            recode={
                "sex": SEX_RECODE,
                "discharge_status": {code: status for status, code in STATUS_CODES.items()},
                "icu": {"S": "true", "N": "false"},
            },
        ),
        pollutant_stations=SourceConfig(
            path=Path(FILES["pollutant_stations"]),
            columns={"station_id": "id_estacion", "name": "nombre", "lon": "longitud", "lat": "latitud"},
        ),
        pollutant_readings=SourceConfig(
            path=Path(FILES["pollutant_readings"]),
            columns={
                "station_id": "id_estacion", "date": "fecha", "pollutant": "contaminante", "value": "valor",
                "unit": "unidad",
            },
            recode={
                "pollutant": {p.file_name: p.canonical for p in POLLUTANTS if p.file_name != p.canonical},
                "unit": {"µg/m³": "ug/m3", "mg/m³": "mg/m3"},
            },
        ),
        socioeconomic_indicators=SourceConfig(
            path=Path(FILES["socioeconomic_indicators"]),
            columns={"region_id": "cve_mun", "year": "anio"} | {i.canonical: i.file_column for i in INDICATORS},
        ),
        cxr_manifest=SourceConfig(path=Path(FILES["cxr_manifest"])),
    )  # fmt: skip


def demo_config(spec: DemoSpec) -> EpiatlasConfig:
    """The demo run's configuration (paths relative to the config file's folder)."""
    return EpiatlasConfig(
        name=DEMO_NAME,
        synthetic=True,
        sources=demo_sources(),
        periods=PeriodsConfig(start=spec.years[0], end=spec.years[-1]),
        warehouse=WarehouseConfig(root=Path("warehouse")),
        exposure=ExposureConfig(projected_crs=PROJECTED_CRS),
        # The demo's indicators are logistic in correlated latent factors: logit + oblique rotation recover them
        # (Tucker congruence >= 0.95 per factor against truth.json; see tests/test_indices.py).
        indices=IndicesSettings(transform="logit", rotation="oblimin"),
        imaging=ImagingConfig(
            image_root=Path(IMAGE_ROOT),
            # bf16 autocast halves the small CNN's step time on the CPU (measured; see the imaging notes).
            train=TrainSettings(image_size=spec.image_size, epochs=spec.imaging_epochs, patience=3, precision="bf16"),
        ),
        # One report per state and a national summary: per-municipality reports (2,400 x 10 periods) would make the
        # reports the slowest step of `make demo`. Set `reports: {level: region}` for one report per municipality.
        reports=ReportsConfig(level="parent"),
    )


def write_demo_config(spec: DemoSpec, out_dir: Path) -> Path:
    """Write config.yaml into `out_dir` and return its path."""
    path = out_dir / "config.yaml"
    dump_config(demo_config(spec), path)
    return path
