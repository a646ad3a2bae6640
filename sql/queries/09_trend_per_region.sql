-- SHR of every region over the periods, with the change from its previous period (NULL where either cell is
-- hidden or it is the first period). Suppressed cells keep their row with the reason in `suppression`.
SELECT region_id, name, period, cases, round(shr, 3) AS shr, suppression,
       round(shr - lag(shr) OVER (PARTITION BY region_id ORDER BY period), 3) AS change_from_previous
FROM region_profile
ORDER BY region_id, period;
