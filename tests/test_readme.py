"""The README is what operators read: its runbook must cover every alert the rules define."""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _anchor(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces as hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def test_every_alert_runbook_link_lands_on_a_readme_heading():
    readme = (REPO / "README.md").read_text()
    anchors = {_anchor(h) for h in re.findall(r"^#+ (.+)$", readme, re.M)}
    rules = "".join(p.read_text() for p in (REPO / "deploy" / "prometheus" / "rules").glob("*.yml"))
    links = re.findall(r"runbook: README\.md#([\w-]+)", rules)
    alerts = re.findall(r"^\s*- alert: (\w+)", rules, re.M)
    assert len(links) == len(alerts) > 10
    assert sorted(set(links) - anchors) == []


def test_readme_test_command_is_what_ci_runs():
    readme = (REPO / "README.md").read_text()
    assert "bash deploy/quickstart.sh test" in readme
    assert "bash deploy/quickstart.sh test" in (REPO / ".ci" / "run").read_text()
