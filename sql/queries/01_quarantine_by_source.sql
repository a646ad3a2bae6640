-- How many input rows each source lost to quarantine (action rejected) or kept after a repair (action repaired),
-- and for which rules.
SELECT source, action, columns, rules, rows
FROM quarantine_summary
ORDER BY action, rows DESC, source, columns, rules;
