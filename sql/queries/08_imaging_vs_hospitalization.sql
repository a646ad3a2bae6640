-- Chest X-ray findings against hospitalization burden by region, pooled over the periods where both the imaging
-- cell and the outcome cell are visible: the share of images the classifier calls pneumonia (bacterial, viral or
-- COVID-19) and the pooled SHR (sum of cases over sum of expected).
SELECT region_id, name, parent_name AS state,
       count(*) AS periods,
       sum(n_images) AS images,
       round(sum(n_images * (share_bacterial + share_viral + share_covid19)) / sum(n_images), 3) AS pneumonia_share,
       round(sum(cases) / sum(expected_cases), 3) AS pooled_shr
FROM region_profile
WHERE n_images IS NOT NULL AND NOT imaging_suppressed AND NOT suppressed
GROUP BY region_id, name, parent_name
ORDER BY pneumonia_share DESC, region_id;
