"""Commands that run a search: `run` (a manifest, locally), `train` (one trial, as a pod)
and `operator` (the Kubernetes operator)."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Annotated

import typer
from pydantic import ValidationError

from transfersearch_trainer.api.errors import TransferSearchError
from transfersearch_trainer.api.spec import S3Settings, format_validation_error, load_manifest
from transfersearch_trainer.cli.common import (
    DataOpt,
    DeviceOpt,
    HpOpt,
    JsonOpt,
    LingerOpt,
    RichReporter,
    console,
    err_console,
    hyperparameters,
    print_results,
    print_searches,
)
from transfersearch_trainer.search.stats import Summary


def run(
    manifest_file: Annotated[
        str, typer.Argument(help="TransferSearch manifest (YAML).", metavar="FILE")
    ],
    out: Annotated[
        str | None, typer.Option("--out", help="Report folder (default runs/NAME).")
    ] = None,
    agents: Annotated[
        str | None,
        typer.Option("--agents", help="Cache of pretrained source agents (default runs/agents)."),
    ] = None,
    compare_scratch: Annotated[
        bool, typer.Option(help="Also train a scratch agent with the same budget, for reference.")
    ] = True,
    baselines: Annotated[
        bool,
        typer.Option(
            help="Protocol search: every baseline searches too, same budget and seeds (seconds)."
        ),
    ] = True,
    study: Annotated[
        str | None,
        typer.Option(
            "--study",
            help="A study's summary.csv to quote for the target "
            "(default docs/results/loto-<space>/summary.csv when it exists).",
        ),
    ] = None,
    cache: Annotated[
        str | None,
        typer.Option(
            "--cache",
            help="A dataset target's finished trainings: a folder or s3:// prefix "
            "(default $TRANSFERSEARCH_CACHE/evaluations).",
        ),
    ] = None,
    data: DataOpt = None,
    device: DeviceOpt = None,
    hp: HpOpt = None,
    json_out: JsonOpt = False,
    metrics_port: Annotated[
        int,
        typer.Option(
            "--metrics-port", help="Serve Prometheus /metrics on this port while running; 0: off."
        ),
    ] = 0,
    metrics_linger: LingerOpt = 0.0,
) -> None:
    """Run a TransferSearch manifest locally: source agent, transfer, evaluation, report."""

    # lazy: these import torch, which the light commands must not load
    from transfersearch_trainer.agent.evaluate import MethodResult
    from transfersearch_trainer.workflow.local import RunOptions, run_manifest

    manifest = load_manifest(manifest_file)
    out_dir = Path(out or Path("runs") / manifest.metadata.name)
    metrics = None
    if metrics_port:
        from transfersearch_trainer.telemetry.metrics import TrainerMetrics

        metrics = TrainerMetrics()
        try:
            metrics.serve(metrics_port)
        except OSError as err:
            raise TransferSearchError(
                f"--metrics-port: cannot listen on {metrics_port} ({err.strerror}); "
                "choose a free port or 0"
            ) from None
        err_console.print(f"metrics on http://localhost:{metrics_port}/metrics")
    opts = RunOptions(
        out=out_dir,
        data=data,
        agents_dir=Path(agents) if agents else None,
        compare_scratch=compare_scratch,
        compare_baselines=baselines,
        device=device,
        hp=hyperparameters(hp),
        metrics=metrics,
        cache=cache,
    )
    report = run_manifest(manifest, opts, RichReporter(not json_out))
    if metrics is not None and metrics_linger > 0:
        err_console.print(f"serving the final metrics for {metrics_linger:.0f} s more")
        time.sleep(metrics_linger)
    if json_out:
        print(json.dumps(report))
        return
    if report.get("protocol") == "search":
        print_searches(report, out_dir)
        if report.get("dataset"):
            return  # the study measured benchmark tasks, not this dataset
        summary = Path(study or f"docs/results/loto-{report['space']}/summary.csv")
        if study and not summary.is_file():
            raise TransferSearchError(f"--study: {summary} is not a file; give a summary.csv")
        from transfersearch_trainer.study.published import study_lines

        for line in study_lines(summary, report["target_task"], report["budget"]):
            console.print(line, markup=False, highlight=False)
        return
    results = [
        MethodResult(
            r["method"],
            Summary(**{k: r[k] for k in Summary.__dataclass_fields__}),
            r["training_evaluations"],
            r["training_queries"],
            r["best_arch"],
            r["best_value"],
        )
        for r in report["results"]
    ]
    print_results(
        results,
        f"{manifest.metadata.name}: {report['source_task'] or 'no source'} -> "
        f"{report['target_task']} "
        f"({report['mode']}), budget {report['budget']}, {report['searches']} searches",
        report["optimum"],
        report["optimum_arch"],
    )
    console.print(
        f"report: {out_dir}/ (results.json, curves.csv, learning_curves.png, "
        f"comparison.png, agents/); {report['wall_seconds']:.0f} s on {report['device']}"
    )


def train(
    config: Annotated[
        str, typer.Option("--config", help="Job config JSON (what the operator mounts).")
    ],
    termination_log: Annotated[
        str | None,
        typer.Option(
            "--termination-log",
            help="Where the trial summary goes (default: the config's terminationLog).",
            show_default=False,
        ),
    ] = None,
    trial: Annotated[
        int | None,
        typer.Option(
            "--trial",
            help="Trial index (default: $JOB_COMPLETION_INDEX, else 0).",
            show_default=False,
        ),
    ] = None,
    metrics_port: Annotated[
        int | None,
        typer.Option(
            "--metrics-port",
            help="Prometheus /metrics port (default: the config's metricsPort; 0: off).",
            show_default=False,
        ),
    ] = None,
    metrics_linger: LingerOpt = 0.0,
) -> None:
    """Run one trial of a search as a trainer pod does (exit 0 ok, 2 permanent, 75 retryable)."""
    # lazy: these import torch, which the light commands must not load
    from transfersearch_trainer.pod.main import main as run_trial

    code = run_trial(config, termination_log, trial, metrics_port, metrics_linger)
    if code:
        raise typer.Exit(code)


def operator_cmd(
    namespace: Annotated[
        list[str] | None,
        typer.Option("--namespace", "-n", help="Namespace to serve (repeatable; globs allowed)."),
    ] = None,
    all_namespaces: Annotated[
        bool, typer.Option("--all-namespaces", "-A", help="Serve every namespace.")
    ] = False,
    peering: Annotated[
        str | None,
        typer.Option(help="kopf peering name (replicas with one active); default: standalone."),
    ] = None,
    metrics_port: Annotated[int, typer.Option(help="Prometheus /metrics port; 0: off.")] = 8000,
    liveness_port: Annotated[int, typer.Option(help="/healthz port for probes; 0: off.")] = 8080,
    trainer_image: Annotated[
        str | None,
        typer.Option(
            envvar="TRANSFERSEARCH_TRAINER_IMAGE", help="Trainer image when a spec names none."
        ),
    ] = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log more.")] = False,
    s3_bucket: Annotated[
        str | None,
        typer.Option(
            envvar="TRANSFERSEARCH_DEFAULT_S3_BUCKET",
            help="Default S3 bucket for searches whose spec has no s3 section.",
        ),
    ] = None,
    s3_prefix: Annotated[
        str, typer.Option(envvar="TRANSFERSEARCH_DEFAULT_S3_PREFIX", help="Its key prefix.")
    ] = "transfersearch",
    s3_endpoint: Annotated[
        str | None,
        typer.Option(envvar="TRANSFERSEARCH_DEFAULT_S3_ENDPOINT", help="Its endpoint URL."),
    ] = None,
    s3_region: Annotated[
        str | None, typer.Option(envvar="TRANSFERSEARCH_DEFAULT_S3_REGION", help="Its region.")
    ] = None,
    s3_credentials_secret: Annotated[
        str | None,
        typer.Option(
            envvar="TRANSFERSEARCH_DEFAULT_S3_SECRET",
            help="Secret (in each search's namespace) with its credentials.",
        ),
    ] = None,
) -> None:
    """Run the Kubernetes operator that turns TransferSearch resources into trainer Jobs."""
    # lazy: the operator (kopf, its handlers) loads only for this command
    from transfersearch_operator.main import run

    default_s3 = None
    if s3_bucket:
        try:
            default_s3 = S3Settings(
                bucket=s3_bucket,
                prefix=s3_prefix,
                endpoint=s3_endpoint,
                region=s3_region,
                credentials_secret=s3_credentials_secret,
            )
        except ValidationError as err:
            raise TransferSearchError(
                " ".join(format_validation_error(err, "--s3-* flags").split())
            ) from None

    run(
        namespace or [],
        all_namespaces,
        peering,
        metrics_port,
        liveness_port,
        trainer_image,
        verbose,
        default_s3,
    )


def register(app: typer.Typer) -> None:
    app.command()(run)
    app.command()(train)
    app.command("operator")(operator_cmd)
