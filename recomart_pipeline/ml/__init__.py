"""Recommender models and ranking/rating metrics (numpy/scipy/numba; no dagster, and nothing
of this package but the task contract).

Modules: ``params`` (parameters and names of every model type, light), ``base`` (the
``Recommender`` interface and training data), ``models`` (model classes by type),
``persistence`` (versioned, hash-checked files), ``metrics``/``evaluate`` (offline quality).
This package's ``__init__`` stays empty so importing ``ml.params`` imports no numpy.
"""
