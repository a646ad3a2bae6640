"""Air pollution: a smooth field per pollutant and year, monitoring stations, and their daily readings."""

from __future__ import annotations

from dataclasses import dataclass

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from scipy.signal import lfilter

from epiatlas.demo.spec import DemoSpec

KM_PER_DEG_LAT = 110.57
KM_PER_DEG_LON = 111.32 * np.cos(np.radians(23.5))  # Mexico's mid latitude; approximate km are enough here
N_CITIES = 15
CITY_MIN_SEPARATION_KM = 100.0
N_REGIONAL_HOTSPOTS = 5
YEAR_NOISE_SD = 0.04
DAY_AUTOCORRELATION = 0.6
RANDOM_MISSING_SHARE = 0.04
LATE_START_SHARE = 0.25
OFFLINE_SHARE = 0.15
RURAL_STATION_SHARE = 0.15
STATION_JITTER_DEG = 0.05


@dataclass(frozen=True)
class Pollutant:
    """How one pollutant's field and readings look (concentrations in the file's unit)."""

    file_name: str
    canonical: str
    unit: str
    decimals: int
    background: float
    urban_amplitude: float
    urban_width_km: float
    regional_amplitude: float
    regional_width_km: float
    trend_per_year: float
    season_amplitude: float
    season_peak_day: int
    day_sd: float
    measured_share: float


POLLUTANTS: list[Pollutant] = [
    Pollutant("PM2.5", "PM25", "µg/m³", 1, 9.0, 14.0, 40.0, 5.0, 250.0, -0.010, 0.25, 15, 0.35, 0.8),
    Pollutant("PM10", "PM10", "µg/m³", 1, 22.0, 30.0, 30.0, 8.0, 250.0, -0.010, 0.25, 80, 0.35, 0.9),
    Pollutant("O3", "O3", "µg/m³", 1, 60.0, 30.0, 70.0, 10.0, 300.0, 0.005, 0.20, 130, 0.25, 0.8),
    Pollutant("NO2", "NO2", "µg/m³", 1, 8.0, 28.0, 15.0, 2.0, 200.0, -0.015, 0.20, 15, 0.35, 0.6),
    Pollutant("SO2", "SO2", "µg/m³", 1, 4.0, 8.0, 30.0, 20.0, 25.0, -0.030, 0.10, 30, 0.45, 0.5),
    Pollutant("CO", "CO", "mg/m³", 2, 0.35, 1.2, 12.0, 0.1, 200.0, -0.020, 0.30, 15, 0.35, 0.5),
]


def to_km(lonlat: np.ndarray) -> np.ndarray:
    """Approximate planar km coordinates of (lon, lat) points, as (n, 2)."""
    return lonlat * np.array([KM_PER_DEG_LON, KM_PER_DEG_LAT])


@dataclass(frozen=True)
class PollutionField:
    """Per pollutant: background + Gaussian bumps around cities and regional hotspots, scaled per year."""

    city_km: np.ndarray  # (c, 2)
    city_weight: np.ndarray  # (p, c)
    hotspot_km: np.ndarray  # (p, h, 2)
    hotspot_weight: np.ndarray  # (p, h)
    year_multiplier: np.ndarray  # (p, t)

    def base_level(self, p: int, points_km: np.ndarray) -> np.ndarray:
        """The pollutant's field before the yearly multiplier, at each point."""
        pol = POLLUTANTS[p]
        city_d2 = ((points_km[:, None, :] - self.city_km[None, :, :]) ** 2).sum(-1)
        hot_d2 = ((points_km[:, None, :] - self.hotspot_km[p][None, :, :]) ** 2).sum(-1)
        urban = np.exp(-0.5 * city_d2 / pol.urban_width_km**2) @ self.city_weight[p]
        regional = np.exp(-0.5 * hot_d2 / pol.regional_width_km**2) @ self.hotspot_weight[p]
        return pol.background + pol.urban_amplitude * urban + pol.regional_amplitude * regional

    def annual_means(self, points_km: np.ndarray) -> np.ndarray:
        """Annual mean concentration at each point, shape (n, t, p)."""
        levels = np.stack([self.base_level(p, points_km) for p in range(len(POLLUTANTS))], axis=-1)
        return levels[:, None, :] * self.year_multiplier.T[None, :, :]


