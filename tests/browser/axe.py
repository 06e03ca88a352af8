"""axe-core in the browser tests: a page, as it is on screen, checked against WCAG 2.1 A and AA
and axe's best practices.

axe-core comes from npm at the version in ``package-lock.json`` (``make test`` installs it into
``node_modules/``). The pages' Content-Security-Policy runs only this origin's script files, so
axe cannot be added as a ``<script>`` (Playwright's ``add_script_tag`` makes an inline one, which
the policy refuses). Its source is evaluated through the DevTools protocol instead
(``page.evaluate``), which the policy does not govern: the page is checked with its own policy in
force, no ``bypass_csp``.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from tests.support.services import in_ci

if TYPE_CHECKING:
    from playwright.sync_api import Page

SCRIPT = Path(__file__).resolve().parents[2] / "node_modules" / "axe-core" / "axe.min.js"
# Every animation finished but those that never end (the reconnecting dot's pulse).
_STILL = """() => document.getAnimations()
                     .every(a => a.effect.getComputedTiming().endTime === Infinity)"""
TAGS = ("wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "best-practice")


def require() -> None:
    """Skip the calling test module, or fail it under CI, without axe-core."""
    if SCRIPT.is_file():
        return
    reason = f"no axe-core at {SCRIPT} (make test installs it with npm)"
    if in_ci():
        pytest.fail(f"accessibility checks cannot run under CI: {reason}", pytrace=False)
    pytest.skip(reason, allow_module_level=True)


@cache
def _source() -> str:
    return SCRIPT.read_text(encoding="utf-8")


def violations(page: Page) -> list[dict[str, Any]]:
    """axe's violations of :data:`TAGS` on the page as it is now."""
    if not page.evaluate("typeof window.axe === 'object'"):
        page.evaluate(_source())
    found: list[dict[str, Any]] = page.evaluate(
        """tags => axe.run(document, {
               runOnly: {type: "tag", values: tags}, resultTypes: ["violations"],
           }).then(result => result.violations)""",
        list(TAGS),
    )
    return found


def describe(found: list[dict[str, Any]]) -> str:
    """One paragraph per violated rule: what it asks and where it fails."""
    lines = []
    for rule in found:
        lines.append(f"{rule['id']} ({rule['impact']}): {rule['help']} [{rule['helpUrl']}]")
        for node in rule["nodes"]:
            summary = " ".join(node.get("failureSummary", "").split())
            lines.append(f"  {' '.join(map(str, node['target']))}: {summary}")
    return "\n".join(lines)


def assert_accessible(page: Page) -> None:
    """No violation once the page is still: axe reads colours as painted, so a row fading in
    (or a score's highlight) would be measured half-drawn."""
    page.wait_for_function(_STILL)
    found = violations(page)
    assert found == [], f"axe-core finds on {page.url}:\n{describe(found)}"
