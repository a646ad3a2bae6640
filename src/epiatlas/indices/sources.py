"""Where indicators come from: the built-in `socioeconomic_indicators` source and the user's covariate tables."""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd

from epiatlas.errors import IndicesError


def indicator_table(
    indicators: pd.DataFrame | None, covariates: Sequence[pd.DataFrame] = (), periods: Sequence[int] = ()
) -> pd.DataFrame:
    """One row per region x period with every available indicator column (`year` becomes `period`).

    Covariate tables without a period apply to every period of the others, or to each of `periods` when no table
    has a period.
    """
    frames = [] if indicators is None else [indicators.rename(columns={"year": "period"})]
    frames += [c for c in covariates if "period" in c.columns]
    if not frames and periods and covariates:
        regions = pd.concat([c[["region_id"]] for c in covariates]).drop_duplicates()
        frames = [regions.merge(pd.DataFrame({"period": pd.array(list(periods), dtype="int32")}), how="cross")]
    if not frames:
        raise IndicesError("no region x period indicator table: configure socioeconomic_indicators or a covariate "
                           "table with a period column")
    table = frames[0]
    for other in frames[1:]:
        table = table.merge(other, on=["region_id", "period"], how="outer")
    for static in (c for c in covariates if "period" not in c.columns):
        table = table.merge(static, on="region_id", how="left")
    return table.sort_values(["region_id", "period"], kind="stable").reset_index(drop=True)