def city_centres(region_km: np.ndarray, sizes: np.ndarray) -> np.ndarray:
    """Indices of the largest municipalities at least CITY_MIN_SEPARATION_KM apart (one per metro area)."""
    chosen: list[int] = []
    for r in np.argsort(-sizes, kind="stable"):
        far = np.hypot(*(region_km[chosen] - region_km[r]).T) > CITY_MIN_SEPARATION_KM
        if far.all():
            chosen.append(int(r))
        if len(chosen) == N_CITIES:
            break
    return np.array(chosen)


def build_field(region_km: np.ndarray, sizes: np.ndarray, spec: DemoSpec) -> PollutionField:
    """Centre bumps on the largest municipalities; place regional hotspots at random municipalities."""
    rng = spec.rng("pollution.field")
    n_p = len(POLLUTANTS)
    cities = city_centres(region_km, sizes)
    city_weight = np.sqrt(sizes[cities] / sizes[cities].max())[None, :] * rng.lognormal(0.0, 0.3, (n_p, N_CITIES))
    hotspots = rng.integers(0, len(region_km), size=(n_p, N_REGIONAL_HOTSPOTS))
    trends = np.array([pol.trend_per_year for pol in POLLUTANTS])[:, None]
    year_noise = rng.normal(0.0, YEAR_NOISE_SD, (n_p, spec.n_years))
    return PollutionField(
        city_km=region_km[cities],
        city_weight=city_weight,
        hotspot_km=region_km[hotspots],
        hotspot_weight=rng.uniform(0.5, 1.5, (n_p, N_REGIONAL_HOTSPOTS)),
        year_multiplier=np.exp(trends * np.arange(spec.n_years)[None, :] + year_noise),
    )


