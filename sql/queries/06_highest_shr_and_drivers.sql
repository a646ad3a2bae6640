-- The 20 regions with the highest standardised hospitalization ratio (SHR) in the latest period, with the three
-- covariates that move their modelled rate most (SHAP, signed: > 0 raises the log rate ratio). Hidden cells are
-- blank in region_profile (as in published_outcomes), so they never rank.
SELECT region_id, name, parent_name AS state, period, cases, round(expected_cases, 1) AS expected,
       round(shr, 3) AS shr, round(shr_lower, 3) AS shr_lower, round(shr_upper, 3) AS shr_upper,
       driver_1, round(driver_1_shap, 3) AS driver_1_shap,
       driver_2, round(driver_2_shap, 3) AS driver_2_shap,
       driver_3, round(driver_3_shap, 3) AS driver_3_shap
FROM region_profile AS p
WHERE period = (SELECT max(period) FROM region_profile)
  AND p.shr IS NOT NULL
ORDER BY p.shr DESC, region_id  -- the unrounded ratio (the alias shr is rounded)
LIMIT 20;
