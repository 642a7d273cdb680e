"""The steps a TransferSearch is made of, shared by the local run, the pod and the studies:
getting the source agent, training the target agent, evaluating it, the report; and the
local run (`transfersearch run`) built from them.

Imports every layer below; `pod`, `study`, `perf` and `cli` build on it.
"""
