"""The Dockerfile's structure (no Docker engine here to build it).

What a build cannot tell until it runs on a cluster, checked from the text: both
targets exist, run as the non-root uid the operator's pods expect, hold no
credentials, start the project's console script, keep torch out of the operator
image, install what the operator's trial pods run, and point every writable path
at /tmp or the cache volume (the root filesystem is read-only in the pods).
"""

from __future__ import annotations

import json
import re
import tomllib
from dataclasses import dataclass, field

import pytest

from tests.paths import ROOT as REPO_ROOT
from transfersearch_operator import children
from transfersearch_trainer.api.spec import load_manifest
from transfersearch_trainer.store.zoo import IMAGE_ZOO, ZOO_ENV

ROOT = REPO_ROOT
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
SCRIPT = "transfersearch"


@dataclass
class Stage:
    name: str
    base: str
    instructions: list[tuple[str, str]] = field(default_factory=list)

    def all(self, keyword: str) -> list[str]:
        return [args for instr, args in self.instructions if instr == keyword]


def logical_lines(text: str) -> list[str]:
    """Instructions with comments dropped and backslash continuations joined."""
    lines, current = [], ""
    for raw in text.splitlines():
        if raw.strip().startswith("#") or not raw.strip():
            continue
        if raw.rstrip().endswith("\\"):
            current += raw.rstrip()[:-1] + " "
            continue
        lines.append(current + raw.strip())
        current = ""
    assert not current, "the Dockerfile ends in a continuation"
    return lines


def parse(text: str) -> tuple[dict[str, str], dict[str, Stage]]:
    """Global ARG defaults, and the stages by name."""
    global_args: dict[str, str] = {}
    stages: dict[str, Stage] = {}
    stage: Stage | None = None
    for line in logical_lines(text):
        instr, _, args = line.partition(" ")
        instr = instr.upper()
        if instr == "FROM":
            match = re.fullmatch(r"(?:--platform=\S+\s+)?(\S+)\s+AS\s+(\S+)", args, re.I)
            assert match, f"every stage is named: FROM {args}"
            stage = Stage(name=match[2], base=match[1])
            stages[stage.name] = stage
        elif stage is None:
            assert instr == "ARG", f"{instr} before the first FROM"
            key, _, default = args.partition("=")
            global_args[key] = default
        else:
            stage.instructions.append((instr, args))
    return global_args, stages


GLOBAL_ARGS, STAGES = parse((ROOT / "Dockerfile").read_text())


def expand(value: str) -> str:
    return re.sub(r"\$\{?(\w+)\}?", lambda m: GLOBAL_ARGS.get(m[1], m[0]), value)


def chain(name: str) -> list[Stage]:
    """The stage and the stages it is built FROM, nearest first."""
    out = [STAGES[name]]
    while expand(out[-1].base) in STAGES:
        out.append(STAGES[expand(out[-1].base)])
    return out


def effective(name: str, keyword: str) -> list[str]:
    """Instructions of one kind that apply in a stage, its own last."""
    return [args for stage in reversed(chain(name)) for args in stage.all(keyword)]


