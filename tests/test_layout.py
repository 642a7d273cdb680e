"""The project's shape: no stdlib shadowing, and the operator stays free of torch."""

from __future__ import annotations

import subprocess
import sys

from tests.paths import ROOT as REPO_ROOT

ROOT = REPO_ROOT


def test_no_package_named_operator() -> None:
    assert not (ROOT / "operator" / "__init__.py").exists()
    out = subprocess.run(
        [sys.executable, "-c", "import operator; print(operator.__file__)"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=True,
    )
    assert "site-packages" not in out.stdout
    assert str(ROOT / "operator") not in out.stdout


def test_light_modules_do_not_import_torch() -> None:
    code = (
        "import sys, transfersearch_operator, transfersearch_trainer.cli.main, "
        "transfersearch_operator.main, transfersearch_operator.crd, "
        "transfersearch_trainer.benchmark.loaders, transfersearch_trainer.search.env, "
        "transfersearch_trainer.search.baselines, transfersearch_trainer.search.priors, "
        "transfersearch_trainer.store.agents, transfersearch_trainer.api.jobconfig; "
        "print('torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_product_modules_stay_small() -> None:
    """One concept per module: a module past ~400 lines is two concepts (split it)."""
    big = {
        str(p.relative_to(ROOT)): n
        for folder in ("trainer", "operator")
        for p in (ROOT / folder).rglob("*.py")
        if (n := len(p.read_text().splitlines())) > 400
    }
    assert not big, f"modules over 400 lines: {big}"


def test_cli_modules_stay_small() -> None:
    cli = ROOT / "trainer" / "transfersearch_trainer" / "cli"
    big = {p.name: n for p in cli.glob("*.py") if (n := len(p.read_text().splitlines())) > 300}
    assert not big, f"CLI modules over 300 lines: {big}"


def test_trainer_tests_mirror_the_layers() -> None:
    """tests/trainer/<layer>/ for each trainer layer that has tests; no stray layer names."""
    layers = {
        p.name
        for p in (ROOT / "trainer" / "transfersearch_trainer").iterdir()
        if (p / "__init__.py").is_file()
    }
    tested = {p.name for p in (ROOT / "tests" / "trainer").iterdir() if p.is_dir()}
    tested.discard("__pycache__")
    assert tested <= layers, f"test folders without a layer: {tested - layers}"
    assert not list((ROOT / "tests").glob("test_*.py")) or {
        p.name for p in (ROOT / "tests").glob("test_*.py")
    } == {"test_layout.py"}, "tests belong in fakes/, operator/, trainer/<layer>/ or deploy/"
