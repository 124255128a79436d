"""Checkers for the exercises of chapter 2 (notebooks/02_tokenization.ipynb).

The references below are written independently of ``minillm.tokenization`` (tests compare them with
the ``tokenizers`` library), so that a checker keeps meaning the same thing if the chapter's code changes.
"""

from __future__ import annotations

import random
import re
from typing import Callable

from . import Mistake, compare, passed

__all__ = [
    "check_count_pairs",
    "check_apply_merge",
    "check_wordpiece_tokenize",
    "check_encode_with_merges",
    "check_learn_merges",
    "check_split_on_special",
]

Word = tuple[str, ...]


def _random_words(rng: random.Random, n_words: int, alphabet: str, max_len: int) -> list[str]:
    words: set[str] = set()
    while len(words) < n_words:
        words.add("".join(rng.choice(alphabet) for _ in range(rng.randint(1, max_len))))
    return sorted(words)


def _word_table(rng: random.Random, n_words: int, alphabet: str, max_len: int) -> dict[Word, int]:
    return {tuple(w): rng.randint(1, 9) for w in _random_words(rng, n_words, alphabet, max_len)}


# --- Exercise 2.1: pair frequencies in a word table --------------------------------------

def _count_pairs(words: dict[Word, int]) -> dict[tuple[str, str], int]:
    counts: dict[tuple[str, str], int] = {}
    for word, freq in words.items():
        for i in range(len(word) - 1):
            counts[word[i], word[i + 1]] = counts.get((word[i], word[i + 1]), 0) + freq
    return counts


def _count_pairs_unweighted(words):
    return _count_pairs({w: 1 for w in words})


def _count_pairs_once_per_word(words):
    counts = {}
    for word, freq in words.items():
        for pair in set(zip(word, word[1:])):
            counts[pair] = counts.get(pair, 0) + freq
    return counts


def _count_pairs_missing_last(words):
    return _count_pairs({w[:-1]: f for w, f in words.items()})


def _count_pairs_string_keys(words):
    return {a + b: n for (a, b), n in _count_pairs(words).items()}


def check_count_pairs(count_pairs: Callable, n_cases: int = 20) -> None:
    """Check ``count_pairs(words) -> {(a, b): frequency}`` on word tables ``{tuple of symbols: count}``."""
    rng = random.Random(201)
    cases = [({("l", "o", "w"): 5, ("l", "o", "w", "e", "r"): 2},), ({("a", "a", "a"): 3, ("b", "a"): 2},)]
    for i in range(n_cases - 2):
        cases.append((_word_table(rng, 2 + i % 5, "abc"[: 2 + i % 2], 2 + i % 5),))
    mistakes = [
        Mistake(_count_pairs_unweighted, "each word counts as many times as it occurs in the corpus: add its frequency, not 1."),
        Mistake(_count_pairs_once_per_word, "a pair that occurs several times in one word counts once per occurrence: (\"a\", \"a\", \"a\") holds (\"a\", \"a\") twice."),
        Mistake(_count_pairs_missing_last, "the last pair of each word is missing: a word of n symbols has n - 1 pairs (an off-by-one in the loop bound?)."),
        Mistake(_count_pairs_string_keys, "the keys must be pairs of symbols, tuples (a, b), not the joined string a + b."),
    ]
    n = compare("count_pairs", count_pairs, _count_pairs, cases, mistakes)
    passed("count_pairs", n)


# --- Exercise 2.2: apply one merge to a word table -----------------------------------------

def _merge_word(word: Word, pair: tuple[str, str]) -> Word:
    out, i = [], 0
    while i < len(word):
        if i + 1 < len(word) and (word[i], word[i + 1]) == pair:
            out.append(word[i] + word[i + 1])
            i += 2
        else:
            out.append(word[i])
            i += 1
    return tuple(out)


def _apply_merge(words: dict[Word, int], pair: tuple[str, str]) -> dict[Word, int]:
    merged: dict[Word, int] = {}
    for word, freq in words.items():
        new = _merge_word(word, pair)
        merged[new] = merged.get(new, 0) + freq
    return merged


