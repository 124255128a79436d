"""Attention maps: a heatmap of one head, a grid of all the heads of a layer, an
interactive explorer (text, layer, head) built from ipywidgets, and a static explorer that
works in the rendered book, with no kernel and no network.

Support code, introduced in chapter 3 and reused by the BERT and GPT chapters. Everything
here works from plain arrays of attention weights, whatever model produced them:

* :func:`plot_attention` draws one (T_q, T_k) map with the tokens on both axes;
* :func:`plot_heads` draws the (n_heads, T_q, T_k) maps of one layer side by side;
* :class:`AttentionExplorer` takes a function ``text -> (tokens, [per-layer (n_heads, T, T)
  weights])`` and lets the reader type a text and pick a layer and a head. It works with
  ipywidgets 7.7 (Google Colab) and 8, and renders each view as a PNG image, so it does not
  depend on the notebook's matplotlib backend.
* :func:`attention_html` embeds precomputed weights of every layer and head in a small
  self-contained HTML page fragment with its own plain JavaScript: pick a layer and a head,
  hover, click or focus a token, and the tokens it attends to are shaded by weight. It runs
  in the static HTML book, in Jupyter and in Colab, offline.

Rows are queries (the position that attends), columns are keys (the positions attended to),
so each row of a map sums to 1.
"""

from __future__ import annotations

import html
import io
import json
import math
import uuid
from typing import Callable, Sequence

import numpy as np

__all__ = [
    "plot_attention",
    "plot_heads",
    "AttentionExplorer",
    "token_label",
    "attention_html",
    "AttentionHTML",
]

_VISIBLE = {" ": "␣", "\n": "\\n", "\t": "\\t", "\r": "\\r", "": "∅"}


def token_label(token: str) -> str:
    """A token as an axis label: whitespace made visible (``" "`` -> ``"␣"``, newline -> ``"\\n"``)."""
    if token in _VISIBLE:
        return _VISIBLE[token]
    return token.replace("\n", "\\n").replace("\t", "\\t")


def _as_array(weights, ndim: int, name: str) -> np.ndarray:
    """Attention weights (a torch tensor or array-like) as a float numpy array with ``ndim`` dims."""
    if hasattr(
        weights, "detach"
    ):  # a torch tensor, possibly on a GPU or requiring grad
        weights = weights.detach().float().cpu().numpy()
    elif isinstance(weights, (list, tuple)) and any(
        hasattr(w, "detach") for w in weights
    ):
        weights = [
            _as_array(w, ndim - 1, f"{name}[{i}]") for i, w in enumerate(weights)
        ]
        if len({w.shape for w in weights}) > 1:
            shapes = [w.shape for w in weights]
            raise ValueError(f"the entries of {name} must have one shape, got {shapes}")
    try:
        array = np.asarray(weights, dtype=float)
    except (TypeError, ValueError):
        raise TypeError(
            f"{name} must be a tensor or array of numbers, got {type(weights).__name__}"
        ) from None
    if array.ndim != ndim:
        expected = {
            1: "(T_k,)",
            2: "(T_q, T_k)",
            3: "(n_heads, T_q, T_k)",
            4: "(n_layers, n_heads, T, T)",
        }[ndim]
        extra = ""
        if array.ndim == ndim + 1 and array.shape[0] == 1:
            extra = " (drop the batch dimension, e.g. weights[0])"
        elif ndim == 4 and array.ndim == 5 and array.shape[1] == 1:
            extra = " (drop the batch dimension, e.g. maps[:, 0])"
        elif ndim == 4 and array.ndim == 3:
            extra = " (for a single layer, add a layer axis: weights[None])"
        raise ValueError(
            f"{name} must have shape {expected}, got shape {array.shape}{extra}"
        )
    if not np.isfinite(array).all():
        raise ValueError(f"{name} contains NaN or infinite values")
    return array


def _check_tokens(tokens: Sequence[str], n: int, name: str, axis: str) -> list[str]:
    if isinstance(tokens, str):
        raise TypeError(
            f"{name} must be a sequence of token strings, not one string: use list({name}) for characters"
        )
    tokens = [str(t) for t in tokens]
    if len(tokens) != n:
        raise ValueError(
            f"{name} has {len(tokens)} tokens but the weights have {n} {axis}"
        )
    return tokens


