"""minillm.tokenization: our byte-level BPE checked against the `tokenizers` library (same chunks,
same merges, same ids), round trips on arbitrary Unicode, deterministic training, the fast trainer
against the naive one, special tokens, loading real vocabularies (and GPT-2's, from a local server),
streaming, and the wrappers' special tokens, BERT template and error messages."""

from __future__ import annotations

import http.server
import itertools
import json
import random
import socket
import subprocess
import sys
import threading
import tracemalloc
import unicodedata
from collections import Counter
from functools import partial

import pytest
import tokenizers
import torch
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from tokenizers import pre_tokenizers

from minillm import tokenization as tk
from minillm.data import load_tiny_shakespeare

# Text as hard as we can make it: any code point hypothesis draws (it never draws lone surrogates),
# mixed with emoji sequences (skin tones, zero-width joiners, variation selectors), combining accents,
# CJK, and the whitespace and apostrophes the pre-tokenizer cares about.
PIECES = ["🙂", "👍🏽", "👨\u200d👩\u200d👧", "❤\ufe0f", "e\u0301", "\u0301", "中文", "Ω", " ", "  ", "\n", "\r\n", "\t", "'s", "'ll", "_", "1984"]
ANY_TEXT = st.lists(st.one_of(st.characters(codec="utf-8"), st.sampled_from(PIECES)), max_size=40).map("".join)
# Text of characters assigned in Python's Unicode database: the `regex` module and the library's
# regex engine may classify characters assigned in later Unicode versions differently.
COMMON_TEXT = st.lists(
    st.one_of(st.characters(exclude_categories=("Cn", "Cs")), st.sampled_from(PIECES)),
    max_size=40,
).map("".join)
SLOW = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
HARD_CASES = ["", " ", "🙂", "e\u0301", "👨\u200d👩\u200d👧", " leading", "trailing  ", "\r\n\r\n", "\x00", "a'sb'S", "<|endoftext|>"]


@pytest.fixture(scope="module")
def shakespeare(data_dir) -> str:
    return load_tiny_shakespeare()


@pytest.fixture(scope="module")
def our_bpe(shakespeare) -> tk.BPETokenizer:
    return tk.BPETokenizer.train(shakespeare[:50_000], vocab_size=384)


@pytest.fixture(scope="module")
def library_bpe(shakespeare) -> tokenizers.Tokenizer:
    return tk.train_bpe(shakespeare[:200_000], vocab_size=1024)


@pytest.fixture(scope="module")
def wordpiece(shakespeare) -> tokenizers.Tokenizer:
    return tk.train_wordpiece(shakespeare[:200_000], vocab_size=1000)


def _library_tokens(tokenizer: tokenizers.Tokenizer) -> list[str]:
    return sorted(tokenizer.get_vocab(), key=tokenizer.token_to_id)


# --- CharTokenizer -----------------------------------------------------------------------------

def test_char_tokenizer_on_shakespeare(shakespeare):
    tok = tk.CharTokenizer.from_text(shakespeare)
    assert tok.vocab_size == len(tok) == 65
    assert tok.itos == sorted(set(shakespeare)) and tok.stoi["\n"] == 0 and tok.stoi[" "] == 1
    ids = tok.encode(shakespeare)
    assert len(ids) == len(shakespeare) and min(ids) == 0 and max(ids) == 64
    assert tok.decode(ids) == shakespeare
    assert tok.decode(torch.tensor(ids[:1000])) == shakespeare[:1000]


@given(st.text(min_size=1))
def test_char_tokenizer_round_trips_any_text(s):
    tok = tk.CharTokenizer.from_text(s)
    assert tok.decode(tok.encode(s)) == s and tok.vocab_size == len(set(s))


def test_char_tokenizer_names_unknown_characters():
    tok = tk.CharTokenizer.from_text("abc ")
    with pytest.raises(ValueError) as info:
        tok.encode("a céb 🙂")
    message = str(info.value)
    assert "'é' (U+00E9 LATIN SMALL LETTER E WITH ACUTE) at index 3" in message
    assert "U+1F642" in message and "2 character(s)" in message and "knows 4 characters" in message


def test_char_tokenizer_errors():
    with pytest.raises(ValueError, match="empty text"):
        tk.CharTokenizer.from_text("")
    with pytest.raises(ValueError, match="more than once"):
        tk.CharTokenizer(["a", "b", "a"])
    with pytest.raises(ValueError, match="single characters"):
        tk.CharTokenizer(["ab"])
    tok = tk.CharTokenizer("ab")
    with pytest.raises(TypeError, match="decode bytes first"):
        tok.encode(b"ab")
    with pytest.raises(ValueError, match=r"id 2 at position 1 is outside the vocabulary: ids lie in \[0, 2\)"):
        tok.decode([0, 2])
    with pytest.raises(TypeError, match="integers"):
        tok.decode(["a"])
    with pytest.raises(TypeError, match="integers"):
        tok.decode(torch.zeros(2, 2, dtype=torch.long))  # one sequence, not a batch
    with pytest.raises(TypeError, match="sequence of integer token ids"):
        tok.decode(3)


# --- BPE building blocks -----------------------------------------------------------------------

def test_pair_counts_and_merge_pair_by_hand():
    assert tk.pair_counts([1, 2, 1, 2]) == {(1, 2): 2, (2, 1): 1}
    counts = tk.pair_counts([1, 2], weight=5)
    assert tk.pair_counts([1, 2, 3], counts, weight=2) == {(1, 2): 7, (2, 3): 2}
    assert tk.pair_counts([7]) == {} and tk.pair_counts([]) == {}
    assert tk.merge_pair([5, 5, 5], (5, 5), 256) == [256, 5]
    assert tk.merge_pair([5, 5, 5, 5], (5, 5), 256) == [256, 256]
    assert tk.merge_pair([1, 2, 3, 1, 2], (1, 2), 300) == [300, 3, 300]


@given(st.lists(st.integers(0, 3), max_size=30), st.integers(0, 3), st.integers(0, 3))
def test_merge_pair_agrees_with_str_replace(ids, a, b):
    # str.replace also replaces non-overlapping occurrences from left to right: an independent oracle.
    as_text = "".join(map(chr, ids)).replace(chr(a) + chr(b), chr(99))
    assert tk.merge_pair(ids, (a, b), 99) == [ord(c) for c in as_text]


