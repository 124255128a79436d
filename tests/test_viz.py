"""minillm.viz: the attention-map figures carry the right data, labels and axes, the explorer
builds and reacts to its controls (driven through ipywidgets' Python API, without a browser),
and the static explorer's HTML carries its data, ids and script (its behaviour in a browser is
checked on the built book by tests/test_rendered_book.py)."""

from __future__ import annotations

import json
import re

import matplotlib

matplotlib.use("Agg")

import ipywidgets
import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch

from minillm.viz import (
    AttentionExplorer,
    AttentionHTML,
    attention_html,
    plot_attention,
    plot_heads,
    token_label,
)

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


def _rows(t_q: int, t_k: int, seed: int = 0) -> torch.Tensor:
    return torch.softmax(torch.randn(t_q, t_k, generator=torch.Generator().manual_seed(seed)), dim=-1)


def _labels(ticklabels) -> list[str]:
    return [t.get_text() for t in ticklabels]


def test_token_label_makes_whitespace_visible():
    assert [token_label(t) for t in ["a", " ", "\n", "Ġthe", "x\ny"]] == ["a", "␣", "\\n", "Ġthe", "x\\ny"]


def test_plot_attention_labels_both_axes_with_tokens():
    tokens = ["the", " ", "cat", "sat"]
    w = _rows(4, 4)
    ax = plot_attention(w, tokens, title="one head")
    assert _labels(ax.get_xticklabels()) == ["the", "␣", "cat", "sat"]
    assert _labels(ax.get_yticklabels()) == ["the", "␣", "cat", "sat"]
    assert ax.get_xlabel() == "key (attended to)" and ax.get_ylabel() == "query (attending)"
    assert ax.get_title() == "one head"
    np.testing.assert_allclose(ax.images[0].get_array(), w.numpy(), rtol=1e-6)
    assert ax.images[0].get_clim() == (0.0, pytest.approx(float(w.max())))
    assert len(ax.figure.axes) == 2  # the map and its colour bar


def test_plot_attention_cross_attention_and_existing_axes():
    fig, ax = plt.subplots()
    w = _rows(2, 5).requires_grad_()  # a tensor that requires grad is fine
    out = plot_attention(w, ["a", "b"], key_tokens=list("vwxyz"), ax=ax, colorbar=False, vmax=1.0)
    assert out is ax and len(fig.axes) == 1
    assert _labels(ax.get_xticklabels()) == list("vwxyz") and _labels(ax.get_yticklabels()) == ["a", "b"]
    assert ax.images[0].get_clim() == (0.0, 1.0)


def test_long_sequences_thin_out_the_tick_labels():
    tokens = [f"t{i}" for i in range(200)]
    ax = plot_attention(_rows(200, 200), tokens)
    labels = _labels(ax.get_xticklabels())
    assert 30 <= len(labels) <= 64 and labels[0] == "t0" and labels[1] == "t4"


@pytest.mark.parametrize(
    "weights, tokens, error, message",
    [
        (_rows(3, 3), ["a", "b"], ValueError, "has 2 tokens but the weights have 3 query rows"),
        (_rows(3, 3), "abc", TypeError, "not one string"),
        (_rows(3, 3)[None], list("abc"), ValueError, r"weights\[0\]"),
        (torch.full((2, 2), float("nan")), ["a", "b"], ValueError, "NaN"),
        ("not weights", ["a"], TypeError, "tensor or array"),
    ],
)
def test_plot_attention_errors(weights, tokens, error, message):
    with pytest.raises(error, match=message):
        plot_attention(weights, tokens)


@pytest.mark.parametrize("n_heads, ncols, rows", [(1, 4, 1), (4, 4, 1), (6, 4, 2), (12, 4, 3)])
def test_plot_heads_grid(n_heads, ncols, rows):
    w = torch.stack([_rows(5, 5, seed=h) for h in range(n_heads)])
    fig = plot_heads(w, list("hello"), ncols=ncols, title="layer 0")
    head_axes = [ax for ax in fig.axes if ax.images]
    assert len(head_axes) == n_heads and len(fig.axes) == n_heads + 1  # one shared colour bar
    assert [ax.get_title() for ax in head_axes] == [f"head {h}" for h in range(n_heads)]
    for h, ax in enumerate(head_axes):
        np.testing.assert_allclose(ax.images[0].get_array(), w[h].numpy(), rtol=1e-6)
        assert _labels(ax.get_yticklabels()) == list("hello")
        assert ax.images[0].get_clim()[1] == pytest.approx(float(w.max()))
    assert sum(ax.get_ylabel() == "query" for ax in head_axes) == rows
    assert fig._suptitle.get_text() == "layer 0"


