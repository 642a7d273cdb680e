"""The trainer pod: one trial of a search from its job config, checkpoints, termination message.

Built on `workflow`; imported only by the CLI.
"""