def test_byte_to_unicode_is_the_library_alphabet():
    stand_in = tk.byte_to_unicode()
    assert sorted(stand_in) == list(range(256)) and len(set(stand_in.values())) == 256
    assert set(stand_in.values()) == set(pre_tokenizers.ByteLevel.alphabet())
    assert stand_in[32] == "Ġ" and stand_in[10] == "Ċ" and stand_in[ord("a")] == "a"
    # every byte of a string, mapped as the library maps it
    s = "a é\n🙂"
    library = "".join(w for w, _ in pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False).pre_tokenize_str(s))
    assert "".join(stand_in[b] for b in s.encode("utf-8")) == library


@given(ANY_TEXT)
@example("Thou'rt  a villain, sir; 'tis 1000 times   true!\n\nKING:")
def test_pretokenize_covers_the_text(s):
    assert "".join(tk.pretokenize(s)) == s


@given(COMMON_TEXT)
@example("Thou'rt  a villain, sir; 'tis 1000 times   true!\n\nKING:")
@example("don't   stop\t\n  x_y __init__ 3.14")
def test_pretokenize_agrees_with_the_library(s):
    stand_in = tk.byte_to_unicode()
    ours = ["".join(stand_in[b] for b in chunk.encode("utf-8")) for chunk in tk.pretokenize(s)]
    library = [w for w, _ in pre_tokenizers.ByteLevel(add_prefix_space=False).pre_tokenize_str(s)]
    assert ours == library


@pytest.mark.slow
def test_pretokenize_agrees_with_the_library_on_every_assigned_character():
    # Every character Python's Unicode database knows, in the contexts the pattern cares about:
    # after a letter, doubled, after a space, before a digit. Compared by where chunks end.
    chars = [chr(c) for c in range(0x110000) if unicodedata.category(chr(c)) not in ("Cn", "Cs")]
    text = "\n".join(f"a{c}{c} {c}1" for c in chars)
    ours = list(itertools.accumulate(map(len, tk.pretokenize(text))))
    library = pre_tokenizers.ByteLevel(add_prefix_space=False).pre_tokenize_str(text)
    assert ours == [end for _, (_, end) in library]
    assert tk.pretokenize("x² ½ Ⅻ \x1c") == ["x", "²", " ½", " Ⅻ", " \x1c"]  # numerals; U+001C


def test_the_ascii_shortcut_cuts_as_gpt2s_pattern():
    ascii_chars = [chr(c) for c in range(128)]
    for a, b in itertools.product(ascii_chars, repeat=2):
        s = f"x{a}{b}{a} {b}"
        assert tk._ASCII_SPLIT.findall(s) == tk.SPLIT_PATTERN.findall(s), repr(s)
    rng = random.Random(0)
    alphabet = "aZ09 '\t\n\r\x0b\x0c\x1c\x1f_!.-sdmtlrve"
    for _ in range(3000):
        s = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 30)))
        assert tk._ASCII_SPLIT.findall(s) == tk.SPLIT_PATTERN.findall(s), repr(s)


# --- Our BPETokenizer --------------------------------------------------------------------------

def test_training_by_hand():
    bpe = tk.BPETokenizer.train("abababab", vocab_size=260)
    # (a, b) occurs 4 times and (b, a) 3 times; then (ab, ab) 3 times; then (abab, abab) once.
    assert bpe.merges == [(97, 98), (256, 256), (257, 257)]
    assert bpe.vocab[256:] == [b"ab", b"abab", b"abababab"]
    assert bpe.encode("abababab") == [258] and bpe.encode("aba") == [256, 97] and bpe.encode("ba") == [98, 97]
    assert bpe.vocab_size == 259  # it stopped early: nothing is left to merge


def test_training_stays_inside_chunks():
    bpe = tk.BPETokenizer.train("ab ab ab ab", vocab_size=300)
    assert all(b" " not in token[1:] for token in bpe.vocab)  # a space only ever starts a token
    assert bpe.encode(" ab") == [bpe.vocab.index(b" ab")]


def test_our_merges_are_the_library_merges_on_shakespeare(shakespeare):
    ours = tk.BPETokenizer.train(shakespeare[:50_000], vocab_size=400)
    library = tk.train_bpe(shakespeare[:50_000], vocab_size=400, special_tokens=())
    assert _library_tokens(library)[256:] == [ours.id_to_token(i) for i in range(256, 400)]


@SLOW
@given(COMMON_TEXT.filter(lambda s: len(s) > 3), st.integers(256, 300))
@example("aaaa bbbb aaaa", 270)
@example("tie tie tie", 300)
def test_our_merges_are_the_library_merges_on_any_text(s, vocab_size):
    ours = tk.BPETokenizer.train(s, vocab_size=vocab_size)
    library = tk.train_bpe(s, vocab_size=vocab_size, special_tokens=())
    assert _library_tokens(library)[256:] == [ours.id_to_token(i) for i in range(256, ours.vocab_size)]


@SLOW
@given(ANY_TEXT.filter(len), st.integers(256, 290))
def test_training_is_deterministic(s, vocab_size):
    first = tk.BPETokenizer.train(s, vocab_size)
    assert tk.BPETokenizer.train(s, vocab_size).merges == first.merges
    assert tk.BPETokenizer(first.merges).vocab == first.vocab


@given(ANY_TEXT)
@example("naïve café 中文 🙂👍🏽 \t\r\n")
def test_our_bpe_round_trips_any_text(our_bpe, s):
    assert our_bpe.decode(our_bpe.encode(s), errors="strict") == s


@pytest.mark.parametrize("s", HARD_CASES)
def test_our_bpe_round_trips_hard_cases(our_bpe, s):
    assert our_bpe.decode(our_bpe.encode(s)) == s


@given(COMMON_TEXT)
@example("O Romeo, Romeo! wherefore art thou Romeo?\n")
def test_our_encoder_agrees_with_the_library_engine(our_bpe, s):
    assert our_bpe.to_tokenizers().encode(s).ids == our_bpe.encode(s)


