"""Small fixes to the HTML the book's toolchain produces.

* sphinx-thebe 0.3 registers its inline configuration script once per reading
  pass, so a rebuild can put ``const THEBE_JS_URL = ...`` twice into a page, and the
  browser then stops with "Identifier 'THEBE_JS_URL' has already been declared".
  We drop repeated script entries before each page is written.
"""

from __future__ import annotations


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


def setup(app):
    app.connect("html-page-context", _dedupe_scripts, priority=900)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