def _new_axes(figsize: tuple[float, float]):
    import matplotlib.pyplot as plt

    return plt.subplots(figsize=figsize)


def _set_token_ticks(
    ax, queries: list[str], keys: list[str], fontsize: float, max_labels: int = 64
) -> None:
    def ticks(n: int) -> range:
        return range(0, n, max(1, math.ceil(n / max_labels)))

    xs, ys = ticks(len(keys)), ticks(len(queries))
    ax.set_xticks(list(xs))
    ax.set_xticklabels(
        [token_label(keys[i]) for i in xs], rotation=90, fontsize=fontsize
    )
    ax.set_yticks(list(ys))
    ax.set_yticklabels([token_label(queries[i]) for i in ys], fontsize=fontsize)


def plot_attention(
    weights,
    tokens: Sequence[str],
    key_tokens: Sequence[str] | None = None,
    *,
    ax=None,
    title: str | None = None,
    vmax: float | None = None,
    colorbar: bool = True,
    cmap: str = "viridis",
    fontsize: float = 9,
):
    """Draw one head's attention map as a labelled heatmap and return the matplotlib ``Axes``.

    Args:
        weights: (T_q, T_k) attention weights (torch tensor or array); row i is query i.
        tokens: the T_q query tokens (rows); also the keys (columns) unless ``key_tokens`` is given.
        key_tokens: the T_k key tokens, for cross-attention or a KV cache.
        ax: the axes to draw on; a new figure is made without one.
        vmax: top of the colour scale (default: the largest weight; 0 is always the bottom).
    """
    w = _as_array(weights, 2, "weights")
    queries = _check_tokens(tokens, w.shape[0], "tokens", "query rows")
    keys = _check_tokens(
        tokens if key_tokens is None else key_tokens,
        w.shape[1],
        "key_tokens" if key_tokens is not None else "tokens",
        "key columns",
    )
    if ax is None:
        size = min(12.0, 2.0 + 0.28 * max(w.shape))
        _, ax = _new_axes((size + (1.0 if colorbar else 0.0), size))
    top = float(w.max()) if vmax is None else float(vmax)
    image = ax.imshow(
        w,
        cmap=cmap,
        vmin=0.0,
        vmax=top if top > 0 else 1.0,
        aspect="auto",
        interpolation="nearest",
    )
    _set_token_ticks(ax, queries, keys, fontsize)
    ax.set_xlabel("key (attended to)")
    ax.set_ylabel("query (attending)")
    if title:
        ax.set_title(title)
    if colorbar:
        ax.figure.colorbar(
            image, ax=ax, fraction=0.046, pad=0.04, label="attention weight"
        )
    return ax


