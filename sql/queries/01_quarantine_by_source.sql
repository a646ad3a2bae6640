-- How many input rows each source lost to quarantine, and for which rules.
SELECT source, columns, rules, rows
FROM quarantine_summary
ORDER BY rows DESC, source, columns, rules;
