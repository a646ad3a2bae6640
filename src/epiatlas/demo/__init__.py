"""Synthetic, realistic demo data with known truth (SYNTHETIC: no real patients or measurements).

`generate_demo(out_dir, DemoSpec())` writes, in the style of Mexican public extracts:
regions.gpkg (layer municipios), censo.csv, egresos.parquet, estaciones.csv, mediciones.parquet,
indicadores_socioeconomicos.csv, truth.json + truth_region_period.parquet, README.txt and config.yaml.

Generative model, for municipality r, year t, 5-year age group a and sex s:
- geography: the 32 real state outlines (libpysal's Mexico example) cut into Voronoi cells around random seeds;
- latent factors F_k[r,t] (marginalization, infrastructure_deficit, health_access_deficit): a poor-state term
  (2000 GDP per capita), a small-place term, spatially smooth and iid noise; slow trends and random-walk drift;
- indicators: percent = 100·expit(intercept + scale·(Σ_k loading_k F_k + uniqueness_r + noise_rt));
- population: log-normal municipal sizes summing to 2020 state totals, a Mexican 2020 pyramid tilted younger
  where marginalization is high, regional growth and slow ageing;
- pollution: per pollutant a field = background + Gaussian bumps around the largest cities + regional hotspots,
  times a yearly multiplier; region exposure x_p[r,t] = the field's annual mean at the centroid; station
  readings = field at the station × seasonal profile × log-normal AR(1) day noise, with gaps;
- diabetes (E10-E14): log λ = log base[a,s] + Σ_k β_k F_k[r,t] + Σ_p γ_p (x_p[r,t] − ref_p)/scale_p
  + δ (t − t0) + u_r, cases ~ Poisson(μ = records_scale · pop · λ); other diagnoses have their own age/sex
  curves; death/ICU are logistic and length of stay gamma (see severity.py);
- a small share of bad rows (discharge before admission, municipality xx999, malformed ICD-10, missing sex)
  and of implausible readings (negative, 9999), all counted in truth.json.
"""

from epiatlas.demo.generate import generate_demo
from epiatlas.demo.spec import DemoSpec
from epiatlas.demo.world import World, build_world

__all__ = ["DemoSpec", "World", "build_world", "generate_demo"]
