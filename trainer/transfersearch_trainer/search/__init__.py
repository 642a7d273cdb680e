"""Searching a table: the vectorised environment, the baselines, statistics, task similarity.

numpy only; imports `api` and `benchmark`. Every method here charges evaluations the
same way, so agents and baselines are compared at the same budget.
"""