def _merge_overlapping(words, pair):
    out = {}
    for word, freq in words.items():
        new, i = [], 0
        while i < len(word):
            if i + 1 < len(word) and (word[i], word[i + 1]) == pair:
                new.append(word[i] + word[i + 1])
            else:
                new.append(word[i])
            i += 1  # does not skip the second symbol of a merged pair
        out[tuple(new)] = out.get(tuple(new), 0) + freq
    return out


def _merge_right_to_left(words, pair):
    out = {}
    for word, freq in words.items():
        new, i = [], len(word) - 1
        while i >= 0:
            if i >= 1 and (word[i - 1], word[i]) == pair:
                new.append(word[i - 1] + word[i])
                i -= 2
            else:
                new.append(word[i])
                i -= 1
        new = tuple(reversed(new))
        out[new] = out.get(new, 0) + freq
    return out


def _merge_first_only(words, pair):
    out = {}
    for word, freq in words.items():
        for i in range(len(word) - 1):
            if (word[i], word[i + 1]) == pair:
                word = word[:i] + (word[i] + word[i + 1],) + word[i + 2:]
                break
        out[word] = out.get(word, 0) + freq
    return out


def _merge_losing_frequencies(words, pair):
    return {w: 1 for w in _apply_merge(words, pair)}


def _merge_as_tuple(words, pair):
    out = {}
    for word, freq in words.items():
        new, i = [], 0
        while i < len(word):
            if i + 1 < len(word) and (word[i], word[i + 1]) == pair:
                new.append(pair)
                i += 2
            else:
                new.append(word[i])
                i += 1
        out[tuple(new)] = freq
    return out


def _merge_cases(rng: random.Random, n_cases: int) -> list[tuple]:
    cases = [
        ({("a", "a", "a"): 3, ("b", "a", "a"): 1}, ("a", "a")),
        ({("l", "o", "w"): 5, ("l", "o", "w", "e", "r"): 2, ("o", "w", "l"): 1}, ("o", "w")),
    ]
    while len(cases) < n_cases:
        words = _word_table(rng, 3 + len(cases) % 4, "ab" if len(cases) % 2 else "abc", 6)
        for _ in range(rng.randint(0, 2)):  # a few earlier merges, so that symbols are longer than one character
            pairs = _count_pairs(words)
            if pairs:
                words = _apply_merge(words, max(sorted(pairs), key=pairs.get))
        pairs = sorted(_count_pairs(words))
        if pairs:
            cases.append((words, rng.choice(pairs)))
    return cases


def check_apply_merge(apply_merge: Callable, n_cases: int = 20) -> None:
    """Check ``apply_merge(words, pair) -> words``: every non-overlapping (a, b), left to right, becomes a + b."""
    cases = _merge_cases(random.Random(202), n_cases)
    mistakes = [
        Mistake(_merge_overlapping, "after merging a pair, skip both of its symbols: occurrences do not overlap, so (\"a\", \"a\", \"a\") becomes (\"aa\", \"a\")."),
        Mistake(_merge_right_to_left, "scan each word from left to right: (\"a\", \"a\", \"a\") becomes (\"aa\", \"a\"), not (\"a\", \"aa\")."),
        Mistake(_merge_first_only, "replace every occurrence of the pair in a word, not only the first one."),
        Mistake(_merge_losing_frequencies, "keep each word's frequency: merging changes how a word is cut, not how often it occurs."),
        Mistake(_merge_as_tuple, "the merged symbol is the string a + b, not the tuple (a, b)."),
    ]
    n = compare("apply_merge", apply_merge, _apply_merge, cases, mistakes)
    passed("apply_merge", n)


# --- Exercise 2.3: WordPiece greedy longest match ------------------------------------------

def _wordpiece(word: str, vocab: set[str], longest_first: bool = True, prefix: str = "##",
               partial_unk: bool = False, keep_prefix: bool = True) -> list[str]:
    pieces, start = [], 0
    while start < len(word):
        ends = range(len(word), start, -1) if longest_first else range(start + 1, len(word) + 1)
        for end in ends:
            piece = word[start:end] if start == 0 else prefix + word[start:end]
            if piece in vocab:
                pieces.append(piece if keep_prefix or start == 0 else word[start:end])
                start = end
                break
        else:
            return pieces + ["[UNK]"] if partial_unk else ["[UNK]"]
    return pieces


