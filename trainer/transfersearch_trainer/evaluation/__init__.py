"""The training evaluator: real networks of the benchmark's spaces, trained on the user's data.

Layers inside: `arrays` (the in-memory dataset every loader produces), `datasets`
(npz and image folders, local or s3://), `networks` (micro cells and macro ResNets in
torch), `training` (the recipe and loop), `cache` (results keyed by data, architecture,
recipe and seed) and `training_evaluator` (the `search.evaluator.Evaluator` they make).
"""
