"""Count models of hospitalization burden: penalized GLMs (glum, statsmodels) and LightGBM with SHAP."""
