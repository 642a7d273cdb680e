"""Where bytes live: S3 access with retries, blob backends (folder or S3), the agent store.

Imports only `api`. No torch and no numpy, so `transfersearch agents list` and the data
download stay light.
"""
