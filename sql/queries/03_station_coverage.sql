-- Monitoring coverage: stations and valid daily readings per pollutant and year.
SELECT pollutant, year(date) AS year, count(DISTINCT station_id) AS stations, count(*) AS readings
FROM pollutant_readings
GROUP BY ALL
ORDER BY pollutant, year;
