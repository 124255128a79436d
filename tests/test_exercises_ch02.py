"""Chapter 2's exercise checkers: the reference solutions pass, each typical wrong answer gets the
hint written for it, and the checkers' own references agree with the `tokenizers` library."""

from __future__ import annotations

import random
import re
from collections import Counter

import pytest
from tokenizers import models, pre_tokenizers

from minillm import tokenization as tk
from minillm.exercises import ExerciseFailed, ch02
from exercise_helpers import _hint


# --- reference answers, written as a learner would ----------------------------------------------

def count_pairs_ok(words):
    counts = Counter()
    for word, freq in words.items():
        for pair in zip(word, word[1:]):
            counts[pair] += freq
    return counts  # a Counter is a dict: accepted


def apply_merge_ok(words, pair):
    out = {}
    for word, freq in words.items():
        symbols, i = [], 0
        while i < len(word):
            if word[i : i + 2] == pair:
                symbols.append(pair[0] + pair[1])
                i += 2
            else:
                symbols.append(word[i])
                i += 1
        out[tuple(symbols)] = out.get(tuple(symbols), 0) + freq
    return out


def wordpiece_ok(word, vocab):
    pieces, start = [], 0
    while start < len(word):
        end = len(word)
        while end > start and (word[start:end] if start == 0 else "##" + word[start:end]) not in vocab:
            end -= 1
        if end == start:
            return ["[UNK]"]
        pieces.append(word[start:end] if start == 0 else "##" + word[start:end])
        start = end
    return pieces


def encode_ok(text, merges):
    ids = list(text.encode("utf-8"))
    for k, pair in enumerate(merges):  # applying the merges in order is the same as by priority
        ids = tk.merge_pair(ids, tuple(pair), 256 + k)
    return ids


def learn_ok(text, n_merges):
    ids, merges = list(text.encode("utf-8")), []
    for k in range(n_merges):
        counts = tk.pair_counts(ids)
        if not counts:
            break
        top = max(counts.values())
        best = min(p for p, c in counts.items() if c == top)
        ids = tk.merge_pair(ids, best, 256 + k)
        merges.append(best)
    return merges


def split_ok(text, special_tokens):
    if not special_tokens:
        return [text] if text else []
    pattern = "(" + "|".join(re.escape(t) for t in sorted(special_tokens, key=len, reverse=True)) + ")"
    return [piece for piece in re.split(pattern, text) if piece]


def split_by_scanning(text, special_tokens):  # no regular expressions at all
    pieces, start, i = [], 0, 0
    tokens = sorted(special_tokens, key=len, reverse=True)
    while i < len(text):
        token = next((t for t in tokens if text[i : i + len(t)] == t), None)
        if token:
            pieces += [text[start:i], token]
            i = start = i + len(token)
        else:
            i += 1
    return [p for p in pieces + [text[start:]] if p]


def test_correct_answers_pass(capsys):
    ch02.check_count_pairs(count_pairs_ok)
    ch02.check_apply_merge(apply_merge_ok)
    ch02.check_wordpiece_tokenize(wordpiece_ok)
    ch02.check_encode_with_merges(encode_ok)
    ch02.check_learn_merges(learn_ok)
    ch02.check_split_on_special(split_ok)
    ch02.check_split_on_special(split_by_scanning)
    assert capsys.readouterr().out.count("Correct:") == 7



# --- typical wrong answers get their hints ------------------------------------------------------

def test_count_pairs_hints():
    def unweighted(words):
        return dict(Counter(p for w in words for p in zip(w, w[1:])))

    def once_per_word(words):
        counts = Counter()
        for w, f in words.items():
            for p in set(zip(w, w[1:])):
                counts[p] += f
        return counts

    def joined_keys(words):
        return {a + b: n for (a, b), n in count_pairs_ok(words).items()}

    assert "add its frequency, not 1" in _hint(ch02.check_count_pairs, unweighted)
    assert "counts once per occurrence" in _hint(ch02.check_count_pairs, once_per_word)
    assert "tuples (a, b)" in _hint(ch02.check_count_pairs, joined_keys)


def test_apply_merge_hints():
    def overlapping(words, pair):
        out = {}
        for w, f in words.items():
            s = tuple(w[i] + w[i + 1] if w[i : i + 2] == pair else w[i] for i in range(len(w)))
            out[s] = f
        return out

    def first_only(words, pair):
        out = {}
        for w, f in words.items():
            for i in range(len(w) - 1):
                if w[i : i + 2] == pair:
                    w = w[:i] + (pair[0] + pair[1],) + w[i + 2 :]
                    break
            out[w] = f
        return out

    def in_place(words, pair):  # modifies the learner's input, then answers from the wrong table
        merged = apply_merge_ok(words, pair)
        words.clear()
        return {w: 1 for w in merged}

    assert "occurrences do not overlap" in _hint(ch02.check_apply_merge, overlapping)
    assert "not only the first one" in _hint(ch02.check_apply_merge, first_only)
    assert "keep each word's frequency" in _hint(ch02.check_apply_merge, in_place)
    assert "not the tuple (a, b)" in _hint(
        ch02.check_apply_merge,
        lambda words, pair: {tuple(pair if s == pair[0] + pair[1] else s for s in w): f for w, f in apply_merge_ok(words, pair).items()},
    )