def env(name: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for args in effective(name, "ENV"):
        for key, value in re.findall(r"(\w+)=(\S+)", args):
            out[key] = value
    return out


TARGETS = ("operator", "trainer")


def test_both_targets_exist_and_share_one_wheel_build() -> None:
    assert set(TARGETS) <= set(STAGES)
    for target in TARGETS:
        runs = " ".join(effective(target, "RUN"))
        assert "from=build" in runs, target
        assert "/wheels/transfersearch-*.whl" in runs, target
    assert "pip wheel --no-deps" in " ".join(STAGES["build"].all("RUN"))


@pytest.mark.parametrize("target", TARGETS)
def test_target_runs_as_the_non_root_uid_the_pods_use(target: str) -> None:
    users = effective(target, "USER")
    assert users, f"{target}: no USER, it would run as root"
    uid, _, gid = users[-1].partition(":")
    assert uid.isdigit(), "a numeric uid lets the kubelet check runAsNonRoot"
    assert int(uid) != 0
    assert int(uid) == children.RUNTIME_UID
    assert gid == uid
    runs = " ".join(effective(target, "RUN"))
    assert f"useradd --uid {uid}" in runs


@pytest.mark.parametrize("target", TARGETS)
def test_target_starts_the_console_script(target: str) -> None:
    assert SCRIPT in PYPROJECT["project"]["scripts"]
    entrypoints = effective(target, "ENTRYPOINT")
    assert json.loads(entrypoints[-1]) == [SCRIPT]
    # The script lives in the image's venv, which is first on PATH.
    path = env(target)["PATH"].split(":")
    venv = re.search(r"python3 -m venv (\S+)", " ".join(effective(target, "RUN")))
    assert venv
    assert path[0] == f"{venv[1]}/bin"


def test_operator_image_has_no_torch() -> None:
    runs = " ".join(effective("operator", "RUN"))
    assert "torch" not in runs.lower()
    assert "[trainer]" not in runs  # the wheel alone: the light core's dependencies
    assert not any(d.startswith("torch") for d in PYPROJECT["project"]["dependencies"])
    assert any(
        d.startswith("torch==") for d in PYPROJECT["project"]["optional-dependencies"]["trainer"]
    )
    assert "[trainer]" in " ".join(effective("trainer", "RUN"))


def test_trainer_image_runs_what_the_operator_puts_in_pods() -> None:
    spec = load_manifest(ROOT / "examples" / "scratch.yaml").spec
    job = children.job(children.SearchRef("s", "ns", "u", 1), spec, "transfersearch-trainer:t")
    pod = job["spec"]["template"]["spec"]
    container = pod["containers"][0]
    assert container["command"][0] == json.loads(effective("trainer", "ENTRYPOINT")[-1])[0]
    assert container["command"][1:] == ["train", "--config", children.CONFIG_PATH]
    # The image's writable places agree with the pod's env and emptyDir volumes.
    image_env = env("trainer")
    mounts = {m["mountPath"] for m in container["volumeMounts"]}
    for item in container["env"]:
        if item["name"] in ("HOME", "TRANSFERSEARCH_CACHE"):
            assert image_env[item["name"]] == item["value"]
    for key in ("HOME", "XDG_CACHE_HOME", "MPLCONFIGDIR", "TORCH_HOME", "TRANSFERSEARCH_CACHE"):
        assert any(image_env[key].startswith(m) for m in mounts), key


@pytest.mark.parametrize("target", TARGETS)
def test_no_credentials_in_the_image(target: str) -> None:
    secretish = re.compile(r"secret|passw|token|credential|access_key|api_key|^aws_", re.I)
    global_args = [f"{k}={v}" for k, v in GLOBAL_ARGS.items()]
    for args in effective(target, "ENV") + global_args + effective(target, "ARG"):
        for key in re.findall(r"(\w+)=", args) or [args.split("=")[0]]:
            assert not secretish.search(key), f"{target}: {key} looks like a credential"
    for args in effective(target, "COPY") + effective(target, "ADD"):
        assert not re.search(r"\.aws|\.env|\.netrc|id_rsa|\.pem|kubeconfig", args), args
    assert not effective(target, "ADD"), "ADD fetches and unpacks; COPY is explicit"


def test_versions_are_pinned() -> None:
    image = GLOBAL_ARGS["PYTHON_IMAGE"]
    assert re.fullmatch(r"python:3\.1[12]-slim-\w+(@sha256:[0-9a-f]{64})?", image), image
    pins = (
        PYPROJECT["project"]["dependencies"]
        + PYPROJECT["project"]["optional-dependencies"]["trainer"]
    )
    assert all("==" in p for p in pins), [p for p in pins if "==" not in p]


def test_dockerignore_lets_in_exactly_what_is_copied() -> None:
    lines = [
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert lines[0] == "*", "start from nothing, so new files (and secrets) stay out"
    allowed = {line[1:].rstrip("/") for line in lines if line.startswith("!")}
    copied = {
        src.rstrip("/")
        for stage in STAGES.values()
        for args in stage.all("COPY")
        if "--from=" not in args  # from the build context, not from another stage
        for src in args.split()[:-1]
        if not src.startswith("--")
    }
    assert copied == allowed
    for path in copied:
        assert (ROOT / path).exists(), path


def test_trainer_image_carries_the_zoo_read_only_where_the_trainer_looks() -> None:
    copies = [args.split() for args in effective("trainer", "COPY")]
    zoo = [c for c in copies if c[-1] == str(IMAGE_ZOO)]
    assert len(zoo) == 1, "the trainer image copies zoo/ to where `--agent zoo` looks"
    assert zoo[0][-2].rstrip("/") == "zoo"
    assert "--chown=0:0" in zoo[0], "owned by root: the pods' user 10001 cannot change it"
    assert ZOO_ENV not in env("trainer")  # no override: the image's place is the default
    assert not effective("operator", "COPY"), "the operator image needs no agents"


@pytest.mark.needs_trainer
def test_the_command_the_pods_run_exists() -> None:
    import typer

    from transfersearch_trainer.cli.main import app

    group = typer.main.get_command(app)
    with group.make_context(SCRIPT, ["train", "--config", children.CONFIG_PATH]) as ctx:
        command = group.get_command(ctx, "train")  # type: ignore[attr-defined]
        assert command is not None
        params = command.make_context("train", ["--config", children.CONFIG_PATH], parent=ctx)
        assert str(params.params["config"]) == children.CONFIG_PATH