def test_our_encoder_agrees_with_the_library_engine_on_shakespeare(our_bpe, shakespeare):
    val = shakespeare[-100_000:]
    rust = our_bpe.to_tokenizers()
    assert rust.encode(val).ids == our_bpe.encode(val)
    assert rust.decode(our_bpe.encode(val)) == val


def test_encoding_uses_the_cache_consistently(our_bpe):
    fresh = tk.BPETokenizer(our_bpe.merges)
    text = "the the the thee thou"
    assert fresh.encode(text) == fresh.encode(text) == our_bpe.encode(text)


def test_bpe_decode_of_a_cut_character():
    bpe = tk.BPETokenizer()  # bytes only
    ids = bpe.encode("🙂")
    assert ids == [240, 159, 153, 130]
    assert bpe.decode(ids[:3]) == "\ufffd"
    with pytest.raises(UnicodeDecodeError):
        bpe.decode(ids[:3], errors="strict")
    assert bpe.id_to_token(32) == "Ġ"


def test_bpe_errors():
    with pytest.raises(ValueError, match=r"vocab_size=255 is smaller than the alphabet: it must be at least 256"):
        tk.BPETokenizer.train("hello", vocab_size=255)
    with pytest.raises(TypeError, match="vocab_size must be an int"):
        tk.BPETokenizer.train("hello", vocab_size=300.0)
    with pytest.raises(ValueError, match="empty text"):
        tk.BPETokenizer.train("", vocab_size=300)
    with pytest.raises(TypeError, match="text must be a str, got bytes"):
        tk.BPETokenizer.train(b"hello", vocab_size=300)
    with pytest.raises(ValueError, match=r"lone surrogate '\\ud800' \(U\+D800\) at index 2"):
        tk.BPETokenizer().encode("ab\ud800")
    with pytest.raises(ValueError, match=r"merge 1 must be a pair of ids .*in \[0, 257\)\), got \(256, 257\)"):
        tk.BPETokenizer([(97, 98), (256, 257)])
    with pytest.raises(ValueError, match="method must be 'fast' or 'naive', got 'quick'"):
        tk.BPETokenizer.train("hello", vocab_size=300, method="quick")
    with pytest.raises(ValueError, match="repeats the pair"):
        tk.BPETokenizer([(97, 98), (97, 98)])
    with pytest.raises(ValueError, match="outside the vocabulary"):
        tk.BPETokenizer().decode([256])


# --- train_bpe ---------------------------------------------------------------------------------

def test_train_bpe_vocabulary_and_special_token(library_bpe):
    assert isinstance(library_bpe, tokenizers.Tokenizer) and library_bpe.get_vocab_size() == 1024
    special = tk.special_token_ids(library_bpe)
    assert special == tk.SpecialTokenIds(eos=0) and special.all() == [0]
    assert library_bpe.id_to_token(0) == "<|endoftext|>"
    ids = library_bpe.encode("The end.<|endoftext|>The start.").ids
    assert ids.count(0) == 1  # the special token is never split
    assert set(pre_tokenizers.ByteLevel.alphabet()) <= set(library_bpe.get_vocab())


@given(ANY_TEXT)
@example("naïve café 中文 🙂👍🏽 \t\r\n")
def test_train_bpe_round_trips_any_text(library_bpe, s):
    assert library_bpe.decode(library_bpe.encode(s).ids, skip_special_tokens=False) == s


@pytest.mark.parametrize("s", HARD_CASES)
def test_train_bpe_round_trips_hard_cases(library_bpe, s):
    assert library_bpe.decode(library_bpe.encode(s).ids, skip_special_tokens=False) == s


def test_train_bpe_accepts_any_iterable_of_strings(shakespeare):
    lines = shakespeare[:20_000].splitlines(keepends=True)
    from_list = tk.train_bpe(lines, vocab_size=300)
    from_generator = tk.train_bpe((line for line in lines), vocab_size=300)
    assert from_list.to_str() == from_generator.to_str()


def test_train_bpe_is_deterministic(shakespeare):
    runs = {tk.train_bpe(shakespeare[:100_000], vocab_size=600).to_str() for _ in range(3)}
    assert len(runs) == 1


def test_train_bpe_save_and_load(library_bpe, tmp_path, shakespeare):
    path = tmp_path / "bpe.json"
    library_bpe.save(str(path))
    again = tokenizers.Tokenizer.from_file(str(path))
    text = shakespeare[-5000:] + " 🙂"
    assert again.encode(text).ids == library_bpe.encode(text).ids
    assert tk.special_token_ids(again) == tk.special_token_ids(library_bpe)


def test_train_bpe_errors():
    with pytest.raises(ValueError, match=r"vocab_size=200 is smaller than the alphabet: it must be at least 257 \(the 256 bytes and 1 special token"):
        tk.train_bpe("hello world", vocab_size=200)
    for empty in ["", [], ["", ""]]:
        with pytest.raises(ValueError, match="the corpus is empty"):
            tk.train_bpe(empty, vocab_size=300)
    assert tk.train_bpe("  \n", vocab_size=300).decode(tk.train_bpe("  \n", vocab_size=300).encode(" ").ids) == " "
    with pytest.raises(TypeError, match="texts must be a str or an iterable of str, got int"):
        tk.train_bpe(123, vocab_size=300)
    with pytest.raises(TypeError, match=r"texts\[1\] must be a str, got bytes"):
        tk.train_bpe(["ok", b"bytes"], vocab_size=300)
    with pytest.raises(ValueError, match=r"texts\[0\] cannot be encoded as UTF-8"):
        tk.train_bpe(["bad \udc80 text"], vocab_size=300)
    with pytest.raises(TypeError, match="vocab_size must be an int"):
        tk.train_bpe("hello", vocab_size="300")
    with pytest.raises(TypeError, match="not one string"):
        tk.train_bpe("hello", vocab_size=300, special_tokens="<|endoftext|>")
    with pytest.raises(ValueError, match="distinct non-empty strings"):
        tk.train_bpe("hello", vocab_size=300, special_tokens=["<s>", "<s>"])