def place_stations(municipalities: gpd.GeoDataFrame, sizes: np.ndarray, spec: DemoSpec) -> pd.DataFrame:
    """Stations mostly in populous municipalities (jittered around the centroid), a few in rural ones."""
    rng = spec.rng("pollution.stations")
    n = spec.n_stations
    urban_p = sizes**1.1 / (sizes**1.1).sum()
    rural = rng.random(n) < RURAL_STATION_SHARE
    host = np.where(rural, rng.integers(0, len(sizes), n), rng.choice(len(sizes), size=n, p=urban_p))
    geoms = municipalities.geometry.values[host]
    xy = shapely.get_coordinates(shapely.centroid(geoms)) + rng.normal(0.0, STATION_JITTER_DEG, (n, 2))
    inside = shapely.contains_xy(geoms, xy[:, 0], xy[:, 1])
    xy[~inside] = shapely.get_coordinates(shapely.point_on_surface(geoms[~inside]))
    letters = np.array(list("ABCDEFGHIJKLMNOPQRSTUVWXYZ"))
    codes = rng.choice(26**3, size=n, replace=False)
    ids = ["".join(letters[[c // 676, (c // 26) % 26, c % 26]]) for c in codes]
    states = municipalities["NOM_ENT"].to_numpy()[host]
    stations = pd.DataFrame(
        {
            "id_estacion": ids,
            "nombre": [f"Estación {code} ({state})" for state, code in zip(states, ids, strict=True)],
            "longitud": np.round(xy[:, 0], 6),
            "latitud": np.round(xy[:, 1], 6),
        }
    )
    return stations.sort_values("id_estacion", kind="stable").reset_index(drop=True)


def calendar(spec: DemoSpec) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every day of the demo years: dates, year index and day of year (0-based)."""
    dates = np.arange(
        np.datetime64(f"{spec.first_year}-01-01"), np.datetime64(f"{spec.first_year + spec.n_years}-01-01")
    )
    year_start = dates.astype("datetime64[Y]")
    day_of_year = (dates - year_start.astype("datetime64[D]")).astype(int)
    return dates, year_start.astype(int) + 1970 - spec.first_year, day_of_year


def seasonal_profile(year_index: np.ndarray, day_of_year: np.ndarray) -> np.ndarray:
    """Seasonal multiplier per pollutant and day, shape (p, d), averaging exactly 1 within each year."""
    amplitude = np.array([pol.season_amplitude for pol in POLLUTANTS])[:, None]
    peak = np.array([pol.season_peak_day for pol in POLLUTANTS])[:, None]
    raw = 1.0 + amplitude * np.cos(2 * np.pi * (day_of_year[None, :] - peak) / 365.25)
    year_means = np.stack([np.bincount(year_index, weights=row) / np.bincount(year_index) for row in raw])
    return raw / year_means[:, year_index]


def daily_noise(shape: tuple[int, ...], rng: np.random.Generator) -> np.ndarray:
    """Unit-variance AR(1) noise along the last axis (pollution episodes last a few days)."""
    phi = DAY_AUTOCORRELATION
    white = rng.standard_normal(shape)
    white[..., 0] /= np.sqrt(1 - phi**2)
    return lfilter([np.sqrt(1 - phi**2)], [1.0, -phi], white, axis=-1)


def coverage_mask(n_stations: int, n_days: int, rng: np.random.Generator) -> np.ndarray:
    """Which station-pollutant-days have a reading, (s, p, d): late starts, offline months, random gaps."""
    measured = rng.random((n_stations, len(POLLUTANTS))) < np.array([pol.measured_share for pol in POLLUTANTS])
    measured[np.arange(n_stations), rng.integers(0, len(POLLUTANTS), n_stations)] = True
    day = np.arange(n_days)[None, :]
    start = np.where(rng.random(n_stations) < LATE_START_SHARE, rng.integers(0, int(0.6 * n_days), n_stations), 0)
    offline_from = rng.integers(0, n_days, n_stations)
    offline_len = np.where(rng.random(n_stations) < OFFLINE_SHARE, rng.integers(60, 241, n_stations), 0)
    online = (day >= start[:, None]) & ~((day >= offline_from[:, None]) & (day < (offline_from + offline_len)[:, None]))
    present = rng.random((n_stations, len(POLLUTANTS), n_days)) >= RANDOM_MISSING_SHARE
    return measured[:, :, None] & online[:, None, :] & present


def daily_readings(field: PollutionField, stations: pd.DataFrame, spec: DemoSpec) -> pd.DataFrame:
    """Long-format daily readings: the field at each station × season × log-normal AR(1) day noise, with gaps."""
    rng = spec.rng("pollution.readings")
    dates, year_index, day_of_year = calendar(spec)
    station_km = to_km(stations[["longitud", "latitud"]].to_numpy())
    annual = field.annual_means(station_km)  # (s, t, p)
    day_sd = np.array([pol.day_sd for pol in POLLUTANTS])[None, :, None]
    noise = np.exp(day_sd * daily_noise((len(stations), len(POLLUTANTS), len(dates)), rng) - 0.5 * day_sd**2)
    values = annual[:, year_index, :].transpose(0, 2, 1) * seasonal_profile(year_index, day_of_year)[None] * noise
    # nonzero over (station, day, pollutant) yields rows already ordered by station id, date, pollutant
    s_idx, d_idx, p_idx = np.nonzero(coverage_mask(len(stations), len(dates), rng).transpose(0, 2, 1))
    decimals = np.array([pol.decimals for pol in POLLUTANTS])
    return pd.DataFrame(
        {
            "id_estacion": stations["id_estacion"].to_numpy()[s_idx],
            "fecha": dates[d_idx],
            "contaminante": np.array([pol.file_name for pol in POLLUTANTS])[p_idx],
            "valor": np.round(values[s_idx, p_idx, d_idx] * 10.0 ** decimals[p_idx]) / 10.0 ** decimals[p_idx],
            "unidad": np.array([pol.unit for pol in POLLUTANTS])[p_idx],
        }
    )


def inject_implausible(readings: pd.DataFrame, spec: DemoSpec) -> tuple[pd.DataFrame, dict[str, int]]:
    """Flip a few readings negative and set a few to the 9999 sentinel; return the counts."""
    rng = spec.rng("pollution.implausible")
    n = max(2, round(spec.implausible_reading_share * len(readings)))
    rows = rng.choice(len(readings), size=2 * n, replace=False)
    values = readings["valor"].to_numpy(copy=True)
    values[rows[:n]] = -np.maximum(np.abs(values[rows[:n]]), 0.1)
    values[rows[n:]] = 9999.0
    return readings.assign(valor=values), {"negative": n, "sentinel_9999": n}
