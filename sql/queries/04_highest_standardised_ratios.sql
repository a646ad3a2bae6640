-- Regions with the highest standardised hospitalization ratio (SHR) in the latest period,
-- where the whole 95% interval lies above 1. Hidden cells (small or complementary) are blank in published_outcomes.
SELECT o.region_id, r.name, r.parent_name AS state, o.period, o.cases, round(o.expected_cases, 1) AS expected,
       round(o.shr, 2) AS shr, round(o.shr_lower, 2) AS shr_lower, round(o.shr_upper, 2) AS shr_upper
FROM published_outcomes AS o
JOIN regions AS r USING (region_id)
WHERE o.period = (SELECT max(period) FROM published_outcomes)
  AND NOT o.suppressed
  AND o.shr_lower > 1
ORDER BY o.shr DESC
LIMIT 20;
