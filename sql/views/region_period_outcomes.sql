-- Published form of the private table region_period_outcomes: small cells are blanked (NULL).
-- Rows with 0 < cases < suppression_threshold (suppressed) lose every count, ratio and rate; deaths and
-- severe_cases between 1 and suppression_threshold - 1 are blanked on any row. True zeros stay visible.
-- expected_cases is blanked on suppressed rows too: expected sums to observed within each period, so
-- visible expected counts would give back the suppressed total by subtraction. population stays visible
-- (it is the public census).
SELECT
    region_id,
    period,
    CASE WHEN NOT suppressed THEN cases END AS cases,
    CASE WHEN NOT suppressed AND NOT (deaths > 0 AND deaths < suppression_threshold) THEN deaths END AS deaths,
    CASE WHEN NOT suppressed AND NOT (severe_cases > 0 AND severe_cases < suppression_threshold)
         THEN severe_cases END AS severe_cases,
    population,
    CASE WHEN NOT suppressed THEN expected_cases END AS expected_cases,
    CASE WHEN NOT suppressed THEN shr END AS shr,
    CASE WHEN NOT suppressed THEN shr_lower END AS shr_lower,
    CASE WHEN NOT suppressed THEN shr_upper END AS shr_upper,
    CASE WHEN NOT suppressed THEN crude_rate END AS crude_rate,
    CASE WHEN NOT suppressed THEN crude_rate_lower END AS crude_rate_lower,
    CASE WHEN NOT suppressed THEN crude_rate_upper END AS crude_rate_upper,
    CASE WHEN NOT suppressed THEN std_rate END AS std_rate,
    CASE WHEN NOT suppressed THEN std_rate_lower END AS std_rate_lower,
    CASE WHEN NOT suppressed THEN std_rate_upper END AS std_rate_upper,
    suppressed,
    suppression_threshold
FROM {{ region_period_outcomes }}
