"""Open every page of the built book in headless Chromium, as a reader on a phone would, and fail on what is broken.

    .venv/bin/python scripts/check_book.py [--html _build/html] [--chromium /usr/bin/chromium]

For every HTML page under _build/html (except Sphinx's own _static/_sources/_images folders): a console error or an
uncaught exception; any request that leaves the built folder (the book must work offline); a request that fails; an
image that does not load; a link to a page or file of the book that does not exist (or to an anchor missing from
it). On every chapter page (book/generated/*, except the build notes), the result box ("Verdict: ...") must start
within the first screen (a 1280 x 900 window by default; --viewport 390x844 for a phone), and so must the chapter's
first figure, with at least FIGURE_IN_VIEW px of it in view: a failure at the default size; with --figure report
(for a phone, where the result box alone fills most of the screen) it is listed but does not fail the check.
The slider figure (.grokbook-embedding) must draw its points and move them when its slider moves. A link to the
zip of the executed notebooks must be on some page, and the zip must hold every chapter's notebook.

It drives the system's Chromium (Debian package `chromium`) through Playwright's Python package
(`pip install playwright`), whose wheel carries its driver; no browser is downloaded.
"""
from __future__ import annotations

import argparse
import os
import re
import shutil
import sys
import zipfile
from pathlib import Path
from urllib.parse import unquote, urlparse

ROOT = Path(__file__).resolve().parents[1]
SKIP_DIRS = {"_static", "_sources", "_images", "_downloads", "_sphinx_design_static"}
VIEWPORT = {"width": 1280, "height": 900}   # --viewport 390x844 for a phone
LOCAL = ("file:", "data:", "blob:", "about:")
FIGURE_IN_VIEW = 150       # px of the first figure that must lie within the first screen (or all of a smaller one)

FIRST_FIGURE = """() => {
    const f = document.querySelector('article figure');
    if (!f) return null;
    const r = f.getBoundingClientRect();
    return {top: r.top + window.scrollY, height: r.height}; }"""

# Moves the slider figure's range to its last frame; returns what changed (null when the page has none).
SLIDER = """() => {
    const root = document.querySelector('.grokbook-embedding');
    if (!root) return null;
    const dots = root.querySelectorAll('svg.ges-pcs circle[fill^="hsl"]');
    const range = root.querySelector('input.ges-range');
    const before = {frame: root.dataset.frame, x: dots.length ? dots[0].getAttribute('cx') : null,
                    label: root.querySelector('.ges-label').textContent};
    range.value = range.max;
    range.dispatchEvent(new Event('input'));
    return {dots: dots.length, max: range.max, before,
            after: {frame: root.dataset.frame, x: dots.length ? dots[0].getAttribute('cx') : null,
                    label: root.querySelector('.ges-label').textContent}}; }"""


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


def slider_problems(got: dict) -> list[str]:
    """What is wrong with the slider figure, from SLIDER's report."""
    if got["dots"] < 3 or int(got["max"]) < 1:
        return [f"slider figure: {got['dots']} points, {int(got['max']) + 1} frame(s)"]
    if got["after"]["frame"] != got["max"] or got["after"]["x"] == got["before"]["x"] \
            or got["after"]["label"] == got["before"]["label"]:
        return [f"slider figure: moving the slider to frame {got['max']} did not move it ({got})"]
    return []


def zip_problems(page: Path, hrefs: list[str], html: Path) -> list[str]:
    """The zips a page links to must open and hold every chapter's executed notebook."""
    bad = []
    for href in hrefs:
        url = urlparse(href)
        if url.scheme != "file" or not url.path.endswith(".zip") or not Path(unquote(url.path)).exists():
            continue
        chapters = {p.stem for p in pages(html) if is_chapter(html, p)}
        try:
            with zipfile.ZipFile(Path(unquote(url.path))) as z:
                held = {Path(n).stem for n in z.namelist() if n.endswith(".ipynb")}
        except zipfile.BadZipFile:
            bad.append(f"not a zip: {href}")
            continue
        if chapters - held:
            bad.append(f"the notebooks zip lacks {', '.join(sorted(chapters - held))}")
    return bad


def check(html: Path, chromium: str, viewport: dict = VIEWPORT, figure: str = "fail") -> tuple[list[str], list[str]]:
    """(problems, notes): what fails the check, and what is only reported (the first figure with --figure report)."""
    from playwright.sync_api import sync_playwright

    problems, notes, zips = [], [], 0
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
            found += zip_problems(path, hrefs, html)
            zips += sum(urlparse(h).path.endswith(".zip") for h in hrefs)
            slider = page.evaluate(SLIDER)
            if slider is not None:
                page.wait_for_timeout(100)
                found += slider_problems(slider)
            rel = path.relative_to(html).as_posix()
            if is_chapter(html, path):
                fig = page.evaluate(FIRST_FIGURE)
                if fig is None:
                    found.append("chapter without a figure")
                elif fig["top"] + min(FIGURE_IN_VIEW, fig["height"]) > viewport["height"]:
                    text = (f"first figure starts at {fig['top']:.0f} px: less than {FIGURE_IN_VIEW} px of it on the "
                            f"first screen ({viewport['height']} px)")
                    if figure == "fail":
                        found.append(text)
                    else:
                        notes.append(f"{rel}: {text}")
                top = page.evaluate("""() => {
                    const t = [...document.querySelectorAll('.admonition > .admonition-title')]
                        .find(e => e.textContent.trim().startsWith('Verdict'));
                    return t ? t.getBoundingClientRect().top + window.scrollY : null; }""")
                if top is None:
                    found.append("chapter without a result box")
                elif top > viewport["height"]:
                    found.append(f"result box starts at {top:.0f} px, below the first screen ({viewport['height']} px)")
            problems += [f"{rel}: {f}" for f in dict.fromkeys(found)]
        browser.close()
    if not zips:
        problems.append("no page links to the zip of the executed notebooks")
    return problems, notes


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--html", type=Path, default=ROOT / "_build" / "html")
    ap.add_argument("--chromium", help="the Chromium executable (default: $CHROMIUM, else chromium on PATH)")
    ap.add_argument("--viewport", default=f"{VIEWPORT['width']}x{VIEWPORT['height']}", help="WIDTHxHEIGHT in CSS px")
    ap.add_argument("--figure", choices=["fail", "report"], default="fail",
                    help="a chapter's first figure below the first screen: fail (default) or only report it")
    args = ap.parse_args(argv)
    w, h = (int(v) for v in args.viewport.lower().split("x"))
    html = args.html.resolve()
    if not (html / "index.html").exists():
        raise SystemExit(f"check_book: no built book at {html} (run scripts/build_book.py first)")
    n = len(pages(html))
    problems, notes = check(html, find_chromium(args.chromium), {"width": w, "height": h}, args.figure)
    for p in problems:
        print(p)
    for note in notes:
        print(f"note: {note}")
    print(f"check_book: {n} pages, {len(problems)} problem(s)"
          + (f", {len(notes)} chapter(s) whose first figure starts below the first screen" if notes else ""))
    sys.exit(1 if problems else 0)


if __name__ == "__main__":
    main()
