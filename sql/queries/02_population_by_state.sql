-- Population per parent region (state) and year, from the census and the region hierarchy.
SELECT r.parent_name AS state, c.year, sum(c.population) AS population
FROM census AS c
JOIN regions AS r USING (region_id)
GROUP BY ALL
ORDER BY state, c.year;