# --- train_wordpiece ---------------------------------------------------------------------------

def test_wordpiece_special_tokens_and_bert_template(wordpiece):
    special = tk.special_token_ids(wordpiece)
    assert special == tk.SpecialTokenIds(pad=0, unk=1, cls=2, sep=3, mask=4) and special.all() == [0, 1, 2, 3, 4]
    assert [wordpiece.id_to_token(i) for i in range(5)] == list(tk.BERT_SPECIAL_TOKENS)
    a, b = "Wherefore art thou Romeo?", "Deny thy father and refuse thy name."
    ids_a = wordpiece.encode(a, add_special_tokens=False).ids
    ids_b = wordpiece.encode(b, add_special_tokens=False).ids
    single = wordpiece.encode(a)
    assert single.ids == [2, *ids_a, 3] and single.type_ids == [0] * (len(ids_a) + 2)
    pair = wordpiece.encode(a, b)
    assert pair.ids == [2, *ids_a, 3, *ids_b, 3]
    assert pair.type_ids == [0] * (len(ids_a) + 2) + [1] * (len(ids_b) + 1)
    assert pair.special_tokens_mask == [1] + [0] * len(ids_a) + [1] + [0] * len(ids_b) + [1]
    assert wordpiece.decode(pair.ids) == "wherefore art thou romeo? deny thy father and refuse thy name."


def test_wordpiece_pieces_and_unknown_words(wordpiece):
    vocab = wordpiece.get_vocab()
    tokens = wordpiece.encode("unbelievable Capulets", add_special_tokens=False).tokens
    assert len(tokens) > 2 and all(t in vocab for t in tokens) and tokens[1].startswith("##")
    assert "".join(t.removeprefix("##") for t in tokens) == "unbelievablecapulets"
    assert wordpiece.encode("🙂", add_special_tokens=False).tokens == ["[UNK]"]
    # only BERT's five tokens are special: a literal "##a" in the text is ordinary text
    assert "##e" in wordpiece.get_vocab() and "#" not in wordpiece.get_vocab()
    assert wordpiece.encode("##e", add_special_tokens=False).tokens == ["[UNK]", "[UNK]", "e"]
    assert sorted(wordpiece.get_added_tokens_decoder()) == [0, 1, 2, 3, 4]


def test_wordpiece_lowercase_option(shakespeare):
    cased = tk.train_wordpiece(shakespeare[:50_000], vocab_size=500, lowercase=False)
    assert "Romeo" in cased.decode(cased.encode("Romeo").ids)
    assert any(t[:1].isupper() for t in cased.get_vocab())


def test_wordpiece_training_is_deterministic(shakespeare):
    # The library's WordPiece trainer alone is not (it numbers the ## alphabet in hash-map order).
    runs = {tk.train_wordpiece(shakespeare[:100_000], vocab_size=800).to_str() for _ in range(4)}
    assert len(runs) == 1


def test_wordpiece_save_and_load_keeps_the_template(wordpiece, tmp_path):
    path = tmp_path / "wordpiece.json"
    wordpiece.save(str(path))
    again = tokenizers.Tokenizer.from_file(str(path))
    for enc_a, enc_b in [(again.encode("To be", "or not"), wordpiece.encode("To be", "or not"))]:
        assert (enc_a.ids, enc_a.type_ids) == (enc_b.ids, enc_b.type_ids)


def test_wordpiece_errors(shakespeare):
    with pytest.raises(ValueError) as info:
        tk.train_wordpiece(shakespeare[:20_000], vocab_size=40)
    message = str(info.value)
    assert "vocab_size=40 is smaller than the alphabet of this corpus: it needs at least" in message
    needed = int(message.split("at least ")[1].split()[0])
    assert tk.train_wordpiece(shakespeare[:20_000], vocab_size=needed).get_vocab_size() == needed
    with pytest.raises(ValueError, match=r"at least 6 \(the 5 special tokens and a character\)"):
        tk.train_wordpiece("hello", vocab_size=5)
    with pytest.raises(ValueError, match="the corpus is empty"):
        tk.train_wordpiece([""], vocab_size=100)
    with pytest.raises(ValueError, match="empty after normalization"):
        tk.train_wordpiece(["   ", "\n"], vocab_size=100)
    with pytest.raises(ValueError, match="empty after normalization"):
        tk.train_wordpiece("\x00\x01", vocab_size=100)


# --- special_token_ids and encode_strict -------------------------------------------------------

def test_special_token_ids_type_error():
    with pytest.raises(TypeError, match="tokenizers.Tokenizer, got CharTokenizer"):
        tk.special_token_ids(tk.CharTokenizer("ab"))


def test_encode_strict(wordpiece, library_bpe):
    fine = tk.encode_strict(wordpiece, "To be, or not to be", "that is the question")
    assert fine.ids == wordpiece.encode("To be, or not to be", "that is the question").ids
    with pytest.raises(ValueError) as info:
        tk.encode_strict(wordpiece, "Juliet smiles 🙂", "¡Olé!")
    message = str(info.value)
    assert "cannot encode 2 piece(s)" in message and "[UNK]" in message
    assert "'🙂' at index 14 of text" in message and "'¡' at index 0 of pair" in message
    text = "anything at all 🙂 \ud7ff"
    assert tk.encode_strict(library_bpe, text).ids == library_bpe.encode(text).ids  # byte-level: never unknown
    with pytest.raises(TypeError, match="pair must be a str, got int"):
        tk.encode_strict(wordpiece, "a", 3)
    with pytest.raises(TypeError, match="tokenizers.Tokenizer"):
        tk.encode_strict("not a tokenizer", "a")
    with pytest.raises(ValueError, match="lone surrogate"):
        tk.encode_strict(library_bpe, "\udfff")


# --- the fast trainer ----------------------------------------------------------------------------

def _merges_both_ways(text: str, n_merges: int):
    chunks = tk.count_chunks(text)
    return tk.learn_merges_fast(chunks, n_merges), tk.learn_merges_naive(chunks, n_merges)


