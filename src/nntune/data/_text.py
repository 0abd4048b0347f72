"""Texts with a label per row, read from a CSV/TSV file, and the tokenizer that numbers them.

The tokenizer is trained on the training rows only (encode_split fits the encoder on them), so
a word seen only in validation or test rows is unknown to the model, as it will be in use; so
is the encoded length of long texts, and each vocabulary entry's character n-grams.
"""

from __future__ import annotations

import csv
import re
import zlib
from functools import partial
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from ..errors import ConfigError, DataError, check_choice, did_you_mean
from ._arrays import ArrayData, encode_labels, register_encoder
from ._sources import read_table
from ._task import detect_task

TOKENIZERS = ("word", "bpe")
PAD, UNKNOWN = "[PAD]", "[UNK]"  # ids 0 and 1: the models' padding and unknown ids

# Long texts (load_text's encoders): the encoded length reaches the token count that this share
# of the training texts fits in, so the bag family reads them whole; one outlier of 50,000
# tokens does not pad every row to its length. The sequence families still cut at seq_len.
WHOLE_TEXTS = 0.99
MAX_TOKENS = 4096  # per text, whatever the texts
TOKEN_BUDGET = 2**25  # ids in one encoded matrix of training rows (256 MiB of int64)
# Character n-grams of "<word>" (fastText's subwords: 3..6; 6-grams add little on short texts),
# at most SUBWORD_SLOTS per vocabulary entry, the shorter n-grams first.
SUBWORD_LENGTHS = (3, 4, 5)
SUBWORD_SLOTS = 32


