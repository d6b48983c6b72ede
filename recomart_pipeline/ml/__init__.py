"""Recommender models and ranking/rating metrics (numpy/scipy/numba, no dagster)."""