@pytest.mark.parametrize("text", [
    "ab ba ab ba aa bb ba ab",  # ties everywhere
    "aaaa aaa aa a aaaaaaa",  # overlapping occurrences of one pair
    "abababab cdcdcdcd abcdabcd",
    "naïve café 中文 中国 🙂🙂 👍🏽 ааа aaa 1984 ½ x_y __init__",
    "tie tie tie",
])
def test_fast_and_naive_trainers_learn_the_same_merges(text):
    fast, naive = _merges_both_ways(text * 3, 200)
    assert fast == naive and len(fast) > 3


@SLOW
@given(st.lists(st.sampled_from(["a", "b", "ab", "ba", "aa", " a", " ", "é", "🙂", "x", "\n"]),
                min_size=1, max_size=60).map("".join), st.integers(1, 60))
def test_fast_and_naive_trainers_agree_on_any_small_alphabet(text, n_merges):
    fast, naive = _merges_both_ways(text, n_merges)
    assert fast == naive


@pytest.mark.slow
def test_fast_trainer_on_shakespeare(shakespeare, our_bpe):
    assert tk.BPETokenizer.train(shakespeare[:50_000], 384).merges == our_bpe.merges
    naive = tk.BPETokenizer.train(shakespeare[:50_000], 384, method="naive")
    assert naive.merges == our_bpe.merges
    fast, naive = _merges_both_ways(shakespeare[:30_000], 600)  # late merges: counts tie often
    assert fast == naive and len(fast) == 600


def test_tie_break_is_the_documented_rule():
    # "ab" and "cd" occur equally often; bytes are ordered by their stand-ins, so the pair of
    # smaller stand-ins wins: here (a, b), whatever the order of the text.
    assert tk.BPETokenizer.train("cd ab", 257).merges == [(97, 98)]
    # a byte shifted to U+0100 and up (the space, Ġ) comes after every printable byte
    assert tk.BPETokenizer.train("zz \x00\x00", 257).merges == [(122, 122)]
    assert tk._pair_order((32, 97)) > tk._pair_order((255, 97)) > tk._pair_order((33, 97))
    assert tk._pair_order((256, 0)) > tk._pair_order((32, 0))  # merged tokens after the bytes


# --- special tokens ------------------------------------------------------------------------------

EOT = tk.END_OF_TEXT
SPECIAL_CASES = [
    "The end.<|endoftext|>The start.",
    EOT, EOT * 2, EOT * 3, EOT * 5,  # overlapping: the double token wins, left to right
    "<|endoftext|><|user|><|endoftext|>",  # adjacent, different tokens
    "é<|endoftext|>́🙂<|endoftext|>中",  # a combining accent right after a special token
    "x<|endoftext|y", "<|endoftext", "<<|endoftext|>>", "<|endoftext|>\n\n<|user|> ",
    "it'<|endoftext|>ll be", "  <|endoftext|>  ",
]


@pytest.fixture(scope="module")
def special_bpe(our_bpe) -> tk.BPETokenizer:
    return tk.BPETokenizer(our_bpe.merges, special_tokens=[EOT, EOT * 2, "<|user|>"])


@pytest.mark.parametrize("s", SPECIAL_CASES)
def test_special_tokens_agree_with_the_library(special_bpe, s):
    ids = special_bpe.encode(s)
    assert special_bpe.to_tokenizers().encode(s).ids == ids
    assert special_bpe.decode(ids) == s


def test_special_tokens_ids_and_longest_match(special_bpe, our_bpe):
    assert special_bpe.special_tokens == {EOT: 384, EOT * 2: 385, "<|user|>": 386}
    assert special_bpe.vocab_size == 387 and special_bpe.vocab[:384] == our_bpe.vocab
    assert special_bpe.encode(EOT * 3) == [385, 384]
    assert special_bpe.encode("a" + EOT + "b") == [*our_bpe.encode("a"), 384, *our_bpe.encode("b")]
    assert special_bpe.id_to_token(385) == EOT * 2 and "special_tokens=" in repr(special_bpe)
    # without special tokens, the marker is ordinary text: several tokens, none of them special
    assert len(our_bpe.encode(EOT)) > 3 and special_bpe.encode(EOT, allow_special=False) == our_bpe.encode(EOT)


@given(st.lists(st.one_of(ANY_TEXT, st.sampled_from([EOT, EOT * 2, "<|user|>", "<|", "|>"])),
                max_size=6).map("".join))
def test_special_tokens_round_trip_and_never_split(special_bpe, s):
    ids = special_bpe.encode(s)
    assert special_bpe.decode(ids, errors="strict") == s
    assert ids.count(384) + 2 * ids.count(385) == s.count(EOT)
    assert ids.count(386) == s.count("<|user|>") and max(ids, default=0) <= 386


def test_training_reserves_special_tokens(shakespeare):
    documents = EOT.join(shakespeare[k : k + 300] for k in range(0, 60_000, 300))
    tok = tk.BPETokenizer.train(documents, 400, special_tokens=[EOT, "<|pad|>"])
    assert tok.special_tokens == {EOT: 398, "<|pad|>": 399} and tok.vocab_size == 400
    learned = [tok.vocab[i] for i in range(256, 398)]
    assert not any(piece in token for token in learned for piece in (b"<|", b"|>", b"oftext"))
    assert tok.encode(EOT) == [398] and tok.decode(tok.encode(documents)) == documents
    # the chunks are those of each document on its own: none crosses a document boundary
    separate = Counter()
    for k in range(0, 60_000, 300):
        separate.update(tk.count_chunks(shakespeare[k : k + 300]))
    assert tk.count_chunks(documents, [EOT]) == separate
    with pytest.raises(ValueError, match="holds only special tokens"):
        tk.BPETokenizer.train(EOT * 3, 300, special_tokens=[EOT])


