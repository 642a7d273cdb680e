"""The distribution's version, in the light contract so the operator can report it too."""

__version__ = "0.1.0"
