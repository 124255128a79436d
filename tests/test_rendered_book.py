"""The built book, looked at in a real headless browser (Chromium), with the network cut off.

Run after the book build (`python3 tasks.py html`, or as part of `python3 tasks.py test`).
Fails when an equation is left as raw TeX or MathJax reports an error, an image is missing or
broken, a figure has no number ("Fig. N"), no caption or no alt text, an output shows a traceback, or a chapter lacks its Colab button or hidden solutions,
shows a live widget (an empty box in a static page), or when the static attention explorers of
chapters 3, 6 and 7 (``minillm.viz.attention_html``) do not react to the reader.
At a 1280 px window it also fails when a code cell scrolls sideways, the glossary table overflows
the text column, or a figure is shrunk so far that its labels are illegible.
"""

from __future__ import annotations

import functools
import http.server
import os
import re
import threading
from pathlib import Path

import pytest

pytestmark = pytest.mark.rendered_book

ROOT = Path(__file__).resolve().parent.parent
HTML = ROOT / "_build" / "html"
SKIP_PAGES = {"genindex.html", "search.html", "index.html"}  # index.html only redirects to the intro
PAGES = sorted(
    p.relative_to(HTML).as_posix()
    for p in HTML.rglob("*.html")
    if p.name not in SKIP_PAGES and not p.relative_to(HTML).parts[0].startswith("_")
) if HTML.exists() else []

RAW_TEX_JS = """
() => {
  const skip = new Set(['PRE', 'CODE', 'SCRIPT', 'STYLE', 'TEXTAREA', 'MJX-CONTAINER']);
  const found = [];
  const walker = document.createTreeWalker(document.querySelector('main') || document.body, NodeFilter.SHOW_TEXT);
  for (let node = walker.nextNode(); node; node = walker.nextNode()) {
    let el = node.parentElement, skipped = false;
    while (el) { if (skip.has(el.tagName) || el.classList.contains('highlight')) { skipped = true; break; } el = el.parentElement; }
    if (skipped) continue;
    const t = node.textContent;
    if (/\\$\\$|\\\\\\(|\\\\\\[|\\\\begin\\{|\\\\frac|\\\\mathrm|\\\\sum_|\\\\ln /.test(t)) found.push(t.trim().slice(0, 120));
  }
  return found;
}
"""


@pytest.fixture(scope="module")
def server():
    if not (HTML / "index.html").exists():
        pytest.fail("no built book in _build/html: run `python3 tasks.py book` first")
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(HTML))
    http.server.SimpleHTTPRequestHandler.log_message = lambda *a: None
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    from playwright.sync_api import sync_playwright

    executable = os.environ.get("MINILLM_CHROMIUM")
    if not executable:
        pytest.fail("set MINILLM_CHROMIUM to a Chromium binary (tasks.py html does)")
    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=executable,
            headless=True,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                  "--disable-sync", "--no-first-run"],  # Playwright gives each launch a fresh profile
        )
        yield browser
        browser.close()


@pytest.fixture
def page(browser, server):
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.blocked = []  # requests that would have left this machine

    def route(r):
        if r.request.url.startswith(server) or r.request.url.startswith("data:"):
            r.continue_()
        else:
            page.blocked.append(r.request.url)
            r.abort()

    page.route("**/*", route)
    page.errors = []
    page.on("pageerror", lambda e: page.errors.append(str(e)))
    yield page
    context.close()


def _open(page, server, rel):
    page.goto(f"{server}/{rel}", wait_until="load")
    # wait for MathJax (served locally) to finish typesetting, if the page loads it
    page.wait_for_function("() => !window.MathJax || (window.MathJax.startup && window.MathJax.startup.promise)", timeout=20000)
    page.evaluate("() => window.MathJax ? window.MathJax.startup.promise : null")


def test_pages_were_found():
    assert "book/intro.html" in PAGES and any(p.startswith("notebooks/") for p in PAGES)


@pytest.mark.parametrize("rel", PAGES)
def test_page_renders(page, server, rel):
    _open(page, server, rel)
    raw = page.evaluate(RAW_TEX_JS)
    assert raw == [], f"raw TeX left on {rel}: {raw[:3]}"
    assert page.locator("mjx-merror, .MathJax_Error").count() == 0, f"MathJax error on {rel}"
    broken = page.evaluate(
        "() => Array.from(document.images).filter(i => !i.complete || i.naturalWidth === 0).map(i => i.getAttribute('src'))"
    )
    assert broken == [], f"missing or broken images on {rel}: {broken}"
    text = page.inner_text("main")
    assert "Traceback (most recent call last)" not in text, f"a traceback is shown on {rel}"
    assert page.locator(".output.traceback, .output.error, .cell_output .traceback").count() == 0
    assert page.errors == [], f"JavaScript errors on {rel}: {page.errors}"
    assert page.blocked == [], f"{rel} needs the network for: {page.blocked}"


