"""Prometheus metrics of trainers and the learner hooks that feed them.

Imports `api` and `agent` (the hooks observe the learner); never the workflows above.
"""
