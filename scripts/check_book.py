"""Open every page of the built book in headless Chromium, as a reader on a phone would, and fail on what is broken.

    .venv/bin/python scripts/check_book.py [--html _build/html] [--chromium /usr/bin/chromium]

For every HTML page under _build/html (except Sphinx's own _static/_sources/_images folders): a console error or an
uncaught exception; any request that leaves the built folder (the book must work offline); a request that fails; an
image that does not load; a link to a page or file of the book that does not exist (or to an anchor missing from
it). On every chapter page (book/generated/*, except the build notes), the result box ("Verdict: ...") must start
within the first screen (a 1280 x 900 window by default; --viewport 390x844 for a phone, where the longer
chapter introductions push it further down).

It drives the system's Chromium (Debian package `chromium`) through Playwright's Python package
(`pip install playwright`), whose wheel carries its driver; no browser is downloaded.
"""
from __future__ import annotations

import argparse
import os
import re
import shutil
import sys
from pathlib import Path
from urllib.parse import unquote, urlparse

ROOT = Path(__file__).resolve().parents[1]
SKIP_DIRS = {"_static", "_sources", "_images", "_downloads", "_sphinx_design_static"}
VIEWPORT = {"width": 1280, "height": 900}   # --viewport 390x844 for a phone
LOCAL = ("file:", "data:", "blob:", "about:")


def pages(html: Path) -> list[Path]:
    return sorted(p for p in html.rglob("*.html") if not SKIP_DIRS & set(p.relative_to(html).parts[:-1]))


def is_chapter(html: Path, page: Path) -> bool:
    rel = page.relative_to(html).as_posix()
    return rel.startswith("book/generated/") and not rel.endswith("build_info.html")


def find_chromium(given: str | None) -> str:
    for cand in [given, os.environ.get("CHROMIUM"), shutil.which("chromium"), shutil.which("chromium-browser")]:
        if cand and Path(cand).exists():
            return cand
    raise SystemExit("check_book: no Chromium found (apt-get install chromium, or --chromium PATH)")


_ids: dict[Path, set[str]] = {}


def ids_of(path: Path) -> set[str]:
    if path not in _ids:
        _ids[path] = set(re.findall(r'\bid="([^"]+)"', path.read_text(errors="replace")))
    return _ids[path]


def broken_links(page: Path, hrefs: list[str], html: Path) -> list[str]:
    bad = []
    for href in hrefs:
        url = urlparse(href)
        if url.scheme != "file":
            continue
        target = Path(unquote(url.path))
        if target.is_dir():
            target = target / "index.html"
        if not target.exists():
            bad.append(f"link to a missing file: {href}")
        elif url.fragment and target.suffix == ".html" and unquote(url.fragment) not in ids_of(target):
            bad.append(f"link to a missing anchor: {href}")
    return bad


def check(html: Path, chromium: str, viewport: dict = VIEWPORT) -> list[str]:
    from playwright.sync_api import sync_playwright

    problems = []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium, args=["--no-sandbox", "--disable-gpu"])
        context = browser.new_context(viewport=viewport, device_scale_factor=2, service_workers="block")
        page = context.new_page()
        found: list[str] = []
        page.on("console", lambda m: found.append(f"console {m.type}: {m.text}") if m.type == "error" else None)
        page.on("pageerror", lambda e: found.append(f"uncaught exception: {e}"))
        page.on("requestfailed", lambda r: found.append(f"request failed: {r.url} ({r.failure})"))

        def outside(route):
            found.append(f"network request: {route.request.url}")
            route.abort()
        page.route(re.compile(r"^(?!file:|data:|blob:|about:).*"), outside)

        for path in pages(html):
            found.clear()
            page.goto(path.as_uri(), wait_until="load")
            page.wait_for_timeout(200)
            images = page.eval_on_selector_all(
                "img", "els => els.filter(e => !e.complete || e.naturalWidth === 0).map(e => e.src)")
            found += [f"image does not load: {src}" for src in images]
            hrefs = page.eval_on_selector_all("a[href]", "els => els.map(e => e.href)")
            found += broken_links(path, hrefs, html)
            if is_chapter(html, path):
                top = page.evaluate("""() => {
                    const t = [...document.querySelectorAll('.admonition > .admonition-title')]
                        .find(e => e.textContent.trim().startsWith('Verdict'));
                    return t ? t.getBoundingClientRect().top + window.scrollY : null; }""")
                if top is None:
                    found.append("chapter without a result box")
                elif top > viewport["height"]:
                    found.append(f"result box starts at {top:.0f} px, below the first screen ({viewport['height']} px)")
            rel = path.relative_to(html).as_posix()
            problems += [f"{rel}: {f}" for f in dict.fromkeys(found)]
        browser.close()
    return problems


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--html", type=Path, default=ROOT / "_build" / "html")
    ap.add_argument("--chromium", help="the Chromium executable (default: $CHROMIUM, else chromium on PATH)")
    ap.add_argument("--viewport", default=f"{VIEWPORT['width']}x{VIEWPORT['height']}", help="WIDTHxHEIGHT in CSS px")
    args = ap.parse_args(argv)
    w, h = (int(v) for v in args.viewport.lower().split("x"))
    html = args.html.resolve()
    if not (html / "index.html").exists():
        raise SystemExit(f"check_book: no built book at {html} (run scripts/build_book.py first)")
    n = len(pages(html))
    problems = check(html, find_chromium(args.chromium), {"width": w, "height": h})
    for p in problems:
        print(p)
    print(f"check_book: {n} pages, {len(problems)} problem(s)")
    sys.exit(1 if problems else 0)


if __name__ == "__main__":
    main()
