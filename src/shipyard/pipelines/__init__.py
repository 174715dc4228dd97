"""Training pipelines: steps wired into a DAG, content-addressed caching, local and Dask executors."""
