"""minillm.tokenization: our byte-level BPE checked against the `tokenizers` library (same chunks,
same merges, same ids), round trips on arbitrary Unicode, deterministic training, and the wrappers'
special tokens, BERT template and error messages."""

from __future__ import annotations

import unicodedata

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
# Text on which Python's `re` and the library's regex engine agree (see pretokenize's docstring).
_DIVERGENT = {chr(c) for c in range(0x1C, 0x20)}
COMMON_TEXT = st.lists(
    st.one_of(
        st.characters(exclude_categories=("No", "Nl", "Cn", "Cs"), exclude_characters=_DIVERGENT),
        st.sampled_from(PIECES),
    ),
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


def test_pretokenize_documented_differences_are_real():
    # The docstring says where Python's `re` and GPT-2's pattern disagree; check it is not stale.
    assert unicodedata.category("²") == "No" and tk.pretokenize("x²") == ["x²"]
    assert "\x1c".isspace() and tk.pretokenize(" \x1c") == [" \x1c"]


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
    with pytest.raises(ValueError, match="at least 256"):
        tk.BPETokenizer.train("hello", vocab_size=255)
    with pytest.raises(TypeError, match="vocab_size must be an int"):
        tk.BPETokenizer.train("hello", vocab_size=300.0)
    with pytest.raises(ValueError, match="empty text"):
        tk.BPETokenizer.train("", vocab_size=300)
    with pytest.raises(TypeError, match="text must be a str, got bytes"):
        tk.BPETokenizer.train(b"hello", vocab_size=300)
    with pytest.raises(ValueError, match=r"lone surrogate '\\ud800' \(U\+D800\) at index 2"):
        tk.BPETokenizer().encode("ab\ud800")
    with pytest.raises(ValueError, match=r"merge 1 must be a pair of ids in \[0, 257\)"):
        tk.BPETokenizer([(97, 98), (256, 257)])
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