class TextEncoder:
    """Texts -> int64 token ids (N, length), cut after `length` tokens and padded with 0.

    `fit` trains a tokenizer (the `tokenizers` library) on the training texts, with at most
    `vocab_size` entries including [PAD]=0 and [UNK]=1. Ids are ordered by frequency, so a
    model can shrink the vocabulary by clipping ids (`models._inputs.TokenEmbedding`):
    - word: lowercased words, punctuation marks and single digits; the trainer numbers them by
      count (descending, ties alphabetically), so id 2 is the most common word;
    - bpe: byte-pair pieces; ids are the characters first, then the merges in the order they
      were learned (most frequent pair first), so clipping keeps the alphabet and the
      commonest merges. A clipped piece becomes [UNK], not its smaller pieces.

    `length` is `seq_len`, or with `max_len` chosen by `fit` from the training texts: the token
    count WHOLE_TEXTS of them fit in, at least `seq_len` and at most `max_len` (and MAX_TOKENS,
    and TOKEN_BUDGET ids over the training rows). With `subwords`, `model_input` also gives
    each vocabulary entry's hashed character n-grams (`subword_table`), which the bag family
    embeds.
    """

    name: ClassVar[str] = "text"

    def __init__(self, tokenizer: str = "word", vocab_size: int = 20000, seq_len: int = 128,
                 tokenizer_json: str | None = None, *, max_len: int | None = None, subwords: bool = False,
                 length: int | None = None) -> None:
        self.tokenizer = check_choice("tokenizer", tokenizer, TOKENIZERS)
        self.vocab_size = _at_least("vocab_size", vocab_size, 3)  # [PAD], [UNK] and one token
        self.seq_len = _at_least("seq_len", seq_len, 1)
        self.max_len = _at_least("max_len", max_len, self.seq_len) if max_len is not None else None
        self.subwords = bool(subwords)
        self.length = _at_least("length", length, 1) if length is not None else self.seq_len
        self.tokenizer_ = None
        self._subword_table: np.ndarray | None = None  # computed once per fitted tokenizer
        if tokenizer_json is not None:
            from tokenizers import Tokenizer

            self.tokenizer_ = Tokenizer.from_str(tokenizer_json)

    def fit(self, texts: np.ndarray) -> TextEncoder:
        from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, trainers

        # The special tokens are listed first, so the trainers give them ids 0 and 1.
        special = {"special_tokens": [PAD, UNKNOWN], "vocab_size": self.vocab_size, "show_progress": False}
        if self.tokenizer == "word":
            tokenizer = Tokenizer(models.WordLevel(unk_token=UNKNOWN))
            trainer = trainers.WordLevelTrainer(**special)
        else:
            tokenizer = Tokenizer(models.BPE(unk_token=UNKNOWN))
            trainer = trainers.BpeTrainer(**special)
        tokenizer.normalizer = normalizers.Sequence([normalizers.NFKC(), normalizers.Lowercase()])
        splitters = [pre_tokenizers.Whitespace()]  # splits at spaces and punctuation
        if self.tokenizer == "word":
            # Numbers as single digits (as LLaMA's tokenizer splits them): a phone number, price
            # or code that no training text has is still read, digit by digit, not as [UNK]
            # (SMS spam: +0.2 points for the bag; half the unseen words of spam hold digits).
            splitters.append(pre_tokenizers.Digits(individual_digits=True))
        tokenizer.pre_tokenizer = pre_tokenizers.Sequence(splitters)
        tokenizer.train_from_iterator(_as_strings(texts), trainer)
        self.tokenizer_, self._subword_table = tokenizer, None
        self.length = self.seq_len if self.max_len is None else self._fitted_length(texts)
        return self

    def _fitted_length(self, texts: np.ndarray) -> int:
        counts = np.fromiter((len(e.ids) for e in self._encode(texts)), dtype=np.int64, count=len(texts))
        if not len(counts):
            return self.seq_len
        most = min(self.max_len, MAX_TOKENS, max(1, TOKEN_BUDGET // len(counts)))
        whole = int(np.quantile(counts, WHOLE_TEXTS, method="inverted_cdf"))  # the least count that many fit in
        return max(self.seq_len, min(whole, most))

    def _encode(self, texts: np.ndarray) -> list:
        # The fast variant (tokenizers >= 0.21) skips character offsets, which nntune never reads.
        encode = getattr(self.tokenizer_, "encode_batch_fast", self.tokenizer_.encode_batch)
        return encode(_as_strings(texts))

    def transform(self, texts: np.ndarray) -> np.ndarray:
        if self.tokenizer_ is None:
            raise DataError("the text encoder is not fitted: call fit(training texts) first")
        # Padding in numpy rather than the tokenizer's own: its JSON then holds no length.
        ids = np.zeros((len(texts), self.length), dtype=np.int64)
        for row, encoding in enumerate(self._encode(texts)):
            kept = encoding.ids[:self.length]
            ids[row, :len(kept)] = kept
        return ids

    def subword_table(self) -> np.ndarray:
        """(vocabulary, SUBWORD_SLOTS) int32: the hashes (crc32, 31 bits: the same in every
        process, unlike Python's hash) of each entry's character n-grams of "<entry>", -1 past
        its last; none for [PAD] and [UNK]. Computed once per fitted tokenizer."""
        if self._subword_table is None:
            table = np.full((self.tokenizer_.get_vocab_size(), SUBWORD_SLOTS), -1, dtype=np.int32)
            for entry, row in self.tokenizer_.get_vocab().items():
                if entry in (PAD, UNKNOWN):
                    continue
                grams = _char_ngrams(f"<{entry}>")[:SUBWORD_SLOTS]
                table[row, :len(grams)] = [zlib.crc32(g.encode()) & 0x7FFFFFFF for g in grams]
            self._subword_table = table
        return self._subword_table

    def token_id(self, word: str) -> int | None:
        """The id of one word as the fitted tokenizer normalizes it (None when unknown or when
        it splits into several tokens): the synonym table of text augmentation goes through it."""
        ids = self.tokenizer_.encode(word, add_special_tokens=False).ids
        return ids[0] if len(ids) == 1 and ids[0] > 1 else None

    def model_input(self) -> dict[str, Any]:
        vocab = self.tokenizer_.get_vocab_size() if self.tokenizer_ is not None else self.vocab_size
        given = {"input_shape": (self.length,), "vocab_size": int(vocab)}
        if self.subwords and self.tokenizer_ is not None:
            # The table is weights to the bag family; its width is what a saved model keeps.
            given["extra"] = {"subwords": self.subword_table(), "subword_slots": SUBWORD_SLOTS}
        return given

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "tokenizer": self.tokenizer, "vocab_size": self.vocab_size,
                "seq_len": self.seq_len, "max_len": self.max_len, "subwords": self.subwords, "length": self.length,
                "tokenizer_json": self.tokenizer_.to_str() if self.tokenizer_ is not None else None}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> TextEncoder:
        return cls(data["tokenizer"], data["vocab_size"], data["seq_len"], data.get("tokenizer_json"),
                   max_len=data.get("max_len"), subwords=data.get("subwords", False), length=data.get("length"))


register_encoder(TextEncoder.name, TextEncoder.from_json)


def load_text(path: str | Path, *, text_column: str, target: str, tokenizer: str = "word",
              vocab_size: int = 20000, seq_len: int = 128, task: str = "auto") -> ArrayData:
    """Read labelled texts from a CSV/TSV file (called by `load_data` for `--text-column`).

    `text_column` and `target` name columns of the header row. A file without a header row
    (as the SMS spam collection: `label<TAB>text`) is read by giving column positions as
    digits, counted from 0: `load_text("sms_spam.tsv", text_column="1", target="0")`. Digits
    that are not names in the first row make nntune read that row as data. Empty texts are
    kept (all padding: an empty message is a message too), but a column without any text is
    refused; rows without a label are dropped.
    """
    if target is None:
        raise DataError("no target column given: pass --target COLUMN (data.target in the config)")
    path = Path(path)
    # A partial pickles; a lambda not. Long texts are kept up to MAX_TOKENS for the bag family.
    make_encoder = partial(TextEncoder, tokenizer, vocab_size, seq_len, max_len=max(seq_len, MAX_TOKENS),
                           subwords=True)
    make_encoder()  # checks the options before the file is read
    frame, has_header = _read_frame(path, str(text_column), str(target))
    columns = [str(c) for c in frame.columns]
    for role, column in (("text column", str(text_column)), ("target column", str(target))):
        if column not in columns:
            hint = (" (for a file without a header row, give column positions: 0, 1, ...)" if has_header
                    else " (read without a header row: columns are positions)")
            raise DataError(f"{role} '{column}' is not in '{path.name}'{did_you_mean(column, columns)}; "
                            f"its columns: {', '.join(columns[:20])}{hint}")
    labels = frame[str(target)]
    labelled = labels.notna().to_numpy()
    if not labelled.any():
        raise DataError(f"target column '{target}' has no values")
    # As objects first: an all-empty column is read as float, which pandas will not fill with "".
    texts = frame[str(text_column)][labelled].astype(object).fillna("").astype(str).to_numpy(dtype=object)
    _check_some_text(texts, str(text_column))
    labels = labels[labelled].reset_index(drop=True)
    task = detect_task(labels, task)
    y, classes = encode_labels(labels.to_numpy(), task)
    details = {"input_column": str(text_column), "tokenizer": tokenizer, "vocab_size": vocab_size,
               "seq_len": seq_len, "header": has_header}
    return ArrayData(texts, y, task, "text", path.stem, make_encoder, target=str(target), classes=classes,
                     details=details)


def _check_some_text(texts: np.ndarray, column: str) -> None:
    """Refuse a text column that is empty in every labelled row: the tokenizer would learn no
    word and every model would see nothing but padding (usually the wrong column was named)."""
    if not any(text.strip() for text in texts):
        raise DataError(f"text column '{column}' is empty in all {len(texts)} labelled row(s): there is no text to "
                        "learn from; name the column that holds the texts")


def _read_frame(path: Path, text_column: str, target: str) -> tuple[pd.DataFrame, bool]:
    """The file as a frame with string column names, and whether its first row was a header."""
    tab_separated = path.suffix.lower() == ".tsv"
    try:
        frame, literal_quotes = read_table(path), False
    except DataError:
        if not tab_separated:
            raise
        # A quote opened in a text and never closed: the reader ran on to the end of the file.
        frame, literal_quotes = _reread(path, header=True, quoting=csv.QUOTE_NONE), True
    frame.columns = [str(c) for c in frame.columns]
    wanted = (text_column, target)
    has_header = not (path.suffix.lower() not in (".parquet", ".pq")
                      and any(c not in frame.columns for c in wanted) and all(c.isdigit() for c in wanted))
    literal_quotes = literal_quotes or (tab_separated and _quotes_swallowed_rows(frame))
    if not has_header or literal_quotes:
        frame = _reread(path, header=has_header, quoting=csv.QUOTE_NONE if literal_quotes else csv.QUOTE_MINIMAL)
    return frame, has_header


def _quotes_swallowed_rows(frame: pd.DataFrame) -> bool:
    """True when a tab-separated file holds a stray opening quote in a text: the CSV reader
    then runs the quoted field on over whole following lines (the SMS collection loses two
    messages so). A tab after a line break inside a field is that symptom: such files were
    written without quoting, and are read again with quotes as plain characters."""
    swallowed = re.compile("\n[^\n]*\t")
    if any(swallowed.search(c) for c in frame.columns):
        return True
    texts = [c for c in frame.columns if not pd.api.types.is_numeric_dtype(frame[c])]
    return any(frame[c].astype(str).str.contains(swallowed).any() for c in texts)


def _reread(path: Path, *, header: bool, quoting: int = csv.QUOTE_MINIMAL) -> pd.DataFrame:
    """The file again, read without a header row or with quotes as plain characters."""
    suffix = path.suffix.lower()
    sep = {".tsv": "\t", ".csv": ","}.get(suffix)
    try:
        frame = pd.read_csv(path, sep=sep, engine="python" if sep is None else "c",
                            header=0 if header else None, quoting=quoting)
    except Exception as exc:
        raise DataError(f"data file '{path}' could not be read: {exc}".splitlines()[0]) from exc
    frame.columns = [str(c) for c in frame.columns]
    return frame


def _char_ngrams(word: str) -> list[str]:
    return [word[i:i + n] for n in SUBWORD_LENGTHS for i in range(len(word) - n + 1)]


def _as_strings(texts: np.ndarray) -> list[str]:
    """Texts as a list of str; a missing text (None, NaN) is the empty text."""
    return ["" if t is None or (isinstance(t, float) and t != t) else str(t) for t in texts]


def _at_least(name: str, value: Any, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < low:
        raise ConfigError(f"{name} must be an integer >= {low}; got {value!r}")
    return int(value)