def test_chat_tokens(special_bpe, our_bpe):
    chat = special_bpe.with_special_tokens(tk.CHAT_TOKENS)
    assert tk.CHAT_TOKENS == ("<|user|>", "<|assistant|>", "<|end|>")
    # existing ids stay; the new markers take the next ids; <|user|> was special already
    assert chat.special_tokens == {EOT: 384, EOT * 2: 385, "<|user|>": 386, "<|assistant|>": 387, "<|end|>": 388}
    turn = "<|user|>Who's there?<|end|><|assistant|>Nay, answer me.<|end|>"
    ids = chat.encode(turn)
    assert [i for i in ids if i >= 384] == [386, 388, 387, 388] and chat.decode(ids) == turn
    assert chat.encode("Who's there?") == our_bpe.encode("Who's there?")
    assert our_bpe.with_special_tokens([]).special_tokens == {}
    assert chat.to_tokenizers().encode(turn).ids == ids


def test_special_token_errors(our_bpe):
    with pytest.raises(TypeError, match=r"special_tokens must be a list of strings such as \['<\|endoftext\|>'\]"):
        tk.BPETokenizer(special_tokens=EOT)
    with pytest.raises(ValueError, match="lists a token twice"):
        tk.BPETokenizer(special_tokens=[EOT, EOT])
    with pytest.raises(ValueError, match="at least one character"):
        tk.BPETokenizer(special_tokens=[""])
    with pytest.raises(TypeError, match="a special token must be a str, got int"):
        tk.BPETokenizer(special_tokens=[3])
    with pytest.raises(ValueError, match=r"special token '<s>' needs an id of its own, got 97"):
        tk.BPETokenizer(special_tokens={"<s>": 97})
    with pytest.raises(ValueError, match="no token has id 256"):
        tk.BPETokenizer(special_tokens={"<s>": 257})
    with pytest.raises(TypeError, match=r"tokens must be a list of strings such as \['<\|end\|>'\]"):
        our_bpe.with_special_tokens("<|end|>")
    with pytest.raises(TypeError, match="special_tokens must be a list"):
        tk.BPETokenizer.train("hello", 300, special_tokens=EOT)
    with pytest.raises(ValueError, match=r"at least 258 \(the 256 bytes and 2 special token\(s\)\)"):
        tk.BPETokenizer.train("hello", 257, special_tokens=[EOT, "<|pad|>"])


# --- real vocabularies ---------------------------------------------------------------------------

_WORDS = {
    "english": ["the", "Romeo", "don't", "we'll", "it's", "THEY'RE", "wherefore", "art", "thou"],
    "chinese": ["语言", "模型", "分词器", "词元", "中文", "数据", "训练", "，", "。"],
    "japanese": ["日本語", "ひらがな", "カタカナ", "東京"],
    "cyrillic": ["привет", "мир", "токен", "Ёлка"],
    "arabic": ["مرحبا", "عالم", "٣٤"],
    "greek": ["λόγος", "Ωμέγα"],
    "devanagari": ["नमस्ते", "भाषा"],
    "emoji": ["🙂", "👍🏽", "👨\u200d👩\u200d👧", "❤\ufe0f", "🇫🇷", "🎉🎉"],
    "combining": ["e\u0301", "a\u0308b", "n\u0303", "\u0301\u0301", "Z\u0335\u0321"],
    "code": ["def", "f(x):", "return", "x_1", "==", "{}", "[0]", "__init__", "0x1F", "3.14", "->"],
    "numbers": ["1984", "²", "½", "Ⅻ", "42", "007"],
}
_SEPARATORS = [" ", " ", " ", "  ", "   ", "\n", "\n\n", "\n\n\n", "\t", " \n ", "\r\n", ", ", ". ",
               "", "'s ", "'ll ", "    ", "\n    "]
_UNSEEN = [(0x4E00, 0x9FFF), (0x1F300, 0x1F64F), (0x0400, 0x04FF), (0x00C0, 0x024F), (0x0300, 0x036F)]


def _multilingual(seed: int, n_bytes: int, specials: bool = False) -> str:
    """A deterministic mixture of scripts, emoji, combining marks, code, numbers and whitespace
    runs; with a few random characters from whole Unicode blocks, which training may not see."""
    rng = random.Random(seed)
    parts, size = [], 0
    while size < n_bytes:
        if rng.random() < 0.08:
            lo, hi = rng.choice(_UNSEEN)
            word = "".join(chr(rng.randint(lo, hi)) for _ in range(rng.randint(1, 4)))
        else:
            word = rng.choice(_WORDS[rng.choice(list(_WORDS))])
        part = word + rng.choice(_SEPARATORS)
        if specials and rng.random() < 0.01:
            part += EOT
        parts.append(part)
        size += len(part.encode("utf-8"))
    return "".join(parts)


@pytest.fixture(scope="module")
def multilingual_library() -> tokenizers.Tokenizer:
    return tk.train_bpe(_multilingual(seed=1, n_bytes=300_000), vocab_size=3000)


@pytest.fixture(scope="module")
def held_out() -> str:
    text = _multilingual(seed=2, n_bytes=120_000, specials=True)
    assert len(text.encode("utf-8")) >= 100_000
    return text


def test_loaded_vocabularies_give_the_library_ids_on_held_out_text(multilingual_library, held_out, tmp_path):
    multilingual_library.model.save(str(tmp_path))  # vocab.json and merges.txt, GPT-2's format
    multilingual_library.save(str(tmp_path / "tokenizer.json"))
    from_files = tk.BPETokenizer.from_files(tmp_path / "vocab.json", tmp_path / "merges.txt")
    from_json = tk.BPETokenizer.from_tokenizers_json(tmp_path / "tokenizer.json")
    expected = multilingual_library.encode(held_out).ids
    assert len(expected) > 20_000 and expected.count(0) > 10  # <|endoftext|> is id 0 here
    for loaded in (from_files, from_json):
        assert loaded.vocab_size == multilingual_library.get_vocab_size() > 2000
        assert loaded.special_tokens == {EOT: 0}
        assert loaded.encode(held_out) == expected
        assert loaded.decode(expected) == held_out
        assert loaded.byte_ids != list(range(256))  # the library numbers bytes by their stand-ins
    assert list(from_files.encode_iterable(held_out.splitlines(keepends=True))) == expected


