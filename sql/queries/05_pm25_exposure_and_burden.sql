-- PM2.5 exposure bands against the pooled standardised ratio: sum of observed over sum of expected
-- (visible cells of published_outcomes only).
WITH pm AS (
    SELECT region_id, period, mean AS pm25, exceedance_days
    FROM pollutant_exposure
    WHERE pollutant = 'PM25' AND assignment_method <> 'none'
)
SELECT CASE WHEN pm25 < 15 THEN 'below 15' WHEN pm25 < 25 THEN '15-25' WHEN pm25 < 35 THEN '25-35' ELSE '35 and above' END
           AS pm25_band_ug_m3,
       count(*) AS region_periods,
       round(sum(o.cases) / sum(o.expected_cases), 3) AS pooled_shr,
       round(avg(pm.exceedance_days), 1) AS mean_exceedance_days
FROM pm
JOIN published_outcomes AS o USING (region_id, period)
WHERE NOT o.suppressed
GROUP BY ALL
ORDER BY min(pm25);