def test_plot_heads_default_fits_the_page():
    """Four heads of 32 tokens (chapter 7's grid): two per row by default, at most 9.5 inches
    wide (shown at >= 77 % in the book's 7.4-inch column, so labels stay legible:
    tests/test_rendered_book.py), tick labels >= 8 pt, and whitespace tokens drawn visibly."""
    tokens = list("ROMEO:\nWhat is the matter, man?")[:32]
    w = torch.stack([_rows(len(tokens), len(tokens), seed=h) for h in range(4)])
    fig = plot_heads(w, tokens, title="layer 0")
    head_axes = [ax for ax in fig.axes if ax.images]
    assert sum(ax.get_ylabel() == "query" for ax in head_axes) == 2  # 2 rows of 2
    assert fig.get_size_inches()[0] <= 9.5
    ticks = head_axes[0].get_yticklabels()
    assert min(t.get_fontsize() for t in ticks) >= 8
    assert "␣" in _labels(ticks) and "\\n" in _labels(ticks) and " " not in _labels(ticks)


def test_plot_heads_own_scales_and_names():
    w = torch.stack([_rows(3, 3, seed=0) * 0.5, _rows(3, 3, seed=1)])
    fig = plot_heads(w, list("abc"), shared_scale=False, head_names=["previous", "same"])
    assert len(fig.axes) == 2
    assert [ax.get_title() for ax in fig.axes] == ["previous", "same"]
    assert fig.axes[0].images[0].get_clim()[1] == pytest.approx(float(w[0].max()))
    with pytest.raises(ValueError, match="2 names for 3 heads"):
        plot_heads(torch.stack([w[0]] * 3), list("abc"), head_names=["a", "b"])
    with pytest.raises(ValueError, match=r"\(n_heads, T_q, T_k\)"):
        plot_heads(w[0], list("abc"))


# --- the explorer ------------------------------------------------------------------------

class Dummy:
    """text -> (characters, per-layer weights): in layer l, head h, query i attends to key
    max(i - h - l, 0) with weight 1. Counts its calls."""

    def __init__(self, n_layers: int = 2, n_heads: int = 3):
        self.n_layers, self.n_heads, self.calls = n_layers, n_heads, 0

    def __call__(self, text: str):
        self.calls += 1
        if not text:
            raise ValueError("empty text")
        T = len(text)
        layers = []
        for layer in range(self.n_layers):
            w = torch.zeros(self.n_heads, T, T)
            for h in range(self.n_heads):
                for i in range(T):
                    w[h, i, max(i - h - layer, 0)] = 1.0
            layers.append(w)
        return list(text), layers


def test_explorer_builds_with_all_heads():
    fn = Dummy()
    ex = AttentionExplorer(fn, "abcd")
    assert isinstance(ex.widget, ipywidgets.VBox)
    assert isinstance(ex.text, ipywidgets.Text) and ex.text.value == "abcd"
    assert (ex.layer.min, ex.layer.max, ex.layer.value) == (0, 1, 0)
    assert [label for label, _ in ex.head.options] == ["all", "0", "1", "2"] and ex.head.value == -1
    assert bytes(ex.image.value).startswith(PNG_MAGIC)
    assert len([ax for ax in ex.figure.axes if ax.images]) == 3
    assert ex.figure._suptitle.get_text() == "layer 0: all 3 heads"
    assert fn.calls == 1 and "4 tokens" in ex.status.value
    assert "head=all" in repr(ex)


def test_explorer_redraws_on_layer_and_head_without_recomputing():
    fn = Dummy()
    ex = AttentionExplorer(fn, "abcd", head=0)
    first = ex.image.value
    ex.head.value = 2
    (ax,) = [a for a in ex.figure.axes if a.images]
    assert ax.get_title() == "layer 0, head 2"
    np.testing.assert_array_equal(ax.images[0].get_array()[3], [0, 1, 0, 0])  # query 3 -> key 1
    assert ex.image.value != first
    ex.layer.value = 1
    (ax,) = [a for a in ex.figure.axes if a.images]
    assert ax.get_title() == "layer 1, head 2"
    np.testing.assert_array_equal(ax.images[0].get_array()[3], [1, 0, 0, 0])  # query 3 -> key 0
    assert fn.calls == 1  # only the text triggers the model


