"""The site page's accessibility basics, checked by axe-core in headless Chromium against a
running ``fleetd demo``: WCAG 2 A and AA rules (labels, names, colour contrast among them), in
the light and the dark colour scheme, and with a rig's detail open."""

from __future__ import annotations

import hashlib
import re

import pytest

import axe_support

# the rules this check is for, which must have run (not only "no violation of whatever ran")
MUST_RUN = {"label", "button-name", "color-contrast", "html-has-lang", "document-title", "select-name"}


@pytest.mark.asyncio(loop_scope="module")
@pytest.mark.parametrize("scheme", ["light", "dark"])
async def test_the_page_passes_axe_in_both_colour_schemes(demo, context, scheme):
    page = await context.new_page()
    await page.emulate_media(color_scheme=scheme)
    await page.goto(demo.base + "/")
    await page.wait_for_selector("#rigs tbody tr[data-rig]")
    await page.wait_for_function("() => document.querySelector('time#updated')?.dataset.updated")
    result = await axe_support.run(page)
    assert MUST_RUN <= axe_support.checked_rules(result), MUST_RUN - axe_support.checked_rules(result)
    assert not result["violations"], (
        f"axe-core {result['testEngine']['version']}, {scheme} scheme:\n" + axe_support.describe(result["violations"])
    )
    # the rig's detail: its own heading, figures and close button
    await page.locator("#rigs tbody tr[data-rig] a[href^='#rig=']").first.click()
    await page.locator("#rig-detail").wait_for(state="visible")
    result = await axe_support.run(page)
    assert not result["violations"], f"{scheme} scheme, rig detail open:\n" + axe_support.describe(result["violations"])


def test_the_vendored_axe_core_is_the_one_its_readme_names():
    folder = axe_support.AXE.parent
    readme = (folder / "README.md").read_text()
    version = re.match(r"/\*! axe v([\d.]+)", axe_support.AXE.read_text()).group(1)
    assert readme.startswith(f"# axe-core {version}\n")
    assert hashlib.sha256(axe_support.AXE.read_bytes()).hexdigest() in readme
    assert (folder / "LICENSE").read_text().startswith("Mozilla Public License")
