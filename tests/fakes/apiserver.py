"""The test Kubernetes API (tests/fakes/emulator.py) as its own process, like a real API server.

`python -m tests.fakes.apiserver PORT` serves on 127.0.0.1:PORT and prints `ready` when it
listens. `serve()` starts one for a test and gives its URL and a kubeconfig for it.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

import kmock

from tests.conftest import free_port
from tests.fakes.emulator import ClusterEmulator, declare_resources
from tests.paths import ROOT as REPO_ROOT

ROOT = REPO_ROOT


async def _serve(port: int) -> None:
    async with ClusterEmulator() as k8s, kmock.Server(k8s, host="127.0.0.1", port=port):
        declare_resources(k8s)
        print("ready", flush=True)
        await asyncio.Event().wait()


def kubeconfig(server: str, path: Path) -> Path:
    path.write_text(
        "apiVersion: v1\nkind: Config\ncurrent-context: emulator\n"
        f"clusters:\n- name: emulator\n  cluster:\n    server: {server}\n"
        "contexts:\n- name: emulator\n  context:\n    cluster: emulator\n    user: tester\n"
        "users:\n- name: tester\n  user: {}\n"
    )
    return path


@contextmanager
def serve(log: Path) -> Iterator[str]:
    """An emulated API server process; yields its URL."""
    port = free_port()
    with log.open("w") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "tests.fakes.apiserver", str(port)],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=out,
            text=True,
        )
        try:
            assert proc.stdout is not None
            line = proc.stdout.readline()
            if line.strip() != "ready":
                raise RuntimeError(f"the API emulator did not start: see {log}")
            yield f"http://127.0.0.1:{port}"
        finally:
            proc.terminate()
            proc.wait(timeout=10)


if __name__ == "__main__":
    with suppress(KeyboardInterrupt):
        asyncio.run(_serve(int(sys.argv[1])))