NOTEBOOK_PAGES = [p for p in PAGES if p.startswith("notebooks/")]

# Each image a cell outputs: inside a <figure> with an id (a {numref} target), whose
# <figcaption> starts with the number ("Fig. 5.2" in chapter 5) and has a caption text, and
# with alt text that is words, not the file's path (which Sphinx writes when a cell gives none).
FIGURES_JS = r"""
(chapter) => Array.from(document.querySelectorAll('main .cell_output img')).flatMap(img => {
  const src = img.getAttribute('src') || '';
  const alt = (img.getAttribute('alt') || '').trim();
  const figure = img.closest('figure');
  const caption = figure && figure.querySelector(':scope > figcaption');
  const number = caption && caption.querySelector('.caption-number');
  const text = caption && caption.querySelector('.caption-text');
  const problems = [];
  if (!figure || !figure.id) problems.push('not in a figure with an id');
  // numbered per chapter: "Fig. 5.2" on chapter 5's page (book/_ext/book_fixes.py)
  if (!number || !new RegExp(`^Fig\\.\\s*${chapter}\\.\\d+`).test(number.textContent.trim()))
    problems.push(`no "Fig. ${chapter}.N"`);
  if (!text || text.textContent.trim().split(/\s+/).length < 5) problems.push('no caption');
  if (alt.split(/\s+/).length < 3 || /[\/\\]|\.(png|svg|jpe?g)\b/i.test(alt)
      || alt === src || src.endsWith(alt)) problems.push(`alt text ${JSON.stringify(alt)}`);
  return problems.length ? [`${src.split('/').pop()}: ${problems.join(', ')}`] : [];
})
"""


@pytest.mark.parametrize("rel", NOTEBOOK_PAGES)
def test_chapter_page(page, server, rel):
    _open(page, server, rel)
    assert page.locator("mjx-container").count() > 0, "the chapter's equations were not typeset"
    # figures drawn by the chapter's cells (the Colab button's logo is an image too, but not a figure)
    assert page.locator("main .cell_output img").count() > 0, "the chapter shows no figure"
    # every figure is numbered and captioned, and its image is described for screen readers
    chapter = int(rel.split("/")[-1][:2])
    unlabelled = page.evaluate(FIGURES_JS, chapter)
    assert unlabelled == [], (
        f"figures on {rel} without a number, a caption or alt text: {unlabelled[:3]} "
        "(give the cell mystnb figure and image metadata: tests/test_figures.py)"
    )
    colab = f"https://colab.research.google.com/github/minillm-book/minillm/blob/main/{rel[:-5]}.ipynb"
    assert page.locator(f'a[href="{colab}"]').count() == 1, "no Colab launch button for this notebook"
    # exercises are numbered per chapter too: "Exercise 5.1", ...
    titles = page.evaluate(
        "() => Array.from(document.querySelectorAll('div.exercise > p.admonition-title'), p => p.textContent)")
    numbers = [m[1] for t in titles if (m := re.search(r"Exercise (\d+\.\d+)", t))]
    assert numbers and numbers == [f"{chapter}.{k}" for k in range(1, len(numbers) + 1)], titles[:3]
    solutions = page.locator("div.solution")
    assert solutions.count() >= 4, "fewer than four exercise solutions"
    for i in range(solutions.count()):
        sol = solutions.nth(i)
        assert "dropdown" in sol.get_attribute("class")
        # a solution is code; an open question's model answer is prose
        is_model_answer = "Open question" in sol.locator("p.admonition-title").first.text_content()
        body = sol.locator("section p" if is_model_answer else "pre")
        assert body.count() >= 1, "the solution code or model answer is missing"
        assert not body.first.is_visible(), "a solution is visible without clicking"
    # the tools' machinery stays in the notebooks, out of the page (solutions included)
    code = page.evaluate("() => Array.from(document.querySelectorAll('main pre'), p => p.textContent)")
    machinery = [line.strip() for block in code for line in block.splitlines()
                 if re.match(r"\s*(#\||### (BEGIN|END) SOLUTION|# NBVAL_)", line)]
    assert machinery == [], f"build machinery shown on {rel}: {machinery[:5]}"
    empty_cells = page.evaluate(
        "() => Array.from(document.querySelectorAll('main div.cell_input'))"
        ".filter(c => !c.textContent.trim()).length")
    assert empty_cells == 0, f"{rel} shows an empty code cell"
    # a live ipywidget is an empty box in a static page, and its state bloats the page:
    # its display cell must be tagged remove-output (its static figure stands beside it)
    widgets = page.locator('script[type^="application/vnd.jupyter.widget"], .jupyter-widgets')
    assert widgets.count() == 0, f"{rel} embeds a live widget, which shows as an empty box"
    sol = solutions.first
    sol.locator(".toggle-button, button, summary").first.click()
    page.wait_for_timeout(400)
    assert sol.locator("pre").first.is_visible(), "clicking does not reveal the solution"


