"""Infrastructure every layer may use: file locations and URLs (:mod:`.location`), stores,
atomic writes, worker pools and Dask (:mod:`.parallel`), the accelerator, the numba cache's lock
and quiet imports."""