def _wordpiece_tokenize(word: str, vocab: set[str]) -> list[str]:
    return _wordpiece(word, vocab)


def _wordpiece_cases(rng: random.Random, n_cases: int) -> list[tuple]:
    cases = [
        ("unbelievable", {"un", "##believ", "##able", "u", "##n"}),
        ("ab", {"a", "ab", "##b"}),
        ("abc", {"a", "##b"}),
        ("aab", {"a", "aa", "##a", "##b", "##ab"}),
    ]
    while len(cases) < n_cases:
        pieces = _random_words(rng, 6, "abc", 3)
        vocab = set(rng.sample(pieces, 3)) | {"##" + p for p in rng.sample(pieces, 4)} | {"a", "b", "##a"}
        word = "".join(rng.choice("abc") for _ in range(rng.randint(1, 7)))
        cases.append((word, vocab))
    return cases


def check_wordpiece_tokenize(wordpiece_tokenize: Callable, n_cases: int = 40) -> None:
    """Check ``wordpiece_tokenize(word, vocab) -> list of pieces``: greedy longest match, "##" continuations, ["[UNK]"]."""
    cases = _wordpiece_cases(random.Random(203), n_cases)
    mistakes = [
        Mistake(lambda w, v: _wordpiece(w, v, longest_first=False), "take the *longest* vocabulary entry that matches at each position, not the shortest: try the end of the word first, then shorter and shorter pieces."),
        Mistake(lambda w, v: _wordpiece(w, v, prefix=""), "a piece that continues a word is looked up with the \"##\" prefix: look for \"##\" + piece, not the bare piece."),
        Mistake(lambda w, v: _wordpiece(w, v, partial_unk=True), "if any part of the word cannot be matched, the whole word becomes [\"[UNK]\"]: drop the pieces found before."),
        Mistake(lambda w, v: _wordpiece(w, v, keep_prefix=False), "return continuation pieces with their \"##\" prefix, as they appear in the vocabulary."),
    ]
    n = compare("wordpiece_tokenize", wordpiece_tokenize, _wordpiece_tokenize, cases, mistakes)
    passed("wordpiece_tokenize", n)


# --- Exercises 2.4 and 2.5: byte-level BPE without pre-tokenization -----------------------

def _merge_ids(ids: list[int], pair: tuple[int, int], new_id: int) -> list[int]:
    out, i = [], 0
    while i < len(ids):
        if i + 1 < len(ids) and (ids[i], ids[i + 1]) == pair:
            out.append(new_id)
            i += 2
        else:
            out.append(ids[i])
            i += 1
    return out


def _encode(ids: list[int], merges: list, first_id: int = 256, reverse: bool = False) -> list[int]:
    rank = {tuple(p): k for k, p in enumerate(merges)}
    while len(ids) > 1:
        present = [p for p in zip(ids, ids[1:]) if p in rank]
        if not present:
            break
        pair = (max if reverse else min)(present, key=rank.get)
        ids = _merge_ids(ids, pair, first_id + rank[pair])
    return ids


def _encode_with_merges(text: str, merges: list[tuple[int, int]]) -> list[int]:
    return _encode(list(text.encode("utf-8")), merges)


def _learn(ids: list[int], n_merges: int, first_id: int = 256, pick: str = "min", update: bool = True) -> list[tuple[int, int]]:
    merges = []
    for k in range(n_merges):
        if len(ids) < 2:
            break
        counts: dict[tuple[int, int], int] = {}
        for pair in zip(ids, ids[1:]):
            counts[pair] = counts.get(pair, 0) + 1
        if pick == "min":
            best = min(counts, key=lambda p: (-counts[p], p))
        elif pick == "max":
            best = max(counts, key=lambda p: (counts[p], p))
        else:  # "first": the first pair to reach the top count, in order of first appearance
            best = max(counts, key=counts.get)
        if update:
            ids = _merge_ids(ids, best, first_id + k)
        merges.append(best)
    return merges


