"""A stand-in kubelet: runs each trial pod's real container command as a local process.

For every Job the operator creates it plays the Job controller (one pod per
completion index, at most `parallelism` at once, retries up to `backoffLimit`,
a usage error (exit 2) fails the Job at once, as the Job's podFailurePolicy says)
and the kubelet: the container's command runs with the pod's environment
(`secretKeyRef` resolved from the Secret through the API, JOB_COMPLETION_INDEX
set as the Job controller does), its volumes as local folders (the ConfigMap's
items written out, emptyDirs empty) and a termination-message file; what the
process leaves there becomes the pod's terminated state, as the kubelet does.

There is no container filesystem, so container paths are translated to the
local folders that stand for them: in the arguments, in environment values and
in the files of ConfigMap volumes (the job config names the termination log).
"""

from __future__ import annotations

import asyncio
import base64
import os
import re
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.fakes.emulator import CONFIGMAPS, JOBS, SECRETS, Api, JobController, Trial

MAX_MESSAGE = 4096


@dataclass
class Run:
    """One container run, as the stand-in kubelet executed it."""

    job: str
    index: int
    command: list[str]  # as the pod spec says
    argv: list[str]  # as run here (paths translated)
    env: dict[str, str]
    paths: dict[str, Path]  # container path -> local path
    exit_code: int = -1
    message: str = ""


@dataclass
class Kubelet:
    api: Api
    namespace: str
    root: Path
    image_env: dict[str, str] = field(default_factory=dict)  # what the image's ENV would set
    runs: list[Run] = field(default_factory=list)
    _seen: set[str] = field(default_factory=set)
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)

    async def watch(self, poll: float = 0.1) -> None:
        """Run every new Job of the namespace until cancelled."""
        while True:
            for job in await self.api.list(JOBS, self.namespace):
                name = job["metadata"]["name"]
                if name not in self._seen:
                    self._seen.add(name)
                    self._tasks.append(asyncio.create_task(self.run_job(job)))
            await asyncio.sleep(poll)

    async def run_job(self, job: dict[str, Any]) -> None:
        name = job["metadata"]["name"]
        spec = job["spec"]
        controller = JobController(self.api, self.namespace, name)
        slots = asyncio.Semaphore(spec["parallelism"])
        failures = 0
        failed_job = False

        async def trial(index: int) -> None:
            nonlocal failures, failed_job
            while not failed_job:
                async with slots:
                    run = await self.run_pod(controller, job, index)
                if run.exit_code == 0:
                    return
                failures += 1
                if run.exit_code == 2 or failures > spec["backoffLimit"]:
                    failed_job = True

        await asyncio.gather(*(trial(i) for i in range(spec["completions"])))

    async def run_pod(self, controller: JobController, job: dict[str, Any], index: int) -> Run:
        pod = await controller.start(index)
        spec = pod["spec"]
        (container,) = spec["containers"]
        home = self.root / pod["metadata"]["name"]
        paths = await self._volumes(spec, container, home)
        termination = home / "termination-log"
        termination.write_text("")
        paths[container["terminationMessagePath"]] = termination
        # The image's environment is this machine's already; the pod's names container paths.
        env = {**self.image_env, "JOB_COMPLETION_INDEX": str(index)}
        for var in container.get("env", []):
            env[var["name"]] = _translate(await self._env_value(var), paths)
        for config in (home / "volumes").rglob("*"):
            if config.is_file() and config.parent.name.startswith("configmap-"):
                config.write_text(_translate(config.read_text(), paths))
        command = container["command"] + container.get("args", [])
        run = Run(
            job["metadata"]["name"],
            index,
            command,
            [_translate(a, paths) for a in command],
            env,
            paths,
        )
        self.runs.append(run)
        started = time.monotonic()
        with (home / "container.log").open("wb") as log:
            try:
                proc = await asyncio.create_subprocess_exec(
                    *run.argv, env=env, cwd=home, stdout=log, stderr=asyncio.subprocess.STDOUT
                )
            except OSError as err:  # what a runtime reports as a failed container start
                log.write(f"cannot start the container: {err}".encode())
                run.exit_code = 127
            else:
                run.exit_code = await proc.wait()
        message = termination.read_text(errors="replace")
        if (
            not message
            and run.exit_code != 0
            and (container.get("terminationMessagePolicy") == "FallbackToLogsOnError")
        ):
            message = (home / "container.log").read_text(errors="replace")[-MAX_MESSAGE:]
        run.message = message[:MAX_MESSAGE]
        await controller.finish(pod, Trial(run.exit_code, run.message, time.monotonic() - started))
        return run

    async def _volumes(
        self, spec: dict[str, Any], container: dict[str, Any], home: Path
    ) -> dict[str, Path]:
        local: dict[str, Path] = {}
        for volume in spec.get("volumes", []):
            if "configMap" in volume:
                folder = home / "volumes" / f"configmap-{volume['name']}"
                folder.mkdir(parents=True)
                config_map = await self.api.get(
                    CONFIGMAPS, self.namespace, volume["configMap"]["name"]
                )
                assert config_map is not None, f"ConfigMap of volume {volume['name']} is missing"
                for item in volume["configMap"].get("items", []):
                    (folder / item["path"]).write_text(config_map["data"][item["key"]])
            elif "emptyDir" in volume:
                folder = home / "volumes" / f"emptydir-{volume['name']}"
                folder.mkdir(parents=True)
            else:
                raise AssertionError(f"the stand-in kubelet has no {volume} volumes")
            local[volume["name"]] = folder
        return {m["mountPath"]: local[m["name"]] for m in container.get("volumeMounts", [])}

    async def _env_value(self, var: dict[str, Any]) -> str:
        if "value" in var:
            return str(var["value"])
        ref = var["valueFrom"]["secretKeyRef"]
        secret = await self.api.get(SECRETS, self.namespace, ref["name"]) or {}
        encoded = (secret.get("data") or {}).get(ref["key"])
        if encoded is None and not ref.get("optional"):
            raise AssertionError(f"Secret {ref['name']} has no {ref['key']}")
        return base64.b64decode(encoded).decode() if encoded else ""

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)


def _translate(text: str, paths: dict[str, Path]) -> str:
    """Container paths -> their local stand-ins, in one pass (a local path that happens
    to start with /tmp is not translated again), whole path components only."""
    if not paths:
        return text
    alternatives = "|".join(re.escape(p) for p in sorted(paths, key=len, reverse=True))
    pattern = re.compile(rf"(?<![\w./-])({alternatives})(?=/|$|[^\w.-])")
    return pattern.sub(lambda m: str(paths[m.group(1)]), text)


def executable_path() -> str:
    """PATH for the container: the project's virtualenv first (the trainer image's tools)."""
    return os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])
