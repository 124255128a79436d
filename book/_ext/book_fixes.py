"""Small fixes to the HTML the book's toolchain produces.

* sphinx-thebe 0.3 registers its inline configuration script once per reading
  pass, so a rebuild can put ``const THEBE_JS_URL = ...`` twice into a page, and the
  browser then stops with "Identifier 'THEBE_JS_URL' has already been declared".
  We drop repeated script entries before each page is written.
* The notebooks carry machinery for the tools, not for the reader: the exporter's
  directives (``#| export``, ``#| default_exp NAME``) and nbgrader's solution
  delimiters (``### BEGIN SOLUTION`` / ``### END SOLUTION``). They stay in the
  notebooks (Colab, nbgrader and the student edition need them) and are taken out of
  the code shown in the page; a code cell left empty (``#| default_exp``) is dropped.
* A figure cell's MyST-NB metadata (``mystnb.figure``: caption and name) wraps each of the
  cell's image outputs in a numbered figure. A cell that draws one figure per layer in a
  loop has several, and MyST-NB would give them all the same name (a duplicate target,
  so a warning that fails the strict build). The second and later figures of that one
  cell are named ``NAME-2``, ``NAME-3``, ...; a name repeated in another cell is still
  reported.
* Figures, equations and exercises are numbered per chapter ("Fig. 5.2", "(5.1)",
  "Exercise 5.3"), not through the whole book. Sphinx numbers them per section only
  under a ``numbered`` toctree, which would also prefix every heading with a number; the
  chapters' headings carry their numbers already ("## 5.1 ..."). So while Sphinx assigns
  the figure numbers, each chapter page ``notebooks/NN_*`` is given the section number
  ``(NN,)``, and the real (empty) section numbers are put back before any page is written.
"""

from __future__ import annotations

import re
from contextlib import contextmanager

from docutils import nodes

CHAPTER_PAGE = re.compile(r"^notebooks/(\d+)_[^/]+$")

MACHINERY = re.compile(r"^[ \t]*(#\|.*|### (BEGIN|END) SOLUTION[ \t]*|# NBVAL_\w+.*)$")


def strip_machinery(code: str) -> str:
    """The code of a cell as the reader should see it."""
    kept = [line for line in code.split("\n") if not MACHINERY.match(line)]
    return "\n".join(kept).strip("\n")


def _is_cell(node, element: str) -> bool:
    return isinstance(node, nodes.container) and node.get("nb_element") == element


def _hide_machinery(app, doctree):
    for source in list(doctree.findall(lambda n: _is_cell(n, "cell_code_source"))):
        for block in list(source.findall(nodes.literal_block)):
            code = block.astext()
            clean = strip_machinery(code)
            if clean != code:
                block.children = [nodes.Text(clean)]
                block.rawsource = clean
        cell = source.parent
        if not source.astext().strip():
            has_output = any(_is_cell(child, "cell_code_output") for child in cell.children)
            if has_output:
                source.parent.remove(source)
            else:
                cell.parent.remove(cell)


def _dedupe_scripts(app, pagename, templatename, context, doctree):
    scripts = context.get("script_files")
    if not scripts:
        return
    seen, unique = set(), []
    for script in scripts:
        attributes = dict(getattr(script, "attributes", None) or {})
        attributes.pop("priority", None)
        key = (getattr(script, "filename", None) or "", repr(sorted(attributes.items())))
        if key not in seen:
            seen.add(key)
            unique.append(script)
    context["script_files"] = unique


def _name_each_figure_of_a_cell() -> None:
    import myst_nb.sphinx_ as nb_sphinx

    original = nb_sphinx.create_figure_context
    if getattr(original, "minillm_names_each_figure", False):
        return

    @contextmanager
    def figure_context(renderer, figure_options, line):
        if isinstance(figure_options, dict) and figure_options.get("name"):
            document = renderer.document
            name = nodes.fully_normalize_name(str(figure_options["name"]))
            earlier = document.ids.get(document.nameids.get(name) or "")
            if isinstance(earlier, nodes.figure) and earlier.line == line:  # same cell
                k = 2
                while f"{name}-{k}" in document.nameids:
                    k += 1
                figure_options = {**figure_options, "name": f"{name}-{k}"}
        with original(renderer, figure_options, line):
            yield

    figure_context.minillm_names_each_figure = True
    nb_sphinx.create_figure_context = figure_context


def chapter_number(docname: str) -> int | None:
    """The chapter a page is (``notebooks/05_layernorm`` -> 5), or None for other pages."""
    match = CHAPTER_PAGE.match(docname)
    return int(match[1]) if match else None


def _number_per_chapter() -> None:
    from sphinx.environment.collectors.toctree import TocTreeCollector

    original = TocTreeCollector.assign_figure_numbers
    if getattr(original, "minillm_per_chapter", False):
        return

    def assign_figure_numbers(self, env):
        real = env.toc_secnumbers
        chapters = {doc: chapter_number(doc) for doc in env.found_docs}
        given = {doc: {"": (n,)} for doc, n in chapters.items() if n is not None}
        env.toc_secnumbers = {**given, **{doc: s for doc, s in real.items() if s}}
        try:
            return original(self, env)
        finally:
            env.toc_secnumbers = real

    assign_figure_numbers.minillm_per_chapter = True
    TocTreeCollector.assign_figure_numbers = assign_figure_numbers


def setup(app):
    _name_each_figure_of_a_cell()
    _number_per_chapter()
    app.connect("html-page-context", _dedupe_scripts, priority=900)
    app.connect("doctree-read", _hide_machinery)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
