"""axe-core (vendored, ``vendor/axe-core``) run in a page: the WCAG 2 A and AA rules, labels,
names and colour contrast among them, and its violations said readably."""

from __future__ import annotations

from pathlib import Path

AXE = Path(__file__).with_name("vendor") / "axe-core" / "axe.min.js"
TAGS = ["wcag2a", "wcag2aa"]


async def run(page) -> dict:
    if await page.evaluate("typeof window.axe") == "undefined":
        await page.add_script_tag(path=str(AXE))
    return await page.evaluate("tags => axe.run(document, {runOnly: {type: 'tag', values: tags}})", TAGS)


def checked_rules(result: dict) -> set[str]:
    """Every rule that ran, whatever it found."""
    return {rule["id"] for kind in ("passes", "violations", "incomplete", "inapplicable") for rule in result[kind]}


def describe(violations: list[dict]) -> str:
    """One paragraph per rule broken: what, how bad, where (up to five elements), and the fix."""
    lines = []
    for v in violations:
        lines.append(f"{v['id']} ({v['impact']}): {v['help']} [{v['helpUrl']}]")
        for node in v["nodes"][:5]:
            lines.append(f"  {' '.join(node['target'])}: {node['failureSummary'].replace(chr(10), '; ')}")
        if len(v["nodes"]) > 5:
            lines.append(f"  ... and {len(v['nodes']) - 5} more")
    return "\n".join(lines)
