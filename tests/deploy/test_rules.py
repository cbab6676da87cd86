"""Prometheus rules and the Alertmanager example: promtool / amtool checks and unit tests.

Needs Debian's ``prometheus`` (promtool) and ``prometheus-alertmanager`` (amtool) packages;
CI installs them. Missing tools fail the test rather than skip it.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
RULES_DIR = REPO / "deploy" / "prometheus" / "rules"
RULE_FILES = sorted(RULES_DIR.glob("*.yml"))  # what prometheus.yml loads (rules/*.yml)
TEST_FILES = sorted((RULES_DIR / "tests").glob("*.test.yml"))
ALERTMANAGER_CONFIG = REPO / "deploy" / "alertmanager" / "alertmanager.yml"


def _tool(name: str, package: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.fail(f"{name} not found on PATH: install it with `apt-get install -y {package}`", pytrace=False)
    return path


def _run(*args: str | Path) -> None:
    result = subprocess.run([str(a) for a in args], capture_output=True, text=True, timeout=300, check=False)
    assert result.returncode == 0, f"{' '.join(map(str, args))} failed:\n{result.stdout}\n{result.stderr}"


def _rules() -> list[dict]:
    return [rule for path in RULE_FILES for group in yaml.safe_load(path.read_text())["groups"] for rule in group["rules"]]


def test_rule_and_test_files_exist() -> None:
    assert RULE_FILES, f"no rule files in {RULES_DIR}"
    assert TEST_FILES, f"no promtool test files in {RULES_DIR / 'tests'}"


def test_promtool_check_rules() -> None:
    _run(_tool("promtool", "prometheus"), "check", "rules", *RULE_FILES)


@pytest.mark.parametrize("test_file", TEST_FILES, ids=lambda p: p.name)
def test_promtool_test_rules(test_file: Path) -> None:
    _run(_tool("promtool", "prometheus"), "test", "rules", test_file)


def test_amtool_check_config() -> None:
    _run(_tool("amtool", "prometheus-alertmanager"), "check-config", ALERTMANAGER_CONFIG)


def test_every_rule_has_a_unit_test() -> None:
    tests = [yaml.safe_load(path.read_text()) for path in TEST_FILES]
    tested = {case["alertname"] for t in tests for group in t["tests"] for case in group.get("alert_rule_test", [])}
    tested |= {case["expr"] for t in tests for group in t["tests"] for case in group.get("promql_expr_test", [])}
    names = {rule.get("alert") or rule["record"] for rule in _rules()}
    assert not names - tested, f"rules without a promtool unit test: {sorted(names - tested)}"


def test_alerts_carry_severity_and_runbook() -> None:
    for rule in _rules():
        if "alert" not in rule:
            continue
        name = rule["alert"]
        assert rule["labels"]["severity"] in {"critical", "warning", "info"}, name
        annotations = rule["annotations"]
        assert annotations.get("summary") and annotations.get("description"), name
        assert annotations.get("runbook") == f"README.md#runbook-{name.lower()}", name


def test_per_rig_alerts_exclude_curtailed_rigs() -> None:
    for rule in _rules():
        name = rule.get("alert", "")
        if name.startswith("FleetdRig") and name != "FleetdRigCurtailed":
            assert re.search(r'curtailed!="true"', rule["expr"]), f"{name} does not exclude curtailed rigs"