def test_explorer_recomputes_on_text_change():
    fn = Dummy()
    ex = AttentionExplorer(fn, "abcd", head=1)
    ex.text.value = "xy z!"
    assert fn.calls == 2 and ex.tokens == list("xy z!")
    (ax,) = [a for a in ex.figure.axes if a.images]
    assert _labels(ax.get_xticklabels()) == ["x", "y", "␣", "z", "!"]
    assert ex.figure.axes[0].images[0].get_array().shape == (5, 5)


def test_explorer_follows_a_model_with_other_sizes():
    class Varying(Dummy):
        def __call__(self, text):
            self.n_layers, self.n_heads = (3, 2) if len(text) > 3 else (2, 4)
            return super().__call__(text)

    ex = AttentionExplorer(Varying(), "abc", head=3)
    assert ex.head.value == 3
    ex.text.value = "abcdef"
    assert ex.layer.max == 2 and [v for _, v in ex.head.options] == [-1, 0, 1]
    assert ex.head.value == -1  # head 3 no longer exists


def test_explorer_shows_errors_and_keeps_the_last_view():
    ex = AttentionExplorer(Dummy(), "abc")
    image = ex.image.value
    ex.text.value = ""
    assert "could not compute attention" in ex.status.value and "empty text" in ex.status.value
    assert ex.tokens == list("abc") and ex.image.value == image


@pytest.mark.parametrize(
    "fn, kwargs, error, message",
    [
        (lambda text: (list(text), []), {}, ValueError, "non-empty list"),
        (lambda text: (list(text), [torch.ones(1, 2, 3, 3)]), {}, ValueError, r"weights\[0\]"),
        (lambda text: (list(text)[:-1], [torch.ones(2, 3, 3)]), {}, ValueError, "has 2 tokens"),
        (lambda text: (list(text), [torch.ones(2, 3, 3), torch.ones(3, 3, 3)]), {}, ValueError, "same shape"),
        (lambda text: (list(text), [torch.ones(2, 3, 4)]), {}, ValueError, "self-attention"),
        (Dummy(), {"layer": 2}, ValueError, r"layer must be an int in \[0, 2\)"),
        (Dummy(), {"head": 3}, ValueError, "head must be 'all' or an int"),
        ("not callable", {}, TypeError, "must be callable"),
    ],
)
def test_explorer_rejects_bad_functions_and_choices(fn, kwargs, error, message):
    with pytest.raises(error, match=message):
        AttentionExplorer(fn, "abc", **kwargs)


def test_explorer_head_names():
    ex = AttentionExplorer(Dummy(n_layers=1, n_heads=2), "abc", head_names=["prev", "self"])
    assert [a.get_title() for a in ex.figure.axes if a.images] == ["prev", "self"]
    ex.head.value = 1
    assert [a.get_title() for a in ex.figure.axes if a.images] == ["layer 0, head 1 (self)"]


def test_explorer_accepts_a_stacked_tensor():
    fn = Dummy()
    ex = AttentionExplorer(lambda text: (fn(text)[0], torch.stack(fn(text)[1])), "abcd")
    assert len(ex.weights) == 2 and ex.weights[0].shape == (3, 4, 4)


def test_explorer_displays_its_widget(monkeypatch):
    shown = []
    monkeypatch.setattr("IPython.display.display", lambda obj: shown.append(obj))
    ex = AttentionExplorer(Dummy(), "ab")
    ex._ipython_display_()
    assert shown == [ex.widget]
    assert ex.text in ex.widget.children and ex.image in ex.widget.children


# --- the static explorer (HTML + inline JavaScript) ---------------------------------------


