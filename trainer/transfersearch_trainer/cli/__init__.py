"""The `transfersearch` command line, one module per command group, registered by `main`.

The top layer: it may import everything, but imports heavy layers (torch) inside the
commands that need them, so `--help` and the light commands start fast.
"""
