"""The README's pictures of the site page: a ``fleetd demo`` of 20 rigs, its page in headless
Chromium at 1280x900 once the charts have a few minutes of history, saved as two PNGs: the top
of the page (fleet header and table) and, beside it as ``<name>-charts.png``, the history
charts and the curtailment section.

    .venv/bin/python tests/browser/screenshot.py [--out deploy/screenshots/site-page.png] [--wait 300]

It waits ``--wait`` seconds of the demo first (the S19 XPs are curtailed about four minutes
in, so the charts and the curtailment section have something to show) and refuses to save a
blank page.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parents[1])]  # demo_support and pixels; fleetd from this checkout

import pixels  # noqa: E402
from demo_support import DemoError, running_demo  # noqa: E402
from fleetd.bench import page as bench_page  # noqa: E402

DEFAULT_OUT = HERE.parents[1] / "deploy" / "screenshots" / "site-page.png"
CHARTS = ("chart-fleet-hashrate", "chart-fleet-power", "chart-fleet-margin")
MAX_BYTES = 300 * 1024


async def shoot(base: str, out: Path) -> list[tuple[Path, pixels.Content]]:
    async with bench_page.chromium() as browser:
        context = await browser.new_context(viewport={"width": 1280, "height": 900}, color_scheme="light")
        context.set_default_timeout(60_000)
        page = await context.new_page()
        await page.goto(base + "/")
        drawn = "ids => ids.every(id => document.querySelector(`#${id} canvas`))"
        await page.wait_for_function(drawn, arg=list(CHARTS))
        await page.wait_for_function("() => document.querySelector('time#updated')?.dataset.updated")
        await page.wait_for_timeout(500)  # the charts' last frame
        top = await page.screenshot()
        # the demo's journal is minutes old: the last hour shows them, six would squeeze them to a line
        await page.select_option("#history-range", "1h")
        await page.wait_for_timeout(2000)  # the charts fetch their history again and redraw
        await page.evaluate(f"document.getElementById('{CHARTS[0]}').closest('section').scrollIntoView()")
        await page.wait_for_timeout(500)
        charts = await page.screenshot()
        await context.close()
    saved = []
    for path, png in ((out, top), (out.with_name(f"{out.stem}-charts{out.suffix}"), charts)):
        shot = pixels.content(png)
        if shot.colours < 50 or shot.foreground_share < 0.05:
            raise SystemExit(f"{path.name}: the page looks blank ({shot}); not saved")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(png)
        saved.append((path, shot))
    return saved


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="where to save the PNG")
    parser.add_argument("--wait", type=float, default=300.0, help="seconds of the demo before the picture")
    parser.add_argument("--rigs", type=int, default=20, help="the demo's rigs (default 20, as the quickstart's)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="fleetd-screenshot-") as workdir:
        try:
            with running_demo(Path(workdir), rigs=args.rigs) as demo:
                time.sleep(args.wait)
                saved = asyncio.run(shoot(demo.base, args.out))
        except (DemoError, bench_page.BenchError) as exc:
            print(f"screenshot: {exc}", file=sys.stderr)
            return 1
    too_big = False
    for path, shot in saved:
        size = path.stat().st_size
        print(f"{path}: {size / 1024:.0f} KiB, {shot.colours} colours, {shot.foreground_share:.0%} not background")
        if size > MAX_BYTES:
            print(f"screenshot: {path.name} is {size / 1024:.0f} KiB, over {MAX_BYTES // 1024} KiB", file=sys.stderr)
            too_big = True
    return 1 if too_big else 0


if __name__ == "__main__":
    sys.exit(main())
