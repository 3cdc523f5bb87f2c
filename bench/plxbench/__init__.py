"""bench/run's parts: common (shared by all), plexa, peers (ipyparallel and
Dask), limits (the field bed and the machine's limits), report."""