# The static attention explorers: one per chapter page, written by minillm.viz.attention_html
# (HTML, JSON weights and inline JavaScript in a cell's output; no kernel, no network).
EXPLORER_PAGES = ["notebooks/03_attention.html", "notebooks/06_bert.html", "notebooks/07_gpt.html"]

SHADING_JS = """root => Array.from(root.querySelectorAll('.minillm-attn-tok'),
                                 t => t.style.backgroundColor + ' | ' + t.style.outline)"""


@pytest.mark.parametrize("rel", EXPLORER_PAGES)
def test_attention_explorer(page, server, rel):
    _open(page, server, rel)
    explorers = page.locator("main .cell_output .minillm-attn")
    assert explorers.count() >= 1, f"no attention explorer on {rel}"
    root = explorers.first
    # its inline script ran in the built page: it marks itself ready and hides the notice
    assert root.get_attribute("data-ready") == "1", "the explorer's script did not run"
    assert not root.locator(".minillm-attn-nojs").is_visible()
    size = root.evaluate("r => new Blob([r.outerHTML]).size")
    assert size < 100_000, f"the explorer on {rel} takes {size:,} bytes"

    tokens = root.locator(".minillm-attn-tok")
    n = tokens.count()
    assert n >= 5

    def shading():
        return root.evaluate(SHADING_JS)

    def canvas():
        return root.locator("canvas").evaluate("c => c.toDataURL()")

    def outlined():
        return [i for i, s in enumerate(shading()) if "solid" in s]

    # the last token is the query at first; hovering another makes it the query
    start = shading()
    assert outlined() == [n - 1] and any("rgba" in s or "rgb(" in s for s in start)
    query = n // 2
    tokens.nth(query).hover()
    hovered = shading()
    assert outlined() == [query] and hovered != start
    assert f"(position {query})" in root.locator(".minillm-attn-info").inner_text()

    # another head: the same query, a different picture (token shading and heatmap)
    heads = root.locator("select[name=head]")
    assert heads.locator("option").count() >= 2
    before = (shading(), canvas())
    heads.select_option(index=1)
    after = (shading(), canvas())
    assert outlined() == [query]
    assert after[0] != before[0], f"choosing head 1 does not change the shading on {rel}"
    assert after[1] != before[1], f"choosing head 1 does not redraw the heatmap on {rel}"

    # another layer, where the model has more than one
    layers = root.locator("select[name=layer]")
    n_layers = layers.locator("option").count()
    if rel != "notebooks/03_attention.html":  # chapter 3's hand-built module is one layer
        assert n_layers >= 2
        layers.select_option(index=n_layers - 1)
        assert shading() != after[0], f"choosing another layer changes nothing on {rel}"

    # the keyboard: a focused token is the query, and the arrow keys move it
    tokens.nth(1).focus()
    assert outlined() == [1]
    page.keyboard.press("ArrowRight")
    assert outlined() == [2]
    assert page.errors == [], f"JavaScript errors on {rel}: {page.errors}"


# ---------------------------------------------------------------------------------------
# Layout at a 1280 px wide window (book/_static/minillm.css), both sidebars as the theme
# shows them at that width.

# Every code block of a cell input (folded ones unfolded first, since a reader opens them),
# and every output block, that is wider than its box: it would scroll sideways.
OVERFLOW_JS = r"""
sel => {
  document.querySelectorAll('main details').forEach(d => { d.open = true; });
  return Array.from(document.querySelectorAll(sel))
    .filter(p => p.scrollWidth > p.clientWidth + 1)
    .map(p => `${p.scrollWidth} > ${p.clientWidth} px: ${p.textContent.trim().split('\n')[0].slice(0, 70)}`);
}
"""