def test_loading_gpt2_numbering_with_end_of_text_last(shakespeare, tmp_path):
    # GPT-2's files: the bytes, the merges, and <|endoftext|> as the last id, not listed as
    # special anywhere; by default an entry no byte or merge makes is a special token.
    library = tk.train_bpe(shakespeare[:100_000], vocab_size=600, special_tokens=())
    vocab = json.loads(library.to_str())["model"]["vocab"]
    vocab[EOT] = len(vocab)
    merges = [" ".join(m) for m in json.loads(library.to_str())["model"]["merges"]]
    (tmp_path / "vocab.json").write_text(json.dumps(vocab))
    (tmp_path / "merges.txt").write_text("#version: 0.2\n" + "\n".join(merges) + "\n")
    gpt2_like = tk.BPETokenizer.from_files(tmp_path / "vocab.json", tmp_path / "merges.txt")
    assert gpt2_like.special_tokens == {EOT: 600} and gpt2_like.vocab_size == 601
    eot_as_text = library.encode(EOT).ids
    plain = tk.BPETokenizer.from_files(tmp_path / "vocab.json", tmp_path / "merges.txt", special_tokens=[])
    assert plain.special_tokens == {} and plain.encode(EOT) == eot_as_text and len(eot_as_text) > 1
    text = shakespeare[-20_000:] + EOT + "🙂"
    library.add_special_tokens([EOT])
    assert gpt2_like.encode(text) == library.encode(text).ids


def test_from_vocab_errors():
    byte_vocab = {c: i for i, c in enumerate(sorted(tk.byte_to_unicode().values()))}
    with pytest.raises(ValueError, match=r"merge 0 \('a' \+ 'b'\) needs the token 'ab'"):
        tk.BPETokenizer.from_vocab(byte_vocab, ["a b"])
    with pytest.raises(ValueError, match="merge 0 must be two tokens"):
        tk.BPETokenizer.from_vocab(byte_vocab, ["a b c"])
    with pytest.raises(TypeError, match="vocab must map token strings to integer ids"):
        tk.BPETokenizer.from_vocab(list(byte_vocab), [])
    with pytest.raises(ValueError, match="the vocabulary has no token for byte b'a'"):
        tk.BPETokenizer.from_vocab({c: i for c, i in byte_vocab.items() if c != "a"}, [])
    with pytest.raises(ValueError, match="'中' is not written with GPT-2's byte stand-ins"):
        tk.BPETokenizer.from_vocab({**byte_vocab, "中": 256}, [])
    with pytest.raises(ValueError, match="no token has id 256"):
        tk.BPETokenizer.from_vocab({**byte_vocab, "ab": 257}, ["a b"])


def test_from_tokenizers_json_refuses_what_it_cannot_reproduce(tmp_path, wordpiece, library_bpe):
    wordpiece.save(str(tmp_path / "wordpiece.json"))
    with pytest.raises(ValueError, match="its model is 'WordPiece', not 'BPE'.*normalizes text"):
        tk.BPETokenizer.from_tokenizers_json(tmp_path / "wordpiece.json")
    saved = json.loads(library_bpe.to_str())
    saved["pre_tokenizer"]["add_prefix_space"] = True
    (tmp_path / "prefix.json").write_text(json.dumps(saved))
    with pytest.raises(ValueError, match="adds a space in front of the text"):
        tk.BPETokenizer.from_tokenizers_json(tmp_path / "prefix.json")


# --- from_pretrained: a local HTTP server stands in for Hugging Face -----------------------------

@pytest.fixture
def gpt2_like_server(tmp_path, library_bpe, monkeypatch):
    """Serves a trained tokenizer's vocab.json and merges.txt on 127.0.0.1, registered as
    "tiny"; the cache is an empty folder and MINILLM_DATA_DIR is unset."""
    www = tmp_path / "www"
    www.mkdir()
    library_bpe.model.save(str(www))
    requests: list[str] = []

    class Handler(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            requests.append(self.path)

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), partial(Handler, directory=str(www)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_address[1]}"
    files = {"vocab.json": f"{base}/vocab.json", "merges.txt": f"{base}/merges.txt"}
    monkeypatch.setitem(tk.PRETRAINED, "tiny", {"files": files, "vocab_size": 1024})
    monkeypatch.delenv("MINILLM_DATA_DIR", raising=False)
    monkeypatch.setenv("MINILLM_CACHE_DIR", str(tmp_path / "cache"))
    try:
        yield requests
    finally:
        server.shutdown()
        server.server_close()


def test_from_pretrained_downloads_once_then_reads_the_cache(gpt2_like_server, library_bpe, tmp_path):
    tok = tk.BPETokenizer.from_pretrained("tiny")
    assert sorted(gpt2_like_server) == ["/merges.txt", "/vocab.json"]
    assert (tmp_path / "cache" / "tokenizers" / "tiny" / "vocab.json").is_file()
    text = "The end.<|endoftext|>The start. 🙂"
    assert tok.encode(text) == library_bpe.encode(text).ids
    again = tk.BPETokenizer.from_pretrained("tiny")
    assert len(gpt2_like_server) == 2 and again.merges == tok.merges  # no new request


def test_from_pretrained_local_dir_and_data_dir(gpt2_like_server, library_bpe, tmp_path, monkeypatch):
    folder = tmp_path / "mine"
    folder.mkdir()
    library_bpe.model.save(str(folder))
    assert tk.BPETokenizer.from_pretrained("tiny", local_dir=folder).vocab_size == 1024
    with pytest.raises(tk.DataUnavailableError, match=r"has no vocab.json and no merges.txt.*local_dir is given"):
        tk.BPETokenizer.from_pretrained("tiny", local_dir=tmp_path / "empty")
    monkeypatch.setenv("MINILLM_DATA_DIR", str(tmp_path / "ready"))
    with pytest.raises(tk.DataUnavailableError, match="nothing is downloaded when MINILLM_DATA_DIR is set"):
        tk.BPETokenizer.from_pretrained("tiny")
    assert gpt2_like_server == []  # neither case touched the network