def _learn_merges(text: str, n_merges: int) -> list[tuple[int, int]]:
    return _learn(list(text.encode("utf-8")), n_merges)


_ALPHABETS = ["ab", "abc", "ab é", "a🙂b", "hello world", "aé中"]


def _random_text(rng: random.Random, alphabet: str, n: int) -> str:
    return "".join(rng.choice(alphabet) for _ in range(n))


def check_encode_with_merges(encode_with_merges: Callable, n_cases: int = 20) -> None:
    """Check ``encode_with_merges(text, merges) -> ids``: UTF-8 bytes, then merges by priority (merge k -> id 256 + k)."""
    rng = random.Random(204)
    cases = [("aaab", [(97, 97), (256, 97)]), ("éé", [(195, 169), (256, 256)])]
    while len(cases) < n_cases:
        alphabet = _ALPHABETS[len(cases) % len(_ALPHABETS)]
        train = _random_text(rng, alphabet, 30 + 5 * len(cases))
        merges = _learn_merges(train, rng.randint(1, 8))
        cases.append((_random_text(rng, alphabet, 5 + len(cases)), merges))
    mistakes = [
        Mistake(lambda t, m: _encode([ord(c) for c in t], m), "start from the UTF-8 bytes, text.encode(\"utf-8\"), not from ord(c): a character such as 'é' is two bytes."),
        Mistake(lambda t, m: _encode(list(t.encode("utf-8")), m, first_id=255), "merge k (counting from 0) creates id 256 + k: ids 0 to 255 are the bytes."),
        Mistake(lambda t, m: _encode(list(t.encode("utf-8")), m, first_id=257), "merge k (counting from 0) creates id 256 + k: the first merge is id 256."),
        Mistake(lambda t, m: _encode(list(t.encode("utf-8")), m, reverse=True), "the pair that comes *first* in merges has priority (it was learned first), not the last one."),
    ]
    n = compare("encode_with_merges", encode_with_merges, _encode_with_merges, cases, mistakes)
    passed("encode_with_merges", n)


def check_learn_merges(learn_merges: Callable, n_cases: int = 20) -> None:
    """Check ``learn_merges(text, n_merges) -> [(a, b), ...]``: the most frequent pair each time, ties to the smallest."""
    rng = random.Random(205)
    cases = [("aaabdaab", 3), ("ab", 5), ("", 2), ("éé", 2)]
    while len(cases) < n_cases:
        alphabet = _ALPHABETS[len(cases) % len(_ALPHABETS)]
        cases.append((_random_text(rng, alphabet, 4 + 3 * len(cases)), rng.randint(1, 10)))
    utf8 = lambda t: list(t.encode("utf-8"))  # noqa: E731
    mistakes = [
        Mistake(lambda t, n: _learn(utf8(t), n, update=False), "after each merge, replace the pair in the sequence (merge_pair) before counting again; otherwise the same pair wins every time."),
        Mistake(lambda t, n: _learn(utf8(t), n, pick="first"), "break ties explicitly: among equally frequent pairs take the smallest tuple, min(...), not the first one found."),
        Mistake(lambda t, n: _learn(utf8(t), n, pick="max"), "among equally frequent pairs take the *smallest* tuple, not the largest."),
        Mistake(lambda t, n: _learn(utf8(t), n, first_id=255), "the k-th merge (counting from 0) creates id 256 + k: ids 0 to 255 are the bytes."),
        Mistake(lambda t, n: _learn(utf8(t), n, first_id=257), "the k-th merge (counting from 0) creates id 256 + k: the first merge is id 256."),
        Mistake(lambda t, n: _learn([ord(c) for c in t], n), "start from the UTF-8 bytes, text.encode(\"utf-8\"), not from ord(c): a character such as 'é' is two bytes."),
    ]
    n = compare("learn_merges", learn_merges, _learn_merges, cases, mistakes)
    passed("learn_merges", n)


# --- Exercise 2.6: cut out the special tokens ------------------------------------------------