def test_code_fits_the_column(page, server):
    """Code lines are at most 88 characters (STYLE.md): at 1280 px no code cell scrolls sideways,
    and printed output wraps (book/_static/minillm.css) rather than scrolls.

    Visits every chapter page; a failure lists each offending block by page and first line.
    """
    offenders, outputs = [], []
    for rel in NOTEBOOK_PAGES:
        _open(page, server, rel)
        offenders += [f"{rel}: {o}" for o in page.evaluate(OVERFLOW_JS, "main .cell_input pre")]
        outputs += [f"{rel}: {o}" for o in page.evaluate(OVERFLOW_JS, "main .cell_output pre")]
    assert NOTEBOOK_PAGES and offenders == [], "code that scrolls sideways at 1280 px:\n" + "\n".join(offenders)
    assert outputs == [], "printed output that scrolls sideways at 1280 px:\n" + "\n".join(outputs)
    # and not by making it tiny: the code font stays readable
    size = page.evaluate("() => parseFloat(getComputedStyle(document.querySelector('main .cell_input pre')).fontSize)")
    assert size >= 12, f"the code font is {size} px"


def test_glossary_fits_the_column(page, server):
    """The glossary's four columns (the last one Chinese) share the text column: nothing is cut off."""
    _open(page, server, "book/glossary.html")
    table = page.locator("main table").first
    widths = table.evaluate(
        "t => [t.getBoundingClientRect().right, t.parentElement.getBoundingClientRect().right,"
        " t.parentElement.scrollWidth, t.parentElement.clientWidth,"
        " document.querySelector('article.bd-article').getBoundingClientRect().right]")
    right, box_right, scroll, client, article_right = widths
    assert scroll <= client + 1 and right <= box_right + 1, f"the glossary table overflows its box: {widths}"
    assert box_right <= article_right + 1, f"the glossary's box is wider than the article: {widths}"
    cut = table.evaluate(
        "t => Array.from(t.querySelectorAll('th, td')).filter(c => c.scrollWidth > c.clientWidth + 1)"
        ".map(c => c.textContent.trim().slice(0, 40))")
    assert cut == [], f"glossary cells whose text is cut off: {cut[:5]}"


# Figures are PNGs drawn by matplotlib at its default 100 dpi, where a label at the default
# 10 pt is 10 / 72 * 100 = 13.9 px tall (its em size) at 100 %. The page scales a figure wider
# than the column down to fit, and its labels with it.
LABEL_PX_AT_100 = 10 / 72 * 100
MIN_LABEL_PX = 8.0

FIGURE_SCALE_JS = r"""
() => Array.from(document.querySelectorAll('main .cell_output figure img')).map(img => [
  (img.closest('figure') || {}).id || img.getAttribute('src'),
  img.naturalWidth, img.getBoundingClientRect().width])
"""


def test_figures_are_legible_at_page_width(page, server):
    """No figure is shrunk so far that its labels become unreadable.

    Effective label height = (displayed width / natural width) * 13.9 px, the height of a
    default 10 pt matplotlib label at the default 100 dpi. The threshold, 8 px, is half the
    book's 16 px body text: below it tick labels and legends are a blur of pixels (a 10 pt
    label reaches it when a figure is shown at 58 % of its size, e.g. a 1,260 px wide
    figure in the 728 px column). A figure that fails is too wide for the page: fewer panels
    per row, or a smaller figsize with the same fonts. (Figures that set smaller fonts than
    the default have less margin than this test assumes; minillm.viz keeps them >= 9 pt.)
    Visits every chapter page at 1280 px.
    """
    small = []
    for rel in NOTEBOOK_PAGES:
        _open(page, server, rel)
        for name, natural, shown in page.evaluate(FIGURE_SCALE_JS):
            assert natural > 0, f"{rel}: figure {name} did not load"
            label = LABEL_PX_AT_100 * shown / natural
            if label < MIN_LABEL_PX:
                small.append(f"{rel}: {name} ({natural} px wide, shown at {shown:.0f} px: "
                             f"10 pt labels {label:.1f} px)")
    assert NOTEBOOK_PAGES and small == [], "figures too small to read at page width:\n" + "\n".join(small)
