"""The feature store: feature views declared in Python and registered with versions and lineage,
point-in-time-correct training sets, an online store (SQLite, Redis) with the same TTL rule as the offline
path, request enrichment in serving, and a skew check between what was served and what training would see."""
