"""Names on disk that the agent artifact and the agent store must agree on, and the local cache.

They live here, below the torch agent, so the store can list and verify agents without
importing torch.
"""

from __future__ import annotations

import os
from pathlib import Path

FORMAT = "transfersearch-agent/1"
MANIFEST = "agent.json"
WEIGHTS = "weights.safetensors"
CACHE_ENV = "TRANSFERSEARCH_CACHE"


def cache_dir() -> Path:
    root = os.environ.get(CACHE_ENV) or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "transfersearch"
    )
    return Path(root)
