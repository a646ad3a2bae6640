"""Fixed-point SQL type for sums whose result must not depend on the order parallel threads add terms in.

DOUBLE sums in a parallel GROUP BY differ in the last bits from run to run; DECIMAL sums are exact, so the
same inputs give bit-identical tables. 18 decimals keep rates per person exact to 1e-18; 38 digits leave
room for totals up to 1e20.
"""

EXACT = "DECIMAL(38, 18)"  # rates and expected counts
# Measurements (concentrations, station weights): 6 decimals fit 64-bit arithmetic, which is much faster.
EXACT_MEASURE = "DECIMAL(18, 6)"