def test_from_pretrained_offline_names_the_urls_and_the_folder(tmp_path, monkeypatch):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()  # nothing listens there: the connection is refused, as when offline
    files = {name: f"http://127.0.0.1:{port}/{name}" for name in ("vocab.json", "merges.txt")}
    monkeypatch.setitem(tk.PRETRAINED, "gpt2", {"files": files, "vocab_size": 50_257})
    monkeypatch.delenv("MINILLM_DATA_DIR", raising=False)
    monkeypatch.setenv("MINILLM_CACHE_DIR", str(tmp_path / "cache"))
    with pytest.raises(tk.DataUnavailableError) as info:
        tk.BPETokenizer.from_pretrained("gpt2", timeout=5)
    message = str(info.value)
    assert files["vocab.json"] in message and files["merges.txt"] in message
    assert str(tmp_path / "cache" / "tokenizers" / "gpt2") in message and "local_dir=" in message
    assert "refused" in message.lower()
    assert not list((tmp_path / "cache" / "tokenizers" / "gpt2").glob("*"))  # nothing half-written


def test_from_pretrained_knows_gpt2s_canonical_files():
    files = tk.PRETRAINED["gpt2"]["files"]
    assert files == {
        "vocab.json": "https://huggingface.co/openai-community/gpt2/resolve/main/vocab.json",
        "merges.txt": "https://huggingface.co/openai-community/gpt2/resolve/main/merges.txt",
    }
    with pytest.raises(ValueError, match="unknown tokenizer 'gpt-5'; known: gpt2"):
        tk.BPETokenizer.from_pretrained("gpt-5")


def test_from_pretrained_rejects_files_of_the_wrong_size(gpt2_like_server, monkeypatch):
    monkeypatch.setitem(tk.PRETRAINED["tiny"], "vocab_size", 50_257)
    with pytest.raises(ValueError, match="give 1,024 tokens, but tiny has 50,257"):
        tk.BPETokenizer.from_pretrained("tiny")


# --- streaming -----------------------------------------------------------------------------------

@SLOW
@given(st.lists(st.one_of(ANY_TEXT, st.sampled_from([EOT, EOT * 2, "<|user|>", "\n\n", "'ll", " "])),
                max_size=8).map("".join), st.data())
def test_streaming_gives_the_ids_of_encode(special_bpe, s, data):
    cuts = sorted(data.draw(st.lists(st.integers(0, len(s)), max_size=12)))
    pieces = [s[i:j] for i, j in zip([0, *cuts], [*cuts, len(s)])]
    batch = data.draw(st.sampled_from([1, 3, 16, 1 << 16]))
    assert list(special_bpe.encode_iterable(pieces, batch_chars=batch)) == special_bpe.encode(s)


@pytest.mark.parametrize("pieces", [
    ["ROMEO:\n", "\nJULIET"],  # "\n\n" split between pieces
    ["a\n", "\n", "\n", "  b"],
    ["The end.<|endof", "text|>The start."],  # a special token split between pieces
    ["<|endoftext|>", "<|endoftext|>", "<|endoftext|>"],  # the double token spans pieces
    ["<", "|", "endoftext", "|", ">x"],
    ["we'", "ll", " see", "'", "s"],
    ["   ", "   ", "x"],
    ["中", "文", "🙂", "\u0301", "e", "\u0301"],
])
def test_streaming_across_seams(special_bpe, pieces):
    whole = special_bpe.encode("".join(pieces))
    assert list(special_bpe.encode_iterable(pieces, batch_chars=1)) == whole
    assert list(special_bpe.encode_iterable(iter(pieces))) == whole


def test_streaming_reads_lazily_and_its_memory_does_not_grow_with_the_text(our_bpe, shakespeare):
    lines = shakespeare.splitlines(keepends=True)
    consumed = []

    def endless():
        for k in itertools.count():
            consumed.append(k)
            yield lines[k % len(lines)]

    first = list(itertools.islice(our_bpe.encode_iterable(endless(), batch_chars=4096), 1000))
    assert first == our_bpe.encode("".join(lines[: len(consumed)]))[:1000]
    assert len(consumed) < 400  # it read about one batch, not the (endless) text

    def peak(n_lines: int) -> int:
        tracemalloc.start()
        for _ in our_bpe.encode_iterable((lines[k % len(lines)] for k in range(n_lines)), batch_chars=4096):
            pass
        result = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        return result

    peak(16_000)  # fill the chunk cache first: it holds every chunk seen, up to a cap
    small, large = peak(4000), peak(16_000)
    assert large < 1.5 * small + 200_000


def test_learner_errors():
    with pytest.raises(TypeError, match="chunk_counts must map each chunk .* got str"):
        tk.learn_merges_fast("some text", 10)
    for learn in (tk.learn_merges_fast, tk.learn_merges_naive):
        with pytest.raises(ValueError, match=r"n_merges must be an int >= 0, got -1"):
            learn({"ab": 1}, -1)
        assert learn({"ab": 2}, 0) == [] and learn({}, 5) == []


def test_streaming_errors(our_bpe):
    with pytest.raises(TypeError, match="not one str: encode a str with encode"):
        list(our_bpe.encode_iterable("a whole text"))
    with pytest.raises(TypeError, match="piece 1 of texts must be a str, got bytes"):
        list(our_bpe.encode_iterable(["ok", b"bytes"]))
    with pytest.raises(ValueError, match="piece 0 of texts cannot be encoded as UTF-8"):
        list(our_bpe.encode_iterable(["\ud800"]))
    with pytest.raises(ValueError, match="batch_chars must be an int >= 1, got 0"):
        list(our_bpe.encode_iterable(["a"], batch_chars=0))


# --- the benchmark scripts run (their numbers are not tested: they depend on the machine) ------

@pytest.mark.slow
def test_benchmark_scripts_run(root, data_dir):
    def run(script, *args):
        return subprocess.run([sys.executable, str(root / "benchmarks" / script), *args],
                              capture_output=True, text=True, check=True, cwd=root).stdout

    out = run("tokenizer_training.py", "--max-chars", "30000", "--vocab-size", "300", "--repeats", "1")
    assert "learned the same 44 merges" in out and "ours, naive" in out and "library (tokenizers" in out
    out = run("tokenizer_streaming.py", "--sizes", "0.2", "--whole-up-to", "0.2")
    assert out.count("stream") == 1 and out.count("whole") == 1
