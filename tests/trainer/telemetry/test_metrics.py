"""The trainer's metrics as exported: counters, references, checkpoint age, the learner hook."""

from __future__ import annotations

import time
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import TINY_HP
from transfersearch_trainer.agent.artifact import Agent
from transfersearch_trainer.agent.hooks import LearnerHooks
from transfersearch_trainer.agent.hyperparameters import Hyperparameters
from transfersearch_trainer.agent.learner import Learner, TrainingRun, Watch, pick_device
from transfersearch_trainer.benchmark.loaders import load_benchmark
from transfersearch_trainer.search.evaluator import Evaluation
from transfersearch_trainer.telemetry.hooks import MetricsHook
from transfersearch_trainer.telemetry.metrics import MetricLabels, TrainerMetrics

LABELS = MetricLabels(search="s", namespace="ns", task="jigsaw", trial="1", mode="finetune")
TINY = Hyperparameters().replace(**TINY_HP, eval_interval=20)


def scrape(metrics: TrainerMetrics) -> dict[str, float]:
    """name{label=value,...} -> value, for the series with LABELS' values (or none)."""
    from prometheus_client import generate_latest

    out: dict[str, float] = {}
    for family in text_string_to_metric_families(generate_latest(metrics.registry).decode()):
        for sample in family.samples:
            extra = {k: v for k, v in sample.labels.items() if k not in LABELS.as_dict()}
            key = sample.name + "".join(f"{{{k}={v}}}" for k, v in sorted(extra.items()))
            out[key] = sample.value
    return out


def test_counters_advance_by_the_totals_difference_and_never_go_back() -> None:
    m = TrainerMetrics()
    for updates, env_steps in ((10, 100), (25, 100), (20, 90)):
        m.record_progress(
            LABELS,
            updates=updates,
            env_steps=env_steps,
            task_evaluations=5,
            device_seconds=2.0,
            device="cpu",
        )
    got = scrape(m)
    assert got["transfersearch_learner_updates_total"] == 25
    assert got["transfersearch_env_steps_total"] == 100
    assert got["transfersearch_device_seconds_total{device=cpu}"] == 2.0
    assert not any(k.endswith("_created") for k in got)


def test_a_search_exports_its_budget_then_its_evaluations_best_rank_and_time() -> None:
    m = TrainerMetrics()
    m.start_search(LABELS, budget=50, device="cpu")
    got = scrape(m)
    assert got["transfersearch_search_budget"] == 50
    assert got["transfersearch_search_evaluations_total"] == 0
    assert got["transfersearch_trainer_running"] == 1
    assert got["transfersearch_gpu_seconds_total{gpu_model=none}"] == 0
    report = {
        "evaluations": 50,
        "best_metric": 46.5,
        "rank": 3,
        "device": "cpu",
        "device_seconds": 1.5,
        "gpu_seconds": 0.0,
    }
    m.record_search(LABELS, report)
    m.record_search(LABELS, report)  # reported twice (a rerun): counted once
    got = scrape(m)
    assert got["transfersearch_search_evaluations_total"] == 50
    assert got["transfersearch_search_best_metric"] == 46.5
    assert got["transfersearch_search_rank"] == 3
    assert got["transfersearch_device_seconds_total{device=cpu}"] == 1.5
    assert got["transfersearch_trainer_running"] == 0


def test_each_evaluation_updates_the_search_series_as_it_comes() -> None:
    """Own data: evaluations done, seconds each (a histogram), device seconds, best so far;
    a cached answer costs nothing now; the final report only settles the totals."""
    m = TrainerMetrics()
    m.start_search(LABELS, budget=3, device="cpu", gpu_seconds_budget=600)
    listen = m.evaluation_listener(LABELS, "cpu")
    listen(Evaluation(0.5, device_seconds=40.0))
    got = scrape(m)
    assert got["transfersearch_search_evaluations_total"] == 1
    assert got["transfersearch_search_best_metric"] == 0.5
    assert got["transfersearch_gpu_seconds_budget"] == 600
    assert got["transfersearch_search_evaluation_seconds_count"] == 1
    assert got["transfersearch_search_evaluation_seconds_bucket{le=30.0}"] == 0
    assert got["transfersearch_search_evaluation_seconds_bucket{le=60.0}"] == 1
    listen(Evaluation(0.25, device_seconds=100.0))
    listen(Evaluation(0.75, device_seconds=40.0, cached=True))
    got = scrape(m)
    assert got["transfersearch_search_evaluations_total"] == 3
    assert got["transfersearch_search_best_metric"] == 0.75
    assert got["transfersearch_search_evaluation_seconds_sum"] == 140
    assert got["transfersearch_search_evaluation_seconds_bucket{le=0.1}"] == 1  # the cached one
    assert got["transfersearch_device_seconds_total{device=cpu}"] == 140
    assert got["transfersearch_gpu_seconds_total{gpu_model=none}"] == 0
    report = {"evaluations": 3, "best_metric": 0.75, "rank": None, "device_seconds": 150.0}
    m.record_search(LABELS, {**report, "gpu_seconds": 0.0, "device": "cpu"})
    got = scrape(m)
    assert got["transfersearch_search_evaluations_total"] == 3  # not counted twice
    assert got["transfersearch_device_seconds_total{device=cpu}"] == 150  # + the agent's own
    assert "transfersearch_search_rank" not in got  # no table: no rank
    assert got["transfersearch_trainer_running"] == 0


