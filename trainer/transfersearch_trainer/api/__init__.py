"""The light contract: the TransferSearch spec, the trainer job config, tasks, errors, version.

The only part of the trainer the operator imports. pydantic, PyYAML and the Kubernetes
client's quantity parser only: no numpy, no torch, nothing from the other layers.
"""
