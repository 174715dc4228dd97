"""Monitoring: how far current data has moved from a reference (data and prediction drift), column by column.

`shipyard.monitoring.drift.dataset_drift(reference, current)` compares two tables with the test practitioners
expect for each column's type and the reference's size; every choice can be overridden per column."""
