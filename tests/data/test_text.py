from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from nntune.data import DataOptions, encode_split, encoder_from_json, load_data
from nntune.data._text import TextEncoder, load_text
from nntune.errors import ConfigError, DataError

from ..conftest import TEST_DATA

SMS = TEST_DATA / "sms_spam.tsv"  # 320 of the 5,574 messages (see files/README.md)


@pytest.fixture
def reviews_csv(tmp_path):
    path = tmp_path / "reviews.csv"
    pd.DataFrame({
        "review": ["Good film, good cast", "bad plot", "GOOD, really good!", "so bad", "", "fine, good"],
        "stars": ["pos", "neg", "pos", "neg", "neg", "pos"],
    }).to_csv(path, index=False)
    return path


def test_reads_texts_and_labels_from_a_csv_with_header(reviews_csv):
    data = load_text(reviews_csv, text_column="review", target="stars", seq_len=8)
    assert data.kind == "text" and data.task == "binary" and data.classes == ["neg", "pos"]
    assert data.features.dtype == object and data.features[4] == ""  # an empty text stays
    assert data.y.tolist() == [1, 0, 1, 0, 0, 1]
    assert data.details["input_column"] == "review" and data.details["tokenizer"] == "word"


def test_load_data_dispatches_on_the_text_column(reviews_csv):
    data = load_data(reviews_csv, options=DataOptions(text_column="review", target="stars"))
    assert data.kind == "text" and data.n_rows == 6


def test_header_less_sms_file_by_column_positions():
    data = load_text(SMS, text_column="1", target="0")
    # 320 lines of the UCI collection: a stray quote in one message must not swallow the next
    # lines (a quote-aware reader merges three lines into one, leaving 318 rows).
    assert data.n_rows == 320 and data.classes == ["ham", "spam"]
    assert np.bincount(data.y).tolist() == [272, 48]
    assert data.features[0].startswith("Go until jurong point")
    assert not any("\n" in text for text in data.features)


def test_header_less_tsv_with_an_empty_text(tmp_path):
    path = tmp_path / "plain.tsv"
    path.write_text('a\t"quoted start\nb\t\na\tthird\n')  # a stray opening quote
    data = load_text(path, text_column="1", target="0")
    assert data.features.tolist() == ['"quoted start', "", "third"]
    assert data.details["header"] is False
    ids = TextEncoder(seq_len=4).fit(data.features).transform(data.features)
    assert ids[1].tolist() == [0, 0, 0, 0]


def test_missing_column_names_the_columns(reviews_csv):
    with pytest.raises(DataError, match=r"text column 'reveiw' .*did you mean 'review'.*review, stars"):
        load_text(reviews_csv, text_column="reveiw", target="stars")
    with pytest.raises(DataError, match=r"target column 'label' .*its columns: review, stars"):
        load_text(reviews_csv, text_column="review", target="label")
    with pytest.raises(ConfigError, match="tokenizer must be one of word, bpe; got 'char'"):
        load_text(reviews_csv, text_column="review", target="stars", tokenizer="char")


def test_tokenizer_learns_from_training_rows_only(reviews_csv):
    data = load_text(reviews_csv, text_column="review", target="stars", seq_len=6)
    split = encode_split(data, np.array([0, 1, 2, 3]), np.array([5]))  # 'fine' is only in row 5
    vocab = split.preprocessor.tokenizer_.get_vocab()
    assert "fine" not in vocab
    assert split.X_eval[0].tolist() == [1, vocab[","], vocab["good"], 0, 0, 0]
    assert split.X_train.dtype == np.int64 and split.X_train.shape == (4, 6)
    assert split.model_input()["vocab_size"] == len(vocab)


def test_ids_are_ordered_by_frequency_after_the_special_tokens():
    texts = np.array(["b a b c b", "a b", "c d"], dtype=object)  # b: 4, a: 2, c: 2, d: 1
    encoder = TextEncoder(vocab_size=100).fit(texts)
    vocab = encoder.tokenizer_.get_vocab()
    assert (vocab["[PAD]"], vocab["[UNK]"], vocab["b"]) == (0, 1, 2)
    assert [vocab[w] for w in "acd"] == [3, 4, 5]  # ties alphabetically
    capped = TextEncoder(vocab_size=4).fit(texts)  # [PAD], [UNK] and the two commonest words
    assert capped.transform(np.array(["d b a"], dtype=object))[0, :3].tolist() == [1, 2, 3]


