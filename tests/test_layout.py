"""The project's shape: no stdlib shadowing, and the operator stays free of torch."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


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
        "transfersearch_trainer.search.baselines; "
        "print('torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
