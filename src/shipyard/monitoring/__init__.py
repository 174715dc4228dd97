"""Monitoring: how far current data has moved from a reference (data and prediction drift), column by column,
and how well the model does on the feedback it gets.

`shipyard.monitoring.drift.dataset_drift(reference, current)` compares two tables with the test practitioners
expect for each column's type and the reference's size; every choice can be overridden per column.
`shipyard.monitoring.performance.performance(joined)` scores logged predictions against their feedback, with
confidence intervals, and `detect_drift(errors)` watches the error stream for a change."""