def _split(text: str, special_tokens: list[str], order: str = "longest", escape: bool = True,
           keep_specials: bool = True, drop_empty: bool = True) -> list[str]:
    """Cut ``text`` around ``special_tokens`` by scanning it, without regular expressions
    (the reference); the keyword arguments give the typical wrong answers."""
    if order == "longest":
        tokens = sorted(special_tokens, key=len, reverse=True)
    elif order == "shortest":
        tokens = sorted(special_tokens, key=len)
    else:  # "listed": the order the caller gave
        tokens = list(special_tokens)
    if not escape:  # what re.split does with the tokens as unescaped patterns
        if not tokens:
            pieces = [text]
        else:
            try:
                pieces = re.split("(" + "|".join(tokens) + ")", text)
            except re.error:
                pieces = [text]
        return [p for p in pieces if p] if drop_empty else pieces
    pieces, start, i = [], 0, 0
    while i < len(text):
        match = next((t for t in tokens if text.startswith(t, i)), None)
        if match is None:
            i += 1
            continue
        pieces.append(text[start:i])
        if keep_specials:
            pieces.append(match)
        i = start = i + len(match)
    pieces.append(text[start:])
    return [p for p in pieces if p] if drop_empty else pieces


def _split_on_special(text: str, special_tokens: list[str]) -> list[str]:
    return _split(text, special_tokens)


_SPECIALS = ["<|endoftext|>", "<|end|>", "<|user|>", "[SEP]", "<s>", "</s>", "ab", "abc", "||"]
_FILLER = ["a", "b", "c", " ", "\n", "é", "🙂", "<", "|", ">", "[", "]", "s", "e"]


def _special_cases(rng: random.Random, n_cases: int) -> list[tuple]:
    cases = [
        ("a<|end|><|endoftext|>b", ["<|end|>", "<|endoftext|>"]),
        ("<s><s><s>x", ["<s>", "<s><s>"]),
        ("abcab [SEP]", ["ab", "abc", "[SEP]"]),
        ("no special token here", ["<|endoftext|>"]),
        ("", ["<s>"]),
        ("plain text", []),
    ]
    while len(cases) < n_cases:
        tokens = rng.sample(_SPECIALS, rng.randint(1, 4))
        if rng.random() < 0.5:  # a longer token that starts like a shorter one
            tokens.append(tokens[0] * 2)
        pieces = [rng.choice(tokens) if rng.random() < 0.35 else rng.choice(_FILLER)
                  for _ in range(rng.randint(1, 4 + len(cases) // 2))]
        cases.append(("".join(pieces), tokens))
    return cases


def check_split_on_special(split_on_special: Callable, n_cases: int = 30) -> None:
    """Check ``split_on_special(text, special_tokens) -> pieces``: each special token a piece,
    the text between them the others, none empty; the longest token wins where two start."""
    cases = _special_cases(random.Random(206), n_cases)
    mistakes = [
        Mistake(lambda t, s: _split(t, s, escape=False),
                "escape the special tokens before putting them in a pattern (re.escape): `|`, `[` "
                "and `]` mean something to a regular expression, so \"<|end|>\" would match "
                "\"<\" or \"end\" or \">\"."),
        Mistake(lambda t, s: _split(t, s, keep_specials=False),
                "keep the special tokens as pieces of their own: with re.split, put the pattern "
                "in a capturing group, \"(\" + ... + \")\", so that the matches come back too."),
        Mistake(lambda t, s: _split(t, s, drop_empty=False),
                "leave out the empty pieces: re.split gives \"\" before a special token at the "
                "start of the text, between two adjacent ones and after one at the end."),
        Mistake(lambda t, s: _split(t, s, order="shortest"),
                "where two special tokens start at the same place, the longest wins: try the "
                "longer ones first (sort them by length, longest first)."),
        Mistake(lambda t, s: _split(t, s, order="listed"),
                "where two special tokens start at the same place, the longest wins, whatever the "
                "order of the list: sort them by length, longest first."),
    ]
    n = compare("split_on_special", split_on_special, _split_on_special, cases, mistakes)
    passed("split_on_special", n)
