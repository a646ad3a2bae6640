"""The modelling table joins outcomes, parent regions, exposures, indices and user covariates without losing rows."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from epiatlas.errors import ModelError
from epiatlas.models.frame import join_covariates, model_frame


def _outcomes() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "region_id": ["a", "a", "b", "b"],
            "period": [2020, 2021, 2020, 2021],
            "cases": [3, 4, 10, 12],
            "deaths": [0, 1, 2, 2],
            "severe_cases": [1, 1, 3, 4],
            "population": [1000, 1000, 2000, 2000],
            "expected_cases": [3.5, 3.9, 9.0, 11.6],
        }
    )


def test_joins_every_source_and_keeps_missing_values() -> None:
    regions = pd.DataFrame({"region_id": ["a", "b"], "parent_id": ["P", "Q"]})
    exposure = pd.DataFrame(
        {"region_id": ["a", "a", "b"], "period": [2020, 2021, 2020], "pollutant": ["PM25"] * 3, "mean": [10.0, 11.0, 20.0]}
    )
    indices = pd.DataFrame(
        {"region_id": ["a", "a", "b", "b"], "period": [2020, 2021, 2020, 2021], "index": ["composite"] * 4,
         "score": [0.1, 0.2, -0.3, -0.1]}
    )
    covariates = pd.DataFrame({"region_id": ["a", "b"], "clinics_per_10k": [1.5, 2.5]})  # no period: every period
    frame = model_frame(_outcomes(), regions, exposure, indices, covariates)
    assert len(frame) == 4
    assert list(frame["parent_id"]) == ["P", "P", "Q", "Q"]
    assert np.isnan(frame.loc[(frame.region_id == "b") & (frame.period == 2021), "pm25"]).all()
    assert list(frame["index_composite"]) == [0.1, 0.2, -0.3, -0.1]
    assert list(frame["clinics_per_10k"]) == [1.5, 1.5, 2.5, 2.5]


def test_clashing_covariate_name_is_an_error() -> None:
    regions = pd.DataFrame({"region_id": ["a", "b"], "parent_id": ["P", "Q"]})
    with pytest.raises(ModelError, match="clash"):
        model_frame(_outcomes(), regions, covariates=pd.DataFrame({"region_id": ["a"], "population": [1.0]}))


def test_missing_outcome_columns_named() -> None:
    regions = pd.DataFrame({"region_id": ["a"], "parent_id": ["P"]})
    with pytest.raises(ModelError, match="expected_cases"):
        model_frame(_outcomes().drop(columns="expected_cases"), regions)


def test_covariate_tables_join_on_their_own_keys() -> None:
    yearly = pd.DataFrame({"region_id": ["a", "a", "b"], "period": [2020, 2021, 2020], "clinics": [1.0, 2.0, 3.0]})
    static = pd.DataFrame({"region_id": ["a", "b"], "altitude": [100.0, 2000.0]})
    assert join_covariates([]) is None
    joined = join_covariates([yearly, static]).sort_values(["region_id", "period"])
    assert list(joined["altitude"]) == [100.0, 100.0, 2000.0] and list(joined["clinics"]) == [1.0, 2.0, 3.0]
