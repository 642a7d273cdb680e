"""Real Prometheus scraping real processes: every dashboard query and rule must return data.

Started here, on 127.0.0.1: Debian's `prometheus` (1 s scrapes, the repo's rule file),
the emulated API server with the real operator process (one search applied with
kubectl, so it reconciles), and real trainer processes running tiny searches:
`transfersearch train --config` as a trainer pod runs it (checkpoints, pretraining a
source) and `transfersearch run` as a local user runs it (a scratch agent beside the
fine-tuned one: the negative-transfer reference). Then, through Prometheus's HTTP
API: every panel query of the Grafana dashboard returns series, every template
variable has values, every recording rule has series, and every rule evaluates
without error.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import TINY_HP, free_port, hp_flags, wait_port
from tests.fakes import apiserver
from tests.paths import ROOT as REPO_ROOT

ROOT = REPO_ROOT
EXE = str(Path(sys.executable).parent / "transfersearch")
RULES = ROOT / "observability" / "prometheus-rules.yaml"
DASHBOARD = ROOT / "observability" / "grafana-dashboard.json"
HP = {**TINY_HP, "eval_interval": 40}
LINGER = 600  # the trainers keep serving their final values until the fixture stops them
OWN_BUDGET = 3  # evaluations (tiny trainings) of the own-data trial


@dataclass
class Stack:
    prometheus: str  # http://127.0.0.1:PORT
    targets: dict[str, int]  # job name -> /metrics port
    logs: Path


def query(stack: Stack, expr: str) -> dict[str, Any]:
    """An instant query through the HTTP API; `data` ({resultType, result})."""
    url = f"{stack.prometheus}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
    with urllib.request.urlopen(url, timeout=10) as response:
        body = json.load(response)
    assert body["status"] == "success", (expr, body)
    return dict(body["data"])


def api(stack: Stack, path: str) -> Any:
    with urllib.request.urlopen(f"{stack.prometheus}{path}", timeout=10) as response:
        body = json.load(response)
    assert body["status"] == "success", (path, body)
    return body["data"]


def _start(cmd: list[str], log: Path, env: dict[str, str]) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        return subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env)


def _wait_for(what: str, check: Any, timeout: float, logs: Path) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(1)
    tails = {p.name: p.read_text(errors="replace")[-1500:] for p in sorted(logs.glob("*.log"))}
    pytest.fail(f"timed out waiting for {what}; logs:\n" + json.dumps(tails, indent=1))


def _trainer_env(tmp: Path, data_dir: Path) -> dict[str, str]:
    return {
        **os.environ,
        "TRANSFERSEARCH_DATA": str(data_dir),
        "TRANSFERSEARCH_CACHE": str(tmp / "cache"),
        "OMP_NUM_THREADS": "1",
        "JOB_COMPLETION_INDEX": "0",
    }


def _job_config(tmp: Path, data_dir: Path) -> Path:
    """A trial as the operator would configure it: pretrain a source here, fine-tune, checkpoint."""
    config = {
        "search": "scene-to-jigsaw",
        "namespace": "team-a",
        "uid": "6a1d0c52",
        "output": str(tmp / "trial-output"),
        "terminationLog": str(tmp / "termination-log"),
        "hyperparameters": HP,
        "spec": {
            "benchmark": {"space": "micro", "data": str(data_dir)},
            "source": {"task": "class_scene", "pretrainSteps": 120},
            "target": {"task": "jigsaw"},
            "transfer": {"protocol": "paper", "mode": "finetune"},
            "training": {"steps": 200, "targetEvaluations": 300, "checkpointInterval": 40},
            "evaluation": {"budget": 20, "searches": 20},
            "alerts": {"driftThreshold": 0.25, "gpuSecondsBudget": 3600},
        },
    }
    path = tmp / "job.json"
    path.write_text(json.dumps(config))
    return path


def _search_job_config(tmp: Path, data_dir: Path) -> Path:
    """A trial under protocol search (the product): pretrain a source, then one search."""
    config = json.loads(_job_config(tmp, data_dir).read_text())
    config.update(search="scene-search-jigsaw", output=str(tmp / "search-output"))
    config["terminationLog"] = str(tmp / "termination-log-search")
    config["spec"].update(
        transfer={"protocol": "search", "mode": "online"},
        training={"checkpointInterval": 40},
        evaluation={"budget": 20},
    )
    path = tmp / "search-job.json"
    path.write_text(json.dumps(config))
    return path


def _own_data_job_config(tmp: Path, data_dir: Path) -> Path:
    """A trial of a search on the user's data: the digits pilot, the zoo's agent, tiny trainings."""
    from transfersearch_trainer.evaluation.digits import export_digits

    digits = export_digits(tmp / "digits.npz")
    config = json.loads(_job_config(tmp, data_dir).read_text())
    config.update(search="digits-pilot", output=str(tmp / "own-data-output"))
    config["terminationLog"] = str(tmp / "termination-log-own-data")
    config["spec"].update(
        source={"agent": "zoo"},
        target={"dataset": {"uri": str(digits)}, "training": {"epochs": 1, "width": 4}},
        transfer={"protocol": "search", "mode": "online"},
        training={},
        evaluation={"budget": OWN_BUDGET},
        # one torch thread: two spin-wait for a busy core on this 2-core machine (a training of
        # seconds took minutes beside the other trainers)
        resources={"cpu": "1"},
    )
    path = tmp / "own-data-job.json"
    path.write_text(json.dumps(config))
    return path


def _manifest(tmp: Path) -> Path:
    """A local search: fine-tune with a scratch agent beside it, as `make demo` does."""
    doc = {
        "apiVersion": "transfersearch.io/v1alpha1",
        "kind": "TransferSearch",
        "metadata": {"name": "local-object", "namespace": "local"},
        "spec": {
            "source": {"task": "class_scene", "pretrainSteps": 120},
            "target": {"task": "class_object"},
            "transfer": {"protocol": "paper", "mode": "finetune"},
            "training": {"steps": 200, "targetEvaluations": 300},
            "evaluation": {"budget": 20, "searches": 20},
            "alerts": {"gpuSecondsBudget": 3600},
        },
    }
    path = tmp / "local.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


def _prometheus_config(tmp: Path, targets: dict[str, int]) -> Path:
    rules = tmp / "rules.yaml"
    shutil.copy(RULES, rules)
    config = {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(rules)],
        "scrape_configs": [
            {"job_name": job, "static_configs": [{"targets": [f"127.0.0.1:{port}"]}]}
            for job, port in targets.items()
        ],
    }
    path = tmp / "prometheus.yml"
    path.write_text(yaml.safe_dump(config))
    return path


def _lingering(log: Path) -> bool:
    """A trainer logs this once its final values are set, then keeps serving them."""
    return "serving the final metrics for" in log.read_text(errors="replace")


def _has(stack: Stack, expr: str) -> bool:
    try:
        return bool(query(stack, expr)["result"])
    except OSError:
        return False


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, data_dir: Path) -> Iterator[Stack]:
    prometheus = shutil.which("prometheus")
    if prometheus is None:
        pytest.fail("prometheus not found: install Debian's `prometheus` (make test does as root)")
    if shutil.which("kubectl") is None:
        pytest.fail("kubectl is missing: `make test` installs Debian's kubernetes-client")
    tmp = tmp_path_factory.mktemp("prometheus")
    logs = tmp / "logs"
    logs.mkdir()
    targets = {
        "operator": free_port(),
        "trainer-pod": free_port(),
        "trainer-local": free_port(),
        "trainer-search": free_port(),
        "trainer-own-data": free_port(),
    }
    procs: list[subprocess.Popen[bytes]] = []
    env = _trainer_env(tmp, data_dir)
    with apiserver.serve(logs / "apiserver.log") as server:
        kubeconfig = apiserver.kubeconfig(server, tmp / "kubeconfig")
        try:
            procs.append(
                _start(
                    [
                        EXE,
                        "operator",
                        "--all-namespaces",
                        "--trainer-image",
                        "transfersearch-trainer:test",
                        "--metrics-port",
                        str(targets["operator"]),
                        "--liveness-port",
                        str(free_port()),
                    ],
                    logs / "operator.log",
                    {**os.environ, "KUBECONFIG": str(kubeconfig)},
                )
            )
            for job, config in (
                ("trainer-pod", _job_config(tmp, data_dir)),
                ("trainer-search", _search_job_config(tmp, data_dir)),
                ("trainer-own-data", _own_data_job_config(tmp, data_dir)),
            ):
                trainer = ["train", "--config", str(config), "--metrics-port", str(targets[job])]
                procs.append(
                    _start(
                        [EXE, *trainer, "--metrics-linger", str(LINGER)],
                        logs / f"{job}.log",
                        env,
                    )
                )
            procs.append(
                _start(
                    [
                        EXE,
                        "run",
                        str(_manifest(tmp)),
                        "--out",
                        str(tmp / "local-run"),
                        "--agents",
                        str(tmp / "agents"),
                        "--metrics-port",
                        str(targets["trainer-local"]),
                        "--metrics-linger",
                        str(LINGER),
                        *hp_flags(HP),
                    ],
                    logs / "trainer-local.log",
                    env,
                )
            )
            web = free_port()
            procs.append(
                _start(
                    [
                        prometheus,
                        f"--config.file={_prometheus_config(tmp, targets)}",
                        f"--storage.tsdb.path={tmp / 'tsdb'}",
                        f"--web.listen-address=127.0.0.1:{web}",
                    ],
                    logs / "prometheus.log",
                    dict(os.environ),
                )
            )
            wait_port(web, timeout=60)
            result = Stack(f"http://127.0.0.1:{web}", targets, logs)
            subprocess.run(
                ["kubectl", "apply", "--validate=false", "-n", "default", "-f", "-"],
                input=(ROOT / "examples" / "scratch.yaml").read_bytes(),
                env={**os.environ, "KUBECONFIG": str(kubeconfig)},
                check=True,
                capture_output=True,
            )
            trainers = [job for job in targets if job != "operator"]
            # every trainer is done once it says it lingers (a count of finished series raced:
            # the own-data trial's series made it before the pod trial's fine-tuning ended)
            _wait_for(
                "every trainer to finish",
                lambda: all(_lingering(logs / f"{job}.log") for job in trainers),
                timeout=420,
                logs=logs,
            )
            time.sleep(3)  # the final values are scraped after the last training (1 s scrapes)
            _wait_for(
                "the final values to be scraped",
                lambda: (
                    not query(result, "transfersearch_trainer_running == 1")["result"]
                    and _has(result, "transfersearch_scratch_reference_regret_ratio")
                    and _has(result, "sum(transfersearch_operator_searches) > 0")
                    and _has(result, "transfersearch:negative_transfer:ratio")
                    and _has(result, "transfersearch_search_best_metric")
                    and _has(result, 'transfersearch_search_best_metric{search="digits-pilot"}')
                ),
                timeout=60,
                logs=logs,
            )
            time.sleep(3)  # a few more scrapes of the final values, for rates over them
            yield result
        finally:
            for proc in reversed(procs):
                proc.terminate()
            for proc in procs:
                try:
                    proc.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()


def dashboard_queries() -> list[tuple[str, str]]:
    board = json.loads(DASHBOARD.read_text())
    found = []
    for panel in board["panels"]:
        for target in panel.get("targets", []):
            if target.get("expr"):
                found.append((f"{panel['title']} [{target.get('refId', '')}]", target["expr"]))
    return found


def concrete(expr: str) -> str:
    """A dashboard query as Grafana sends it with every variable on All."""
    expr = expr.replace("$__rate_interval", "15s").replace("$__range", "5m")
    return re.sub(r"\$\{?(namespace|search|task)\}?", ".*", expr)


def rule_expressions() -> list[tuple[str, str, str]]:
    doc = yaml.safe_load(RULES.read_text())
    return [
        (
            "record" if "record" in rule else "alert",
            rule.get("record") or rule["alert"],
            rule["expr"],
        )
        for group in doc["groups"]
        for rule in group["rules"]
    ]


def test_every_dashboard_query_returns_data(stack: Stack) -> None:
    queries = dashboard_queries()
    assert len(queries) >= 15
    empty = []
    for title, expr in queries:
        data = query(stack, concrete(expr))
        assert data["resultType"] == "vector", (title, data["resultType"])
        if not data["result"]:
            empty.append(f"{title}: {concrete(expr)}")
        if "histogram_quantile" in expr:
            continue  # NaN while nothing was observed in the window: Grafana shows a gap
        for sample in data["result"]:
            value = float(sample["value"][1])
            assert value == value, (title, sample)  # never NaN
    assert not empty, "dashboard queries with no data:\n" + "\n".join(empty)


def test_every_template_variable_has_values(stack: Stack) -> None:
    board = json.loads(DASHBOARD.read_text())
    variables = [v for v in board["templating"]["list"] if v["type"] == "query"]
    assert {v["name"] for v in variables} >= {"namespace", "search", "task"}
    for var in variables:
        definition = var["definition"]
        match = re.fullmatch(r"label_values\((.+), (\w+)\)", definition)
        assert match, definition
        selector, label = concrete(match.group(1)), match.group(2)
        values = api(
            stack, f"/api/v1/label/{label}/values?" + urllib.parse.urlencode({"match[]": selector})
        )
        assert values, f"template variable {var['name']} has no values ({definition})"
    searches = api(
        stack, "/api/v1/label/search/values?match[]=transfersearch_learner_updates_total"
    )
    assert {"scene-to-jigsaw", "local-object"} <= set(searches)


def test_every_rule_evaluates_and_recording_rules_have_series(stack: Stack) -> None:
    for kind, name, expr in rule_expressions():
        data = query(stack, expr)
        assert data["resultType"] == "vector", (name, data)
        if kind == "record":
            assert query(stack, name)["result"], f"recording rule {name} has no series"
    groups = api(stack, "/api/v1/rules")["groups"]
    loaded = {r["name"]: r for g in groups for r in g["rules"]}
    assert set(loaded) == {name for _, name, _ in rule_expressions()}
    unhealthy = {n: r.get("lastError") for n, r in loaded.items() if r["health"] != "ok"}
    assert not unhealthy, unhealthy


def test_trainer_series_carry_the_promised_labels_and_values(stack: Stack) -> None:
    labels = {"search", "namespace", "task", "trial", "mode"}
    for sample in query(stack, "transfersearch_learner_updates_total")["result"]:
        assert labels <= set(sample["metric"]), sample["metric"]
    # the pod trial pretrained its source and fine-tuned; the local run also trained scratch
    modes = {
        (s["metric"]["search"], s["metric"]["task"], s["metric"]["mode"]): float(s["value"][1])
        for s in query(stack, "transfersearch_learner_updates_total")["result"]
    }
    assert modes[("scene-to-jigsaw", "class_scene", "pretrain")] == 120
    assert modes[("scene-to-jigsaw", "jigsaw", "finetune")] == 200
    assert modes[("local-object", "class_object", "scratch")] == 200
    regret = query(stack, "transfersearch_evaluation_regret_ratio")["result"]
    assert regret
    assert all(0 <= float(s["value"][1]) <= 5 for s in regret)
    gpu = query(stack, "transfersearch_gpu_seconds_total")["result"]
    assert {s["metric"]["gpu_model"] for s in gpu} <= {"none"} or any(
        float(s["value"][1]) > 0 for s in gpu
    )
    age = query(stack, 'transfersearch_checkpoint_age_seconds{search="scene-to-jigsaw"}')
    assert age["result"]
    assert all(float(s["value"][1]) >= 0 for s in age["result"])
    limits = query(stack, 'transfersearch_drift_threshold_ratio{search="scene-to-jigsaw"}')
    assert {float(s["value"][1]) for s in limits["result"]} == {0.25}


def test_a_search_on_own_data_exports_its_evaluations_like_a_benchmark_search(
    stack: Stack,
) -> None:
    """The digits trial: its evaluations, seconds each (real trainings), best, GPU time and
    budget, under the dataset's name as the task label; the benchmark search's too (0 s)."""

    def values(expr: str) -> dict[str, float]:
        return {
            s["metric"].get("search", ""): float(s["value"][1])
            for s in query(stack, expr)["result"]
        }

    own = 'search="digits-pilot", task="digits", mode="online"'
    assert values(f"transfersearch_search_evaluations_total{{{own}}}") == {
        "digits-pilot": OWN_BUDGET
    }
    assert values(f"transfersearch_search_budget{{{own}}}") == {"digits-pilot": OWN_BUDGET}
    assert values(f"transfersearch_search_evaluation_seconds_count{{{own}}}") == {
        "digits-pilot": OWN_BUDGET
    }
    assert values(f"transfersearch_search_evaluation_seconds_sum{{{own}}}")["digits-pilot"] > 0
    best = values(f"transfersearch_search_best_metric{{{own}}}")["digits-pilot"]
    assert 0 < best <= 1  # validation accuracy
    assert values(f"transfersearch_gpu_seconds_total{{{own}}}") == {"digits-pilot": 0}
    assert values(f"transfersearch_gpu_seconds_budget{{{own}}}") == {"digits-pilot": 3600}
    assert not values(f"transfersearch_search_rank{{{own}}}")  # no table: no rank
    table = values('transfersearch_search_evaluation_seconds_sum{search="scene-search-jigsaw"}')
    assert table == {"scene-search-jigsaw": 0}  # table lookups cost nothing
    assert values(
        'transfersearch_search_evaluation_seconds_count{search="scene-search-jigsaw"}'
    ) == {"scene-search-jigsaw": 20}


def test_scrapes_stay_small(stack: Stack) -> None:
    """Bounded labels keep every target's scrape small (a guard against a cardinality leak)."""
    for job, port in stack.targets.items():
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
            body = response.read()
        samples = query(stack, f'scrape_samples_scraped{{job="{job}"}}')["result"]
        assert samples, job
        count = int(float(samples[0]["value"][1]))
        print(f"{job}: {len(body):,} bytes, {count} samples per scrape")
        assert 0 < count < 500
        assert len(body) < 64_000