def test_padding_and_truncation_to_seq_len():
    encoder = TextEncoder(seq_len=3).fit(np.array(["one two three four"], dtype=object))
    ids = encoder.transform(np.array(["one two three four", "two", None], dtype=object))
    assert ids.shape == (3, 3) and ids.dtype == np.int64
    assert ids[0].min() >= 2 and ids[1, 1:].tolist() == [0, 0] and ids[2].tolist() == [0, 0, 0]
    assert encoder.model_input() == {"input_shape": (3,), "vocab_size": 6}


@pytest.mark.parametrize("tokenizer", ["word", "bpe"])
def test_json_round_trip_gives_identical_ids(tokenizer):
    texts = np.array(["the cat sat on the mat", "the dog ate the cat", "then there"] * 3, dtype=object)
    encoder = TextEncoder(tokenizer, vocab_size=60, seq_len=10).fit(texts)
    loaded = encoder_from_json(json.loads(json.dumps(encoder.to_json())))
    unseen = np.array(["the cathedral is there", "Ω"], dtype=object)
    assert np.array_equal(loaded.transform(texts), encoder.transform(texts))
    assert np.array_equal(loaded.transform(unseen), encoder.transform(unseen))
    assert loaded.model_input() == encoder.model_input()


def test_bpe_splits_unseen_words_into_known_pieces():
    texts = np.array(["the cat sat on the mat"] * 5 + ["then there"], dtype=object)
    encoder = TextEncoder("bpe", vocab_size=40, seq_len=8).fit(texts)
    ids = encoder.transform(np.array(["cathat"], dtype=object))[0]
    assert (ids[:2] > 1).all() and ids[-1] == 0  # pieces such as 'cat' + 'hat' or 'c' 'a' ..., no [UNK]


def test_bad_sizes_are_config_errors():
    with pytest.raises(ConfigError, match="vocab_size must be an integer >= 3; got 2"):
        TextEncoder(vocab_size=2)
    with pytest.raises(ConfigError, match="seq_len must be an integer >= 1; got 0"):
        TextEncoder(seq_len=0)
    with pytest.raises(DataError, match="not fitted"):
        TextEncoder().transform(np.array(["x"], dtype=object))


@pytest.mark.parametrize("texts", [["", "  ", None, ""], [None] * 4])
def test_a_text_column_without_any_text_is_refused(tmp_path, texts):
    # It trained models on padding alone and reported them as if they had read something.
    pd.DataFrame({"body": texts, "spam": [0, 1, 0, 1]}).to_csv(tmp_path / "blank.csv", index=False)
    with pytest.raises(DataError, match=r"text column 'body' is empty in all 4 labelled row\(s\)"):
        load_text(tmp_path / "blank.csv", text_column="body", target="spam")


def test_an_infinite_regression_target_of_texts_is_refused(tmp_path):
    frame = pd.DataFrame({"body": [f"text {i}" for i in range(30)], "score": np.linspace(0, 1, 30)})
    frame.loc[3, "score"] = np.inf
    frame.to_csv(tmp_path / "scores.csv", index=False)
    with pytest.raises(DataError, match=r"regression target 'score' holds 1 infinite value"):
        load_text(tmp_path / "scores.csv", text_column="body", target="score", task="regression")


