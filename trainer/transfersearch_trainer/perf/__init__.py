"""The `transfersearch bench` measurements: numbers side by side in one run, printed.

Built on the layers below; imported only by the CLI.
"""