def plot_heads(
    weights,
    tokens: Sequence[str],
    key_tokens: Sequence[str] | None = None,
    *,
    ncols: int = 2,
    title: str | None = None,
    head_names: Sequence[str] | None = None,
    shared_scale: bool = True,
    fig=None,
    fontsize: float = 8,
):
    """Draw the attention maps of all the heads of one layer in a grid; return the ``Figure``.

    Args:
        weights: (n_heads, T_q, T_k) attention weights.
        tokens, key_tokens: as in :func:`plot_attention`.
        ncols: heads per row of the grid. Two by default: the book's text column is about
            7.5 inches wide at matplotlib's 100 dpi, and a row of four maps shrunk into it
            leaves labels too small to read (tests/test_rendered_book.py checks this).
        head_names: a subplot title per head (default ``"head 0"``, ``"head 1"``, ...).
        shared_scale: one colour scale (0 to the largest weight of the layer) and one colour bar for
            all heads, so that heads can be compared; with False each head uses its own scale.
        fig: an empty matplotlib ``Figure`` to draw into (default: a new pyplot figure).
    """
    w = _as_array(weights, 3, "weights")
    n_heads, t_q, t_k = w.shape
    queries = _check_tokens(tokens, t_q, "tokens", "query rows")
    keys = _check_tokens(
        tokens if key_tokens is None else key_tokens,
        t_k,
        "key_tokens" if key_tokens is not None else "tokens",
        "key columns",
    )
    if not isinstance(ncols, int) or ncols < 1:
        raise ValueError(f"ncols must be a positive int, got {ncols!r}")
    names = (
        [f"head {h}" for h in range(n_heads)]
        if head_names is None
        else [str(n) for n in head_names]
    )
    if len(names) != n_heads:
        raise ValueError(f"head_names has {len(names)} names for {n_heads} heads")
    ncols = min(ncols, n_heads)
    nrows = math.ceil(n_heads / ncols)
    # a map's side: room for its token labels, at most 4 inches (two maps and the colour bar
    # then fit in 9.2 inches, shown at about 80 % in the page)
    cell = min(4.0, 1.6 + 0.12 * max(t_q, t_k))
    figsize = (cell * ncols + 1.2, cell * nrows + (0.6 if title else 0.2))
    if fig is None:
        import matplotlib.pyplot as plt

        fig = plt.figure(figsize=figsize)
    else:
        fig.set_size_inches(*figsize)
    _use_constrained_layout(
        fig
    )  # keeps the titles, labels and colour bar from overlapping
    axes = fig.subplots(nrows, ncols, squeeze=False)
    top = float(w.max()) if shared_scale else None
    image = None
    for h in range(nrows * ncols):
        ax = axes[h // ncols][h % ncols]
        if h >= n_heads:
            fig.delaxes(ax)
            continue
        vmax = top if shared_scale else float(w[h].max())
        image = ax.imshow(
            w[h],
            cmap="viridis",
            vmin=0.0,
            vmax=vmax if vmax and vmax > 0 else 1.0,
            aspect="auto",
            interpolation="nearest",
        )
        _set_token_ticks(ax, queries, keys, fontsize, max_labels=32)
        ax.set_title(names[h], fontsize=fontsize + 2)
        if h % ncols == 0:
            ax.set_ylabel("query")
        if h // ncols == nrows - 1 or h + ncols >= n_heads:
            ax.set_xlabel("key")
    if title:
        fig.suptitle(title)
    if shared_scale and image is not None:
        fig.colorbar(image, ax=list(fig.axes), shrink=0.9, label="attention weight")
    return fig


def _use_constrained_layout(fig) -> None:
    if hasattr(fig, "set_layout_engine"):  # matplotlib >= 3.6
        fig.set_layout_engine("constrained")
    else:  # pragma: no cover - older matplotlib
        fig.set_constrained_layout(True)


AttentionFn = Callable[[str], "tuple[Sequence[str], Sequence]"]


class AttentionExplorer:
    """An interactive attention-map viewer: type a text, pick a layer and a head (or all heads).

    Args:
        attention_fn: ``text -> (tokens, weights)`` where tokens are the T token strings and
            weights a sequence with one (n_heads, T, T) tensor or array per layer (for a batch of
            one: drop the batch dimension). It is called once per text; changing the layer or the
            head only redraws.
        text: the initial text.
        head: the initial head, or ``"all"`` for the grid of every head.
        head_names: optional names of the heads, shown in the figures' titles.

    Display it as the last expression of a cell (or with ``display(explorer)``). The controls are
    ``explorer.text``, ``explorer.layer`` and ``explorer.head``; ``explorer.figure`` is the
    matplotlib figure last drawn and ``explorer.image`` the widget that shows it. A text the
    function cannot handle leaves the last view in place and shows the error above it.
    Works with ipywidgets 7.7 (Google Colab) and 8; in a static page (the rendered book) widgets
    are inert, so show a static figure beside it.
    """

    def __init__(
        self,
        attention_fn: AttentionFn,
        text: str,
        *,
        layer: int = 0,
        head: int | str = "all",
        head_names: Sequence[str] | None = None,
        dpi: int = 90,
    ):
        import ipywidgets as widgets

        if not callable(attention_fn):
            raise TypeError(
                f"attention_fn must be callable (text -> (tokens, weights)), got {type(attention_fn).__name__}"
            )
        self.attention_fn = attention_fn
        self.head_names = None if head_names is None else [str(n) for n in head_names]
        self.dpi = dpi
        self.figure = None
        self._updating = False
        self.tokens, self.weights = self._compute(
            text
        )  # raises on a function that returns the wrong things
        n_layers, n_heads = len(self.weights), self.weights[0].shape[0]
        if not (isinstance(layer, int) and 0 <= layer < n_layers):
            raise ValueError(f"layer must be an int in [0, {n_layers}), got {layer!r}")
        if head != "all" and not (isinstance(head, int) and 0 <= head < n_heads):
            raise ValueError(
                f"head must be 'all' or an int in [0, {n_heads}), got {head!r}"
            )

        self.text = widgets.Text(
            value=text,
            description="text",
            continuous_update=False,
            layout=widgets.Layout(width="90%"),
        )
        self.layer = widgets.IntSlider(
            value=layer,
            min=0,
            max=max(n_layers - 1, 0),
            description="layer",
            continuous_update=False,
        )
        self.head = widgets.Dropdown(
            options=self._head_options(n_heads),
            value=-1 if head == "all" else head,
            description="head",
        )
        self.status = widgets.HTML(value="")
        self.image = widgets.Image(format="png")
        self.widget = widgets.VBox(
            [self.text, widgets.HBox([self.layer, self.head]), self.status, self.image]
        )
        self.text.observe(self._on_text, names="value")
        self.layer.observe(self._on_choice, names="value")
        self.head.observe(self._on_choice, names="value")
        self.redraw()

    # --- what the controls do ---------------------------------------------------------

    @staticmethod
    def _head_options(n_heads: int) -> list[tuple[str, int]]:
        return [("all", -1)] + [(str(h), h) for h in range(n_heads)]

    def _compute(self, text: str) -> tuple[list[str], list[np.ndarray]]:
        tokens, per_layer = self.attention_fn(text)
        if isinstance(per_layer, np.ndarray) or hasattr(per_layer, "detach"):
            per_layer = list(per_layer)  # a stacked (n_layers, n_heads, T, T) tensor
        if not isinstance(per_layer, (list, tuple)) or len(per_layer) == 0:
            raise ValueError(
                "attention_fn must return (tokens, weights) with weights a non-empty list of "
                f"per-layer (n_heads, T, T) tensors, got {type(per_layer).__name__}"
            )
        arrays = [
            _as_array(w, 3, f"weights of layer {i}") for i, w in enumerate(per_layer)
        ]
        shapes = {a.shape for a in arrays}
        if len(shapes) != 1:
            raise ValueError(
                f"every layer's weights must have the same shape (n_heads, T, T), got {sorted(shapes)}"
            )
        n_heads, t_q, t_k = arrays[0].shape
        if t_q != t_k:
            raise ValueError(
                f"the explorer shows self-attention: weights must be (n_heads, T, T), got {arrays[0].shape}"
            )
        return _check_tokens(tokens, t_q, "tokens", "positions"), arrays

    def _on_text(self, change) -> None:
        try:
            tokens, weights = self._compute(change["new"])
        except (
            Exception
        ) as err:  # keep the last good view; tell the reader what went wrong
            self.status.value = f"<span style='color:#b00'>could not compute attention for this text: {_escape(err)}</span>"
            return
        self.tokens, self.weights = tokens, weights
        n_layers, n_heads = len(weights), weights[0].shape[0]
        self._updating = True  # update the choices without redrawing once per change
        try:
            self.layer.max = max(n_layers - 1, 0)
            self.layer.value = min(self.layer.value, n_layers - 1)
            if len(self.head.options) != n_heads + 1:
                current = self.head.value
                self.head.options = self._head_options(n_heads)
                self.head.value = current if current < n_heads else -1
        finally:
            self._updating = False
        self.redraw()

    def _on_choice(self, change) -> None:
        if not self._updating:
            self.redraw()

    def redraw(self) -> None:
        """Draw the current layer and head (or all heads) into ``figure`` and show it as a PNG."""
        from matplotlib.figure import Figure

        layer, head = self.layer.value, self.head.value
        weights = self.weights[layer]
        names = (
            self.head_names
            if self.head_names and len(self.head_names) == weights.shape[0]
            else None
        )
        fig = Figure()
        if head == -1:
            plot_heads(
                weights,
                self.tokens,
                fig=fig,
                head_names=names,
                title=f"layer {layer}: all {weights.shape[0]} heads",
            )
        else:
            size = min(9.0, 2.5 + 0.25 * len(self.tokens))
            fig.set_size_inches(size + 1.0, size)
            title = f"layer {layer}, head {head}" + (
                f" ({names[head]})" if names else ""
            )
            plot_attention(
                weights[head], self.tokens, ax=fig.add_subplot(1, 1, 1), title=title
            )
            fig.tight_layout()
        buffer = io.BytesIO()
        fig.savefig(buffer, format="png", dpi=self.dpi)
        self.figure = fig
        self.image.value = buffer.getvalue()
        self.status.value = f"{len(self.tokens)} tokens, {len(self.weights)} layer(s), {weights.shape[0]} heads"

    # --- display --------------------------------------------------------------------------

    def _ipython_display_(
        self,
    ) -> None:  # IPython calls this on ipywidgets 7 and 8 alike
        from IPython.display import display

        display(self.widget)

    def __repr__(self) -> str:
        return (
            f"AttentionExplorer(text={self.text.value!r}, layer={self.layer.value}, "
            f"head={'all' if self.head.value == -1 else self.head.value})"
        )


def _escape(err: Exception) -> str:
    return html.escape(f"{type(err).__name__}: {err}")


# --- the static explorer: HTML and plain JavaScript, for the rendered book ----------------


class AttentionHTML:
    """A self-contained HTML fragment that Jupyter, Colab and the book display as HTML.

    ``html`` is the markup (with its data and script inline); ``nbytes`` its size in bytes.
    """

    def __init__(self, html_text: str, summary: str):
        self.html = html_text
        self._summary = summary

    @property
    def nbytes(self) -> int:
        return len(self.html.encode("utf-8"))

    def _repr_html_(self) -> str:
        return self.html

    def __repr__(self) -> str:
        return f"AttentionHTML({self._summary}, {self.nbytes:,} bytes)"


def attention_html(
    tokens: Sequence[str],
    weights,
    *,
    layer_names: Sequence[str] | None = None,
    head_names: Sequence[str] | None = None,
    title: str = "Attention explorer",
    layer: int = 0,
    head: int = 0,
    query: int | None = None,
    decimals: int = 3,
    max_tokens: int = 64,
) -> AttentionHTML:
    """An attention explorer that needs no kernel: pick a layer and a head, then hover,
    click or focus (Tab, arrow keys) a token to shade the tokens it attends to.

    Args:
        tokens: the T token strings (whitespace is drawn visibly, as in the figures).
        weights: (n_layers, n_heads, T, T) attention weights (tensor or array; a list of
            per-layer (n_heads, T, T) tensors works too); row i is query i.
        layer_names, head_names: optional labels for the selectors.
        layer, head, query: what is shown first (query default: the last token).
        decimals: the weights are rounded to this many decimals and embedded as integers
            (weight times 10**decimals), which keeps the page small.
        max_tokens: a longer text is refused: the data grow as T**2.

    Returns an :class:`AttentionHTML`: the last expression of a cell displays it. The
    shading of a token is its weight divided by the largest weight of the query's row;
    a heatmap of the whole head, on a canvas, marks the query's row. Everything (data and
    script) is inline, with ids unique to this explorer, so several can share one page.
    """
    from minillm.support import check_int

    w = _as_array(weights, 4, "weights")
    n_layers, n_heads, t_q, t_k = w.shape
    if t_q != t_k:
        raise ValueError(
            f"the explorer shows self-attention: weights must be (n_layers, n_heads, T, T),"
            f" got {w.shape}"
        )
    tokens = _check_tokens(tokens, t_q, "tokens", "positions")
    check_int("max_tokens", max_tokens)
    if t_q > max_tokens:
        raise ValueError(
            f"{t_q} tokens is more than max_tokens={max_tokens}: the embedded weights grow "
            "as T**2, so explore a shorter text (or raise max_tokens)"
        )
    if w.min() < -1e-6 or w.max() > 1 + 1e-6:
        raise ValueError(
            f"attention weights must lie in [0, 1], got values from {w.min():.3g} to "
            f"{w.max():.3g} (pass the softmax weights, not the scores)"
        )
    check_int("decimals", decimals, minimum=0)
    check_int("layer", layer, minimum=0)
    check_int("head", head, minimum=0)
    if layer >= n_layers or head >= n_heads:
        raise ValueError(
            f"layer and head must be < ({n_layers}, {n_heads}), got ({layer}, {head})"
        )
    query = t_q - 1 if query is None else query
    check_int("query", query, minimum=0)
    if query >= t_q:
        raise ValueError(f"query must be a position < {t_q}, got {query}")
    layers = _names(layer_names, n_layers, "layer_names", "layer")
    heads = _names(head_names, n_heads, "head_names", "head")
    scale = 10**decimals
    data = {
        "tokens": [token_label(t) for t in tokens],
        "scale": scale,
        "query": query,
        "weights": np.rint(w * scale).astype(int).tolist(),  # [layer][head][query][key]
    }
    uid = f"minillm-attn-{uuid.uuid4().hex[:12]}"
    html_text = _explorer_markup(uid, title, tokens, layers, heads, layer, head, data)
    summary = f"T={t_q}, {n_layers} layer(s) x {n_heads} head(s)"
    return AttentionHTML(html_text, summary)


def _names(names, n: int, name: str, what: str) -> list[str]:
    if names is None:
        return [f"{what} {i}" for i in range(n)]
    if isinstance(names, str):
        raise TypeError(f"{name} must be a sequence of strings, not one string")
    names = [str(x) for x in names]
    if len(names) != n:
        raise ValueError(f"{name} has {len(names)} names for {n} {what}s")
    return names


def _json_for_script(data) -> str:
    """JSON that cannot end its <script> element early (a token "</script>" stays text)."""
    text = json.dumps(data, separators=(",", ":"), ensure_ascii=False)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def _options(names: list[str], selected: int) -> str:
    return "".join(
        f'<option value="{i}"{" selected" if i == selected else ""}>'
        f"{html.escape(n)}</option>"
        for i, n in enumerate(names)
    )


def _explorer_markup(uid, title, tokens, layers, heads, layer, head, data) -> str:
    spans = []
    for i, t in enumerate(tokens):
        spans.append(
            f'<span class="minillm-attn-tok" data-i="{i}" tabindex="0" role="button" '
            f'style="{_TOKEN_STYLE}">{html.escape(token_label(t))}</span>'
        )
        if t.endswith("\n"):  # keep the text's lines (the newline itself shows as \\n)
            spans.append("<br>")
    size = max(3, min(12, 264 // len(tokens)))  # pixels per cell of the heatmap
    select = 'style="font:inherit;margin:0 0.8em 0 0.3em"'
    return (
        f'<div id="{uid}" class="minillm-attn tex2jax_ignore mathjax_ignore" '
        'style="font:14px/1.5 system-ui,sans-serif;color:#111;background:#fff;'
        'border:1px solid #ccc;border-radius:6px;padding:8px 10px;margin:4px 0">'
        f'<div style="font-weight:600">{html.escape(title)}</div>'
        f'<label>layer<select name="layer" {select}>{_options(layers, layer)}</select>'
        f'</label><label>head<select name="head" {select}>{_options(heads, head)}'
        "</select></label>"
        '<div class="minillm-attn-nojs" style="color:#b00">This explorer needs '
        "JavaScript: run the cell, or trust the notebook.</div>"
        '<div style="display:flex;flex-wrap:wrap;gap:12px;align-items:flex-start;'
        'margin-top:6px"><div class="minillm-attn-text" style="flex:1 1 320px;'
        f'font-family:monospace;line-height:2">{"".join(spans)}</div>'
        f'<figure style="margin:0"><canvas width="{size * len(tokens)}" '
        f'height="{size * len(tokens)}" style="border:1px solid #ccc;cursor:crosshair" '
        'role="img" aria-label="attention map of the chosen head"></canvas>'
        '<figcaption style="font-size:12px;color:#555">the head\'s map: rows are '
        "queries, columns keys</figcaption></figure></div>"
        '<div class="minillm-attn-info" aria-live="polite" style="color:#333;'
        'font-size:13px;margin-top:4px"></div>'
        f'<script type="application/json" id="{uid}-data">{_json_for_script(data)}'
        f"</script><script>{_EXPLORER_JS.replace('__ID__', uid)}</script></div>"
    )


_TOKEN_STYLE = (
    "display:inline-block;white-space:pre;padding:0 3px;margin:1px;border-radius:3px;"
    "cursor:pointer"
)

# Plain JavaScript (no library, no network), wrapped in a function so that several
# explorers in one page do not share variables. Runs once per explorer.
_EXPLORER_JS = r"""
(function () {
  var root = document.getElementById("__ID__");
  if (!root || root.getAttribute("data-ready")) return;
  var data = JSON.parse(document.getElementById("__ID__-data").textContent);
  var W = data.weights, scale = data.scale, T = data.tokens.length;
  var toks = root.querySelectorAll(".minillm-attn-tok");
  var layerSel = root.querySelector("select[name=layer]");
  var headSel = root.querySelector("select[name=head]");
  var info = root.querySelector(".minillm-attn-info");
  var canvas = root.querySelector("canvas"), ctx = canvas.getContext("2d");
  var query = data.query;
  function head() { return W[+layerSel.value][+headSel.value]; }
  function fmt(x) { return (x / scale).toFixed(3); }
  function draw(map) {
    var n = canvas.width / T, top = 1;
    for (var i = 0; i < T; i++) top = Math.max(top, Math.max.apply(null, map[i]));
    for (i = 0; i < T; i++) {
      for (var j = 0; j < T; j++) {
        var a = map[i][j] / top;
        ctx.fillStyle = "rgb(" + Math.round(255 - 224 * a) + "," +
          Math.round(255 - 136 * a) + "," + Math.round(255 - 75 * a) + ")";
        ctx.fillRect(j * n, i * n, n, n);
      }
    }
    ctx.strokeStyle = "#d62728";
    ctx.lineWidth = 1;
    ctx.strokeRect(0.5, query * n + 0.5, canvas.width - 1, Math.max(n - 1, 1));
  }
  function shade() {
    var map = head(), row = map[query], top = Math.max(1, Math.max.apply(null, row));
    for (var j = 0; j < T; j++) {
      var a = row[j] / top, s = toks[j].style;
      s.backgroundColor = "rgba(31,119,180," + a.toFixed(3) + ")";
      s.color = a > 0.55 ? "#fff" : "#111";
      s.outline = j === query ? "2px solid #d62728" : "none";
      toks[j].title = "weight " + fmt(row[j]);
      toks[j].setAttribute("aria-pressed", j === query ? "true" : "false");
    }
    var order = row.map(function (x, j) { return j; });
    order.sort(function (a, b) { return row[b] - row[a]; });
    info.textContent = "query " + data.tokens[query] + " (position " + query +
      ") attends most to: " + order.slice(0, 3).filter(function (j) {
        return row[j] > 0;
      }).map(function (j) {
        return data.tokens[j] + " (" + j + ") " + fmt(row[j]);
      }).join(", ") + ". Shading: weight / the row's largest weight.";
    draw(map);
  }
  function pick(i) { query = Math.max(0, Math.min(T - 1, i)); shade(); }
  for (var i = 0; i < T; i++) {
    (function (i) {
      var t = toks[i];
      t.addEventListener("mouseenter", function () { pick(i); });
      t.addEventListener("focus", function () { pick(i); });
      t.addEventListener("click", function () { pick(i); });
      t.addEventListener("keydown", function (e) {
        var step = { ArrowLeft: -1, ArrowRight: 1 }[e.key];
        if (step) { e.preventDefault(); toks[Math.max(0, Math.min(T - 1, i + step))].focus(); }
      });
    })(i);
  }
  function fromCanvas(e) {
    var r = canvas.getBoundingClientRect();
    pick(Math.floor((e.clientY - r.top) / r.height * T));
  }
  canvas.addEventListener("mousemove", fromCanvas);
  canvas.addEventListener("click", fromCanvas);
  layerSel.addEventListener("change", shade);
  headSel.addEventListener("change", shade);
  root.querySelector(".minillm-attn-nojs").style.display = "none";
  shade();
  root.setAttribute("data-ready", "1");
})();
"""
