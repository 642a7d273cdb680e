"""The torch agent: Q-network, replay, hyperparameters, learner, checkpoints, transfer modes,
greedy evaluation, and the agent artifact (safetensors + JSON manifest).

Imports `api`, `store`, `benchmark` and `search`; nothing above it.
"""
