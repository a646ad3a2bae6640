-- Composite deprivation quintile (1 = least, 5 = most deprived within the period) against the pooled SHR:
-- sum of observed over sum of expected cases of the visible cells, per period. Hidden cells are counted apart.
SELECT period, composite_quintile,
       count(*) AS regions,
       count(*) FILTER (WHERE suppressed) AS hidden_cells,
       sum(cases) AS cases,
       round(sum(expected_cases), 1) AS expected,
       round(sum(cases) / sum(expected_cases), 3) AS pooled_shr
FROM region_profile
WHERE composite_quintile IS NOT NULL
GROUP BY period, composite_quintile
ORDER BY period, composite_quintile;
