"""The alert rules, checked and unit-tested by Prometheus's own promtool."""

from __future__ import annotations

import subprocess

from tests.paths import ROOT as REPO_ROOT

OBS = REPO_ROOT / "observability"


def test_rules_are_valid(promtool: str) -> None:
    out = subprocess.run(
        [promtool, "check", "rules", "prometheus-rules.yaml"],
        cwd=OBS,
        capture_output=True,
        text=True,
        check=False,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert "SUCCESS: 7 rules found" in out.stdout


def test_rule_unit_tests_pass(promtool: str) -> None:
    """Each alert fires and stays quiet where it should (see prometheus-rules.test.yaml)."""
    out = subprocess.run(
        [promtool, "test", "rules", "prometheus-rules.test.yaml"],
        cwd=OBS,
        capture_output=True,
        text=True,
        check=False,
    )
    assert out.returncode == 0, out.stdout + out.stderr


def test_every_alert_has_a_unit_test() -> None:
    import yaml

    rules = yaml.safe_load((OBS / "prometheus-rules.yaml").read_text())
    alerts = {r["alert"] for g in rules["groups"] for r in g["rules"] if "alert" in r}
    tests = yaml.safe_load((OBS / "prometheus-rules.test.yaml").read_text())
    tested = {a["alertname"] for t in tests["tests"] for a in t.get("alert_rule_test", [])}
    firing = {
        a["alertname"]
        for t in tests["tests"]
        for a in t.get("alert_rule_test", [])
        if a["exp_alerts"]
    }
    quiet = {
        a["alertname"]
        for t in tests["tests"]
        for a in t.get("alert_rule_test", [])
        if not a["exp_alerts"]
    }
    assert alerts == tested
    assert alerts == firing
    assert alerts - {"TransferSearchOperatorReconcileErrors"} <= quiet
