"""The built site works opened from disk (file://) in Chromium: search finds a page,
navigation reaches it, and the page makes no request the network would have to answer."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from cblab.testing import collect_console_errors


def test_search_and_navigation_work_from_disk(built_site: Path, chromium: Any) -> None:
    page = chromium.new_page(viewport={"width": 1300, "height": 900})
    errors = collect_console_errors(page)
    requests: list[str] = []
    page.on("request", lambda r: requests.append(r.url))
    page.goto((built_site / "index.html").as_uri())

    # navigation: the left-hand nav reaches a how-to page
    page.get_by_role("link", name="Protect your client").first.click()
    page.wait_for_url("**/how-to/protect-your-client.html")
    assert "GuardedClient" in page.locator("article").inner_text()

    # search: the inlined index answers from disk, and a result opens its page
    page.keyboard.press("/")
    page.keyboard.type("bulkhead", delay=30)
    results = page.locator(".md-search-result__item")
    results.first.wait_for(timeout=30_000)
    assert results.count() >= 2
    page.locator(".md-search-result__link").first.click()
    page.wait_for_load_state()
    assert "bulkhead" in page.locator("article").inner_text().lower()

    remote = [url for url in requests if not url.startswith(("file:", "data:", "blob:"))]
    assert remote == [], f"the offline site asked the network for {remote}"
    assert errors == [], errors
