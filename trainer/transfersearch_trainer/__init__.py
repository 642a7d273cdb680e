"""TransferSearch's NAS core and trainer, in layers (each imports only those below it):

api        the light contract (spec, job config, tasks, errors): the operator's only import
store      S3 access, blob backends, the agent store (no torch)
benchmark  TransNAS-Bench-101 tables, loaders, data sources, search spaces (numpy)
search     the search environment, baselines, statistics, task similarity (numpy)
agent      the torch agent: Q-network, replay, learner, checkpoints, transfer, evaluation
telemetry  Prometheus metrics and the learner hooks that feed them
workflow   steps shared by the local run, the pod and the studies; the local run
pod        the trainer pod's entry point (one trial)
study      the transfer matrix, its analysis, report and plots; the agent study
perf       the `bench` measurements
cli        the `transfersearch` command, one module per command group
"""

from transfersearch_trainer.api.version import __version__

__all__ = ["__version__"]