def test_wordpiece_hints():
    def shortest_first(word, vocab):
        pieces, start = [], 0
        while start < len(word):
            for end in range(start + 1, len(word) + 1):
                piece = word[start:end] if start == 0 else "##" + word[start:end]
                if piece in vocab:
                    pieces.append(piece)
                    start = end
                    break
            else:
                return ["[UNK]"]
        return pieces

    def no_prefix(word, vocab):
        pieces, start = [], 0
        while start < len(word):
            for end in range(len(word), start, -1):
                if word[start:end] in vocab:
                    pieces.append(word[start:end])
                    start = end
                    break
            else:
                return ["[UNK]"]
        return pieces

    def partial(word, vocab):
        pieces, start = [], 0
        while start < len(word):
            for end in range(len(word), start, -1):
                piece = word[start:end] if start == 0 else "##" + word[start:end]
                if piece in vocab:
                    pieces.append(piece)
                    start = end
                    break
            else:
                return pieces + ["[UNK]"]
        return pieces

    assert "longest* vocabulary entry" in _hint(ch02.check_wordpiece_tokenize, shortest_first)
    assert "\"##\" prefix" in _hint(ch02.check_wordpiece_tokenize, no_prefix)
    assert "whole word becomes" in _hint(ch02.check_wordpiece_tokenize, partial)
    assert "with their \"##\" prefix" in _hint(
        ch02.check_wordpiece_tokenize, lambda w, v: [p.removeprefix("##") for p in wordpiece_ok(w, v)]
    )


def test_encode_with_merges_hints():
    def chars(text, merges):
        ids = [ord(c) for c in text]
        for k, pair in enumerate(merges):
            ids = tk.merge_pair(ids, tuple(pair), 256 + k)
        return ids

    def off_by_one(text, merges):
        ids = list(text.encode("utf-8"))
        for k, pair in enumerate(merges):
            ids = tk.merge_pair(ids, tuple(pair), 257 + k)
        return ids

    def last_first(text, merges):
        ids = list(text.encode("utf-8"))
        rank = {tuple(p): k for k, p in enumerate(merges)}
        while True:
            present = [p for p in zip(ids, ids[1:]) if p in rank]
            if not present:
                return ids
            pair = max(present, key=rank.get)
            ids = tk.merge_pair(ids, pair, 256 + rank[pair])

    assert "not from ord(c)" in _hint(ch02.check_encode_with_merges, chars)
    assert "the first merge is id 256" in _hint(ch02.check_encode_with_merges, off_by_one)
    assert "comes *first* in merges has priority" in _hint(ch02.check_encode_with_merges, last_first)


def test_learn_merges_hints():
    def no_update(text, n):
        ids, merges = list(text.encode("utf-8")), []
        for _ in range(n):
            counts = tk.pair_counts(ids)
            if not counts:
                break
            merges.append(min(counts, key=lambda p: (-counts[p], p)))
        return merges

    def first_found(text, n):
        ids, merges = list(text.encode("utf-8")), []
        for k in range(n):
            counts = tk.pair_counts(ids)
            if not counts:
                break
            best = max(counts, key=counts.get)
            ids = tk.merge_pair(ids, best, 256 + k)
            merges.append(best)
        return merges

    def ids_from_255(text, n):
        ids, merges = list(text.encode("utf-8")), []
        for k in range(n):
            counts = tk.pair_counts(ids)
            if not counts:
                break
            best = min(counts, key=lambda p: (-counts[p], p))
            ids = tk.merge_pair(ids, best, 255 + k)
            merges.append(best)
        return merges

    assert "replace the pair in the sequence" in _hint(ch02.check_learn_merges, no_update)
    assert "not the first one found" in _hint(ch02.check_learn_merges, first_found)
    assert "ids 0 to 255 are the bytes" in _hint(ch02.check_learn_merges, ids_from_255)