def test_drift_reference_is_the_best_regret_so_far() -> None:
    m = TrainerMetrics()
    for regret in (0.6, 0.3, 0.5):
        m.record_evaluation(LABELS, 45.0, regret)
    got = scrape(m)
    assert got["transfersearch_evaluation_regret_ratio"] == 0.5
    assert got["transfersearch_reference_regret_ratio"] == 0.3


def test_checkpoint_age_is_computed_at_scrape_time() -> None:
    m = TrainerMetrics()
    assert "transfersearch_checkpoint_age_seconds" not in scrape(m)
    m.record_checkpoint(LABELS, when=time.time() - 30)
    age = scrape(m)["transfersearch_checkpoint_age_seconds"]
    assert 30 <= age < 40
    m.record_checkpoint(LABELS)
    assert scrape(m)["transfersearch_checkpoint_age_seconds"] < 5


def test_cpu_trainer_exports_zero_gpu_seconds_with_gpu_model_none() -> None:
    m = TrainerMetrics()
    m.init_device(LABELS, "cpu")
    got = scrape(m)
    assert got["transfersearch_gpu_seconds_total{gpu_model=none}"] == 0
    assert got["transfersearch_device_seconds_total{device=cpu}"] == 0


class _Restored(LearnerHooks):
    """Stands in for a checkpointer that restored 40 updates' worth of state."""

    def on_start(self, learner: Learner) -> None:
        learner.stats.updates, learner.stats.env_steps = 40, 4000
        learner.elapsed_before = 100.0


def test_hook_exports_one_training_and_counts_only_this_process_after_a_resume(
    data_dir: Path,
) -> None:
    bench = load_benchmark(str(data_dir), "micro")
    from transfersearch_trainer.agent.evaluate import curve_evaluator

    device = pick_device("cpu")
    evaluator = curve_evaluator(bench, "jigsaw", TINY.eval_budget, TINY.eval_searches, device)
    m = TrainerMetrics()
    hook = MetricsHook(m, LABELS, every_seconds=0.0)
    agent = Agent.new(bench.space, TINY, 0)
    run = TrainingRun(bench, "jigsaw", TINY, 100, 0, device)
    learner = Learner(agent.net, run, Watch(evaluator=evaluator, hooks=[_Restored(), hook]))
    stats = learner.run()
    got = scrape(m)
    assert stats.updates == 100
    assert got["transfersearch_learner_updates_total"] == 100 - 40
    assert got["transfersearch_env_steps_total"] == stats.env_steps - 4000
    assert 0 < got["transfersearch_device_seconds_total{device=cpu}"] < stats.device_seconds - 99
    assert got["transfersearch_trainer_running"] == 0
    assert got["transfersearch_evaluation_regret_ratio"] == stats.curve[-1].normalised_regret
    assert got["transfersearch_evaluation_best_metric"] == stats.curve[-1].score
    assert got["transfersearch_reference_regret_ratio"] == min(
        p.normalised_regret for p in stats.curve
    )
    assert "transfersearch_episode_reward" in got


def test_a_trial_takes_its_scratch_reference_from_the_newest_comparable_scratch_agent(
    tmp_path: Path,
) -> None:
    import threading

    from transfersearch_trainer.agent.artifact import save_agent
    from transfersearch_trainer.api.jobconfig import JobConfig
    from transfersearch_trainer.benchmark.spaces import get_space
    from transfersearch_trainer.pod.trial import Trial
    from transfersearch_trainer.store.agents import AgentStore

    config = JobConfig.model_validate(
        {
            "search": "s",
            "output": str(tmp_path / "out"),
            "spec": {"source": {"task": "class_scene"}, "target": {"task": "jigsaw"}},
        }
    )
    trial = Trial(config, 0, threading.Event(), TrainerMetrics())
    store = AgentStore(str(tmp_path / "out" / "store"))
    assert trial.scratch_reference("jigsaw", TINY) is None  # an empty store: no reference

    def push(regret: float, mode: str = "scratch", hp: Hyperparameters = TINY) -> None:
        agent = Agent.new(get_space("micro"), hp, 0)
        agent.task, agent.mode = "jigsaw", mode
        agent.training = {"curve": [{"normalised_regret": 0.9}, {"normalised_regret": regret}]}
        folder = tmp_path / f"agent-{regret}-{mode}"
        save_agent(agent, folder)
        store.push(folder)
        time.sleep(1.1)  # `created` has one-second resolution: keep the order unambiguous

    push(0.4)
    push(0.2)
    push(0.1, mode="finetune")  # not a scratch agent
    push(0.3, hp=TINY.replace(eval_budget=50))  # measured differently: not comparable
    assert trial.scratch_reference("jigsaw", TINY) == 0.2
