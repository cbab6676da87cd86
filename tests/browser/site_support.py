"""The site page's table as the tests read it, by its DOM contract."""

from __future__ import annotations

ROWS = "#rigs tbody tr[data-rig]"


async def row_names(page) -> list[str]:
    return await page.eval_on_selector_all(ROWS, "rows => rows.map(r => r.dataset.rig)")


async def every_listed_rig(page) -> list[str]:
    """The rigs of every page of the table, walked with ``#page-next``."""
    names = await row_names(page)
    for _ in range(1000):  # a bound, not a count: at most 5,000 rigs of 50 rows
        following = page.locator("#page-next")
        if await following.count() == 0 or await following.is_disabled():
            break
        before = await page.text_content("#page-info")
        await following.click()
        await page.wait_for_function("b => document.querySelector('#page-info').textContent !== b", arg=before)
        names += await row_names(page)
    return names


async def column_values(page, key: str) -> list[float | None]:
    """The ``data-value`` of column ``key`` in every row shown, top to bottom (None when empty)."""
    return await page.evaluate(
        """key => {
            const heads = [...document.querySelectorAll('#rigs thead th')];
            const column = heads.findIndex(th => th.querySelector(`button[data-sort="${key}"]`));
            return [...document.querySelectorAll('#rigs tbody tr[data-rig]')].map(row => {
                const raw = row.children[column].dataset.value;
                return raw === undefined || raw === '' ? null : Number(raw);
            });
        }""",
        key,
    )
