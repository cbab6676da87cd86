"""The site page's accessibility basics, checked by axe-core (vendored, ``vendor/axe-core``) in
headless Chromium against a running ``fleetd demo``: WCAG 2 A and AA rules (labels, names,
colour contrast among them), in the light and the dark colour scheme, with a rig's detail open."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import pytest

AXE = Path(__file__).with_name("vendor") / "axe-core" / "axe.min.js"
TAGS = ["wcag2a", "wcag2aa"]
# the rules this check is for, which must have run (not only "no violation of what happened to run")
MUST_RUN = {"label", "button-name", "color-contrast", "html-has-lang", "document-title", "select-name"}


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


async def axe_run(page) -> dict:
    if await page.evaluate("typeof window.axe") == "undefined":
        await page.add_script_tag(path=str(AXE))
    return await page.evaluate("tags => axe.run(document, {runOnly: {type: 'tag', values: tags}})", TAGS)


def checked_rules(result: dict) -> set[str]:
    return {rule["id"] for kind in ("passes", "violations", "incomplete", "inapplicable") for rule in result[kind]}


@pytest.mark.asyncio(loop_scope="module")
@pytest.mark.parametrize("scheme", ["light", "dark"])
async def test_the_page_passes_axe_in_both_colour_schemes(demo, context, scheme):
    page = await context.new_page()
    await page.emulate_media(color_scheme=scheme)
    await page.goto(demo.base + "/")
    await page.wait_for_selector("#rigs tbody tr[data-rig]")
    await page.wait_for_function("() => document.querySelector('time#updated')?.dataset.updated")
    result = await axe_run(page)
    assert MUST_RUN <= checked_rules(result), MUST_RUN - checked_rules(result)
    assert not result["violations"], f"axe-core {result['testEngine']['version']}, {scheme} scheme:\n" + describe(
        result["violations"]
    )
    # the rig's detail (its own headings, figures and close button)
    await page.locator("#rigs tbody tr[data-rig] a[href^='#rig=']").first.click()
    await page.locator("#rig-detail").wait_for(state="visible")
    result = await axe_run(page)
    assert not result["violations"], f"{scheme} scheme, rig detail open:\n" + describe(result["violations"])


def test_the_vendored_axe_core_is_the_one_its_readme_names():
    readme = (AXE.parent / "README.md").read_text()
    version = re.match(r"/\*! axe v([\d.]+)", AXE.read_text()).group(1)
    assert readme.startswith(f"# axe-core {version}\n")
    assert hashlib.sha256(AXE.read_bytes()).hexdigest() in readme
    assert (AXE.parent / "LICENSE").read_text().startswith("Mozilla Public License")