def _maps(n_layers=2, n_heads=3, T=5, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.softmax(torch.randn(n_layers, n_heads, T, T, generator=g), dim=-1)


def _data(explorer: AttentionHTML) -> dict:
    (payload,) = re.findall(r'<script type="application/json" id="[^"]+">(.*?)</script>',
                            explorer.html, flags=re.DOTALL)
    return json.loads(payload)


def test_attention_html_embeds_rounded_weights_and_visible_tokens():
    w = _maps()
    ex = attention_html(["a", " ", "\n", "b", "</script>"], w, title="tiny <model>")
    data = _data(ex)
    assert data["tokens"] == ["a", "␣", "\\n", "b", "</script>"]  # token_label's marks
    assert data["scale"] == 1000 and data["query"] == 4  # the last token by default
    got = np.array(data["weights"])
    assert got.shape == (2, 3, 5, 5) and got.dtype.kind == "i"
    np.testing.assert_array_equal(got, np.rint(w.numpy() * 1000).astype(int))
    # the payload cannot end its script element early, and titles are escaped
    assert ex.html.count("</script>") == 2 and "tiny &lt;model&gt;" in ex.html
    assert ex._repr_html_() == ex.html and ex.nbytes == len(ex.html.encode())
    assert "T=5, 2 layer(s) x 3 head(s)" in repr(ex)
    assert ex.html.count('class="minillm-attn-tok"') == 5 and "<br>" in ex.html
    assert "http" not in ex.html  # nothing is fetched from the network


def test_attention_html_selectors_and_names():
    ex = attention_html(list("abcde"), _maps(), layer_names=["emb", "top"],
                        head_names=["x", "y", "z"], layer=1, head=2, query=0)
    assert re.findall(r'<option value="(\d)"( selected)?>(\w+)</option>', ex.html) == [
        ("0", "", "emb"), ("1", " selected", "top"),
        ("0", "", "x"), ("1", "", "y"), ("2", " selected", "z")]
    assert _data(ex)["query"] == 0


def test_attention_html_ids_are_unique_per_explorer():
    w = _maps()
    a, b = attention_html(list("abcde"), w), attention_html(list("abcde"), w)
    ids = [re.findall(r'<div id="(minillm-attn-[0-9a-f]+)"', x.html) for x in (a, b)]
    assert len(ids[0]) == len(ids[1]) == 1 and ids[0] != ids[1]
    for x, (uid,) in zip((a, b), ids):
        # the data element and the script refer to this explorer's id only
        assert f'id="{uid}-data"' in x.html and f'getElementById("{uid}")' in x.html
        assert "__ID__" not in x.html
    # the script keeps its variables to itself, so two explorers can share a page
    script = a.html.rsplit("<script>", 1)[1]
    assert script.strip().startswith("(function () {")


def test_attention_html_accepts_lists_of_layers_and_numpy():
    w = _maps()
    a = _data(attention_html(list("abcde"), [w[0], w[1]]))
    b = _data(attention_html(list("abcde"), w.numpy().astype(np.float64)))
    assert a["weights"] == b["weights"]


def test_attention_html_size_stays_small():
    # GPT chapter's shape: 4 layers x 4 heads x 32 causal positions
    w = torch.softmax(torch.randn(4, 4, 32, 32).masked_fill(
        ~torch.ones(32, 32, dtype=torch.bool).tril(), float("-inf")), dim=-1)
    ex = attention_html(list("x" * 32), w)
    assert ex.nbytes < 100_000


@pytest.mark.parametrize(
    "tokens, weights, kwargs, error, message",
    [
        (list("abcde"), _maps()[0], {}, ValueError, r"\(n_layers, n_heads, T, T\).*weights\[None\]"),
        (list("abcde"), _maps()[:, None], {}, ValueError, r"maps\[:, 0\]"),
        (list("abcd"), _maps(), {}, ValueError, "has 4 tokens but the weights have 5"),
        ("abcde", _maps(), {}, TypeError, "not one string"),
        (list("abcde"), _maps()[..., :4], {}, ValueError, "self-attention"),
        (list("abcde"), _maps() * 3 - 1, {}, ValueError, r"\[0, 1\].*not the scores"),
        (list("abcde"), _maps(), {"max_tokens": 4}, ValueError, "more than max_tokens=4"),
        (list("abcde"), _maps(), {"head": 3}, ValueError, r"< \(2, 3\), got \(0, 3\)"),
        (list("abcde"), _maps(), {"query": 5}, ValueError, "query must be a position < 5"),
        (list("abcde"), _maps(), {"head_names": ["a"]}, ValueError, "1 names for 3 heads"),
        (list("abcde"), _maps(), {"layer": 1.0}, TypeError, "layer must be an int"),
        (list("abcde"), [_maps()[0], _maps()[0, :2]], {}, ValueError, "one shape"),
    ],
)
def test_attention_html_errors(tokens, weights, kwargs, error, message):
    with pytest.raises(error, match=message):
        attention_html(tokens, weights, **kwargs)