def test_split_on_special_hints():
    def with_pattern(text, special_tokens, escape=True, group=True, order="longest", drop=True):
        if not special_tokens:
            return [text] if text else []
        if order == "longest":
            special_tokens = sorted(special_tokens, key=len, reverse=True)
        elif order == "shortest":
            special_tokens = sorted(special_tokens, key=len)
        alternatives = "|".join(re.escape(t) if escape else t for t in special_tokens)
        pieces = re.split(f"({alternatives})" if group else alternatives, text)
        return [p for p in pieces if p] if drop else pieces

    def hint(**wrong):
        return _hint(ch02.check_split_on_special, lambda t, s: with_pattern(t, s, **wrong))

    assert "escape the special tokens" in hint(escape=False)
    assert "capturing group" in hint(group=False)
    assert "leave out the empty pieces" in hint(drop=False)
    assert "the longest wins" in hint(order="shortest")
    assert "the longest wins" in hint(order="listed")

    def stub(text, special_tokens):
        raise NotImplementedError

    assert "not implemented yet" in _hint(ch02.check_split_on_special, stub)


def test_split_on_special_reference_agrees_with_the_library():
    """The checker's reference cuts text where the `tokenizers` library's added tokens do."""
    from tokenizers import Tokenizer

    rng = random.Random(3)
    for tokens, text in [(["<|end|>", "<|endoftext|>"], "a<|end|><|endoftext|>b"), *[
            (case[1], case[0]) for case in ch02._special_cases(rng, 60)[6:]]]:
        library = Tokenizer(models.WordLevel(vocab={"[UNK]": 0}, unk_token="[UNK]"))
        library.add_special_tokens(tokens)  # cut out leftmost-longest, as added tokens are
        encoding = library.encode(text)
        specials = [text[a:b] for (a, b), i in zip(encoding.offsets, encoding.ids) if i != 0]
        assert [p for p in ch02._split_on_special(text, tokens) if p in tokens] == specials, (text, tokens)


def test_learn_merges_by_hand():
    # "aaabdaaabac": (a, a) occurs 4 times; then (a, b) and (aa, a) tie at 2 and the smaller tuple,
    # (97, 98), wins; then (aa, ab) occurs twice.
    assert ch02._learn_merges("aaabdaaabac", 3) == [(97, 97), (97, 98), (256, 257)]
    assert ch02._learn_merges("", 3) == [] and ch02._learn_merges("é", 5) == [(195, 169)]


def test_stub_and_errors_are_explained():
    def stub(words):
        raise NotImplementedError

    assert "not implemented yet" in _hint(ch02.check_count_pairs, stub)
    assert "did you forget `return`" in _hint(ch02.check_count_pairs, lambda words: None)
    assert "wrong answer on case 1" in _hint(ch02.check_wordpiece_tokenize, lambda w, v: [w])


# --- the checkers' references against the tokenizers library -------------------------------------

def test_wordpiece_reference_agrees_with_the_library():
    rng = random.Random(0)
    checked = 0
    for _ in range(300):
        pieces = sorted({"".join(rng.choice("abc") for _ in range(rng.randint(1, 3))) for _ in range(8)})
        vocab = {p for p in pieces if rng.random() < 0.6} | {"##" + p for p in pieces if rng.random() < 0.6} | {"[UNK]"}
        word = "".join(rng.choice("abc") for _ in range(rng.randint(1, 8)))
        model = models.WordPiece(vocab={t: i for i, t in enumerate(sorted(vocab))}, unk_token="[UNK]")
        library = [t.value for t in model.tokenize(word)]
        assert ch02._wordpiece_tokenize(word, vocab) == library, (word, sorted(vocab))
        checked += library != ["[UNK]"]
    assert checked > 30  # plenty of words that were actually cut into pieces


def test_encode_reference_agrees_with_the_library():
    rng = random.Random(1)
    for alphabet in ["ab", "ab é", "a🙂b", "hello world"]:
        text = "".join(rng.choice(alphabet) for _ in range(200))
        merges = ch02._learn_merges(text, 20)
        engine = tk.BPETokenizer(merges).to_tokenizers()
        engine.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)  # no chunks
        for _ in range(10):
            s = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 30)))
            assert ch02._encode_with_merges(s, merges) == engine.encode(s).ids
        # and encoding the training text replays training
        assert len(ch02._encode_with_merges(text, merges)) < len(text.encode("utf-8"))


def test_apply_merge_reference_on_a_table():
    words = {("a", "a", "a"): 3, ("b", "a", "a"): 1, ("l", "o", "w"): 2}
    assert ch02._apply_merge(words, ("a", "a")) == {("aa", "a"): 3, ("b", "aa"): 1, ("l", "o", "w"): 2}
    assert ch02._count_pairs(words) == {("a", "a"): 7, ("b", "a"): 1, ("l", "o"): 2, ("o", "w"): 2}


def test_compare_checks_non_numeric_answers_exactly():
    from minillm.exercises import compare

    assert compare("t", lambda d: dict(d), lambda d: d, [({("a", "b"): 1},)]) == 1
    with pytest.raises(ExerciseFailed):
        compare("t", lambda s: ["x"], lambda s: ["y"], [("q",)])
