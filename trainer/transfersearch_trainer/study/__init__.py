"""Studies over many agents: the transfer matrix (resumable cells), its analysis, report and
plots, and the one-source agent study behind `bench transfer`.

Built on `workflow`; imported only by the CLI.
"""
