"""The `bag` family: a fastText-style bag of word and character n-grams, nntune's default for text."""

from __future__ import annotations

import json

import numpy as np
import optuna
import pandas as pd
import pytest
import torch

import nntune
from nntune.data import DataOptions, load_data, split_train_test
from nntune.data._text import TextEncoder
from nntune.errors import ConfigError
from nntune.execution._plan import DEFAULT_FAMILY, _families_space
from nntune.models import ModelMeta, bag, build_model, family_names
from nntune.models.bag import hashed_ngrams
from nntune.search._space import parse_space, suggest
from nntune.training import fit, get_metric, make_head

from .._fresh import run_script, warm
from ..conftest import TEST_DATA

WORDS_ONLY = {"char_ngrams": False}
TEXT = ModelMeta(input_dim=10, output_dim=3, task="multiclass", kind="text", input_shape=(10,), vocab_size=50)
FAST = {"threads": 1, "report": False, "pruner": "none", "seed": 0}


@pytest.fixture(autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def encoded(texts: list[str], seq_len: int = 12) -> tuple[TextEncoder, np.ndarray, ModelMeta]:
    """Texts through an encoder as load_text makes it (long texts kept, character n-grams)."""
    texts = np.array(texts, dtype=object)
    encoder = TextEncoder(seq_len=seq_len, max_len=4096, subwords=True).fit(texts)
    return encoder, encoder.transform(texts), ModelMeta(seq_len, 2, "binary", kind="text", **encoder.model_input())


def good_or_bad_texts(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    filler = ["the", "movie", "was", "very", "plot", "actor", "and", "it", "really", "quite"]
    texts, labels = [], np.arange(n) % 2
    for label in labels:
        words = list(rng.choice(filler, rng.integers(2, 9)))
        words.insert(int(rng.integers(0, len(words) + 1)), "good" if label else "bad")
        texts.append(" ".join(words))
    return np.array(texts, dtype=object), labels


@pytest.mark.parametrize("params", [{}, {"ngrams": 1}, {"ngrams": 3, "hidden": 64}, {"char_ngrams": False}])
def test_forward_on_encoded_texts(params):
    _, ids, meta = encoded(["a good film", "bad", "", "a very very good film indeed"])
    model = build_model("bag", params, meta).eval()
    out = model(torch.from_numpy(ids))
    assert out.shape == (4, 2) and torch.isfinite(out).all()


def test_padding_is_never_counted():
    """More [PAD]s after a text change nothing; an empty text is the head's bias alone."""
    torch.manual_seed(0)
    _, _, meta = encoded(["a good film", "bad acting"])
    model = build_model("bag", {"ngrams": 3}, meta).eval()
    ids = torch.tensor([[5, 3, 2]])
    padded = torch.cat([ids, torch.zeros(1, 40, dtype=torch.long)], dim=1)
    with torch.no_grad():
        assert torch.allclose(model(ids), model(padded), atol=1e-6)
        empty = model(torch.zeros(1, 8, dtype=torch.long))
        assert torch.allclose(empty, model.head[-1].bias.unsqueeze(0))


def test_word_ngrams_skip_padding_and_hash_the_same_everywhere():
    ids = torch.tensor([[4, 7, 9, 0, 0]])
    buckets, real = hashed_ngrams(ids, 2, 1000)
    assert real.tolist() == [[True, True, False, False]]
    assert buckets[0, 0] == (4 * bag.HASH_PRIME + 7) % 1000  # plain arithmetic, no per-process seed
    assert hashed_ngrams(ids[:, :1], 2, 1000)[0].shape == (1, 0)


def test_vocabulary_is_clipped_to_the_tuned_size_but_clipped_words_keep_their_ngrams():
    _, ids, meta = encoded(["x y z w v u", "x y"])
    model = build_model("bag", {"vocab_size": 4, "ngrams": 1}, meta).eval()
    assert model.vocab_size == 4 and model.subwords.shape[0] == meta.vocab_size
    words_only = build_model("bag", {"vocab_size": 4, "ngrams": 1, "char_ngrams": False}, meta).eval()
    rare, unknown = torch.tensor([[meta.vocab_size - 1]]), torch.tensor([[1]])
    with torch.no_grad():
        assert torch.equal(words_only(rare), words_only(unknown))  # [UNK] to the words ...
        assert not torch.equal(model(rare), model(unknown))  # ... not to their character n-grams


def test_char_ngrams_need_the_encoders_table():
    with pytest.raises(ConfigError, match="char_ngrams needs the character n-grams"):
        build_model("bag", {}, TEXT)
    assert build_model("bag", WORDS_ONLY, TEXT)(torch.randint(0, 50, (2, 10))).shape == (2, 3)
    with pytest.raises(ConfigError, match="takes text"):
        build_model("bag", WORDS_ONLY, ModelMeta(4, 2, "binary"))
    with pytest.raises(ConfigError, match="whole numbers >= 1"):
        build_model("bag", {**WORDS_ONLY, "buckets": 0}, TEXT)


def test_learns_a_tiny_task():
    texts, y = good_or_bad_texts(240)
    encoder, _, meta = encoded(list(texts[:160]))
    X = encoder.transform(texts)
    torch.manual_seed(0)
    model = build_model("bag", {}, meta)
    result = fit(model, make_head("binary", y[:160], 2, {}), X[:160], y[:160],
                 {"lr": 1e-2, "batch_size": 32, "max_epochs": 8}, X_val=X[160:], y_val=y[160:],
                 metric=get_metric("accuracy", "binary"))
    assert result.best_score > 0.9


def test_every_space_entry_suggests_a_buildable_model():
    _, ids, meta = encoded(["a good film", "bad", "so so"])
    space, fixed = parse_space(bag.SPACE)
    assert not fixed and set(bag.DEFAULTS) >= set(bag.SPACE)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    for _ in range(4):
        params = suggest(study.ask(), space, {})
        assert build_model("bag", params, meta)(torch.from_numpy(ids)).shape == (3, 2)


def test_state_dict_reload_predicts_identically_from_the_saved_meta_alone():
    """A saved model keeps only the meta's plain values: the subword table comes from the weights."""
    _, ids, meta = encoded(["a good film", "bad acting", "good good"])
    model = build_model("bag", {"ngrams": 2}, meta).eval()
    saved = ModelMeta.from_json(json.loads(json.dumps(meta.to_json())))
    assert "subwords" not in saved.extra
    copy = build_model("bag", {"ngrams": 2}, saved).eval()
    copy.load_state_dict(model.state_dict())
    with torch.no_grad():
        assert torch.equal(model(torch.from_numpy(ids)), copy(torch.from_numpy(ids)))
    assert not np.shares_memory(copy.subwords.numpy(), meta.extra["subwords"])  # the encoder's stays its own


def test_bag_is_the_default_for_text_and_in_family_auto():
    assert DEFAULT_FAMILY["text"] == "bag" and "bag" in family_names("text")
    assert "bag" not in family_names("table")
    space, defaults = _families_space("text")
    assert "bag" in space["family"]["choices"] and space["buckets"]["when"] == {"family": ["bag"]}
    assert defaults["buckets"] == bag.DEFAULTS["buckets"]


@pytest.fixture(scope="module")
def reviews(tmp_path_factory):
    root = tmp_path_factory.mktemp("bag")
    texts, y = good_or_bad_texts(80, seed=1)
    pd.DataFrame({"review": texts, "label": np.where(y == 1, "pos", "neg")}).to_csv(root / "reviews.csv", index=False)
    return root


def test_a_tuned_text_model_is_a_bag_and_reloads_identically_in_a_fresh_process(tmp_path, reviews):
    warm()  # the fresh process imports its libraries while the model trains
    # One validation split and a refit (not cv auto's five fold models): the saved model is under test.
    result = nntune.tune(reviews / "reviews.csv", text_column="review", target="label", out=tmp_path / "run",
                         trials=1, max_epochs=3, cv="none", final="refit", **FAST)
    assert result.model.info["family"] == "bag" and result.best_params.get("family") is None
    texts = np.array(["good plot", "bad actor and a word never seen", ""], dtype=object)
    np.save(tmp_path / "texts.npy", texts, allow_pickle=True)
    # At the run's thread count, bit for bit (another count may round matrix products otherwise).
    code = ("import json, sys, numpy as np, torch, nntune\n"
            "torch.set_num_threads(1)\n"
            "model = nntune.load(sys.argv[1])\n"
            "texts = np.load(sys.argv[2], allow_pickle=True)\n"
            "print(json.dumps({'labels': model.predict(texts).tolist(),\n"
            "                  'proba': model.predict_proba(texts).tolist()}))\n")
    done = run_script(code, tmp_path / "run" / "model", tmp_path / "texts.npy")
    assert done.returncode == 0, done.stderr
    reloaded = json.loads(done.stdout)
    assert reloaded["labels"] == result.model.predict(texts).tolist()
    assert reloaded["proba"] == result.model.predict_proba(texts).tolist()


def test_tuned_bag_scores_as_well_as_tfidf_and_logistic_regression_on_the_same_split(tmp_path):
    """On the 320 shipped SMS messages: the default search's model against TF-IDF + logistic
    regression (scikit-learn's defaults) trained on the same training rows and scored on the
    same 64 test rows; one message of slack."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline

    sms = TEST_DATA / "sms_spam.tsv"
    data = load_data(sms, options=DataOptions(text_column="1", target="0"))
    train, test = split_train_test(data, 0.2, 0)
    baseline = make_pipeline(TfidfVectorizer(), LogisticRegression()).fit(data.features[train], data.y[train])
    reference = float(np.mean(baseline.predict(data.features[test]) == data.y[test]))
    result = nntune.tune(sms, text_column="1", target="0", out=tmp_path / "run", trials=4, max_epochs=20,
                         test_size=0.2, **FAST)
    predicted = result.model.predict(data.features[test])
    accuracy = float(np.mean(predicted == np.asarray(data.classes)[data.y[test]]))
    assert accuracy == pytest.approx(result.test_scores["accuracy"])  # the same test rows
    assert accuracy >= reference - 1 / len(test), (accuracy, reference)


def test_starting_points_are_whole_recipes_inside_the_default_space():
    from nntune.training import SPACE as RECIPE_SPACE

    space, _ = parse_space({**bag.SPACE, **RECIPE_SPACE})
    for recipe in bag.STARTING_POINTS:
        assert set(space) - {"momentum"} <= set(recipe)  # nothing left to chance (momentum: sgd only)
        for name, spec in space.items():
            if name in recipe:
                value = recipe[name]
                assert value in spec.choices if spec.choices is not None else spec.low <= value <= spec.high, name
        assert build_model("bag", recipe, encoded(["a good film", "bad"])[2]) is not None
