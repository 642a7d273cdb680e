"""TransferSearch's NAS core: benchmark tables, search spaces, environment, baselines, agents."""

__version__ = "0.1.0"
