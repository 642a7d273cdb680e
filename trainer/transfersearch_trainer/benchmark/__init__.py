"""TransNAS-Bench-101 as numpy arrays: search spaces, tables, loaders, data sources.

Imports `api` and `store` (data may come from S3). No torch.
"""