def _long_reviews(tmp_path, n: int = 240, words: int = 300):
    """Texts of `words` words (one of 5,000 words among them), labels alternating."""
    rng = np.random.default_rng(0)
    texts = [" ".join(rng.choice(["plot", "cast", "scene", "music"], words)) for _ in range(n)]
    texts[7] = " ".join(["long"] * 5000)
    path = tmp_path / "long.csv"
    pd.DataFrame({"review": texts, "stars": ["pos", "neg"] * (n // 2)}).to_csv(path, index=False)
    return path


def test_long_texts_are_kept_up_to_the_training_texts_length(tmp_path):
    """The bag family reads whole texts: load_text's encoder keeps as many tokens as 99% of the
    training texts have (never fewer than seq_len), and one outlier does not pad every row."""
    data = load_text(_long_reviews(tmp_path), text_column="review", target="stars", seq_len=16)
    split = encode_split(data, np.arange(200), np.arange(200, 240))
    assert split.X_train.shape == (200, 300) and split.X_eval.shape == (40, 300)
    assert (split.X_train[:, -1] != 0).all()  # every text whole, the outlier (1 of 200) cut at 300
    assert split.model_input()["input_shape"] == (300,)
    short = load_text(SMS, text_column="1", target="0", seq_len=128)
    assert encode_split(short, np.arange(200), None).X_train.shape == (200, 128)  # short texts: seq_len


def test_the_kept_length_respects_the_caps(tmp_path, monkeypatch):
    from nntune.data import _text

    texts = np.array([" ".join(["word"] * 300)] * 10, dtype=object)
    assert TextEncoder(seq_len=16, max_len=100).fit(texts).length == 100
    assert TextEncoder(seq_len=16).fit(texts).length == 16  # without max_len: exactly seq_len
    monkeypatch.setattr(_text, "TOKEN_BUDGET", 10 * 50)  # ids over the training rows
    assert TextEncoder(seq_len=16, max_len=4096).fit(texts).length == 50
    assert TextEncoder(seq_len=64, max_len=4096).fit(texts).length == 64  # never below seq_len
    with pytest.raises(ConfigError, match="max_len must be an integer >= 16"):
        TextEncoder(seq_len=16, max_len=8)


def test_subword_table_hashes_each_entrys_character_ngrams_stably():
    import zlib

    encoder = TextEncoder(seq_len=4, subwords=True).fit(np.array(["good film", "good"], dtype=object))
    table, vocab = encoder.subword_table(), encoder.tokenizer_.get_vocab()
    assert table.shape == (len(vocab), 32) and table.dtype == np.int32
    assert (table[vocab["[PAD]"]] == -1).all() and (table[vocab["[UNK]"]] == -1).all()
    grams = ["<go", "goo", "ood", "od>", "<goo", "good", "ood>", "<good", "good>"]
    assert table[vocab["good"], :9].tolist() == [zlib.crc32(g.encode()) & 0x7FFFFFFF for g in grams]
    assert (table[vocab["good"], 9:] == -1).all()
    extra = encoder.model_input()["extra"]
    assert extra["subwords"] is table and extra["subword_slots"] == 32
    assert "extra" not in TextEncoder(seq_len=4).fit(np.array(["good"], dtype=object)).model_input()


def test_json_round_trip_keeps_the_fitted_length_and_subwords(tmp_path):
    data = load_text(_long_reviews(tmp_path), text_column="review", target="stars", seq_len=16)
    encoder = data.make_encoder().fit(data.features[:200])
    loaded = encoder_from_json(json.loads(json.dumps(encoder.to_json())))
    assert (loaded.length, loaded.subwords) == (300, True)
    assert np.array_equal(loaded.transform(data.features), encoder.transform(data.features))
    assert np.array_equal(loaded.model_input()["extra"]["subwords"], encoder.model_input()["extra"]["subwords"])
    old = {k: v for k, v in encoder.to_json().items() if k not in ("max_len", "subwords", "length")}
    assert encoder_from_json(old).transform(data.features[:2]).shape == (2, 16)  # saved before lengths


def test_the_word_tokenizer_reads_numbers_digit_by_digit():
    """A phone number no training text has is read as its digits, not as [UNK]."""
    encoder = TextEncoder(seq_len=16).fit(np.array(["call 0800 now", "win 12 pounds"], dtype=object))
    vocab = encoder.tokenizer_.get_vocab()
    assert "0800" not in vocab and {"0", "8", "1", "2"} <= set(vocab)
    ids = encoder.transform(np.array(["call 0812"], dtype=object))[0]
    assert ids[:5].tolist() == [vocab["call"], vocab["0"], vocab["8"], vocab["1"], vocab["2"]]
