from __future__ import annotations

import numpy as np
import optuna
import pytest
import torch

from nntune.data._text import TextEncoder
from nntune.errors import ConfigError
from nntune.models import ModelMeta, build_model, family_names, get_family, rnn, transformer
from nntune.models._inputs import TokenEmbedding, sequence_input
from nntune.search._space import parse_space, suggest
from nntune.training import fit, get_metric, make_head

from .._references import at_least_linear, majority_score

TEXT = ModelMeta(input_dim=10, output_dim=3, task="multiclass", kind="text", input_shape=(10,), vocab_size=50)
SIGNAL = ModelMeta(input_dim=40, output_dim=2, task="binary", kind="signal", input_shape=(2, 20))
WINDOW = ModelMeta(input_dim=12, output_dim=1, task="regression", kind="timeseries", input_shape=(1, 12))
IMAGE = ModelMeta(input_dim=3 * 8 * 6, output_dim=4, task="multiclass", kind="image", input_shape=(3, 8, 6))
FAMILIES = {"rnn": rnn, "transformer": transformer}


@pytest.fixture(autouse=True)
def one_thread():
    """Small recurrent steps run fastest on one thread (several only contend on a shared machine)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def sample(meta: ModelMeta, n: int = 4) -> torch.Tensor:
    if meta.kind == "text":
        ids = torch.randint(2, meta.vocab_size, (n, *meta.shape))
        ids[0, 3:] = 0  # a short text
        ids[1] = 0  # an empty one
        return ids
    return torch.randn(n, *meta.shape)


CASES = [("rnn", {}, TEXT), ("rnn", {"cell": "lstm", "bidirectional": True, "layers": 2, "dropout": 0.2}, TEXT),
         ("rnn", {}, SIGNAL), ("rnn", {"cell": "lstm"}, WINDOW), ("rnn", {"bidirectional": True}, IMAGE),
         ("transformer", {}, TEXT), ("transformer", {"positional": "learned", "layers": 1}, SIGNAL),
         ("transformer", {"heads": 8, "d_model": 30}, WINDOW)]


@pytest.mark.parametrize("family, params, meta", CASES)
def test_forward_shapes(family, params, meta):
    model = build_model(family, params, meta).eval()
    out = model(sample(meta))
    assert out.shape == (4, meta.output_dim) and torch.isfinite(out).all()


@pytest.mark.parametrize("family, params", [("rnn", {"bidirectional": True}), ("transformer", {})])
def test_padding_does_not_change_a_texts_output(family, params):
    """The output reads the text's own tokens: more [PAD]s after it change nothing."""
    torch.manual_seed(0)
    long = build_model(family, params, TEXT).eval()
    short = build_model(family, {**params, "seq_len": 6}, TEXT).eval()
    short.load_state_dict(long.state_dict())
    ids = torch.tensor([[5, 9, 7, 0, 0, 0, 0, 0, 0, 0]])
    with torch.no_grad():
        assert torch.allclose(long(ids), short(ids), atol=1e-5)


def test_transformer_rounds_d_model_up_to_a_multiple_of_heads():
    model = build_model("transformer", {"d_model": 30, "heads": 8}, SIGNAL)
    assert model.head.in_features == 32


def test_token_embedding_clips_vocabulary_and_length():
    embed = TokenEmbedding(vocab_size=10, dim=4, seq_len=3)
    ids = torch.tensor([[2, 50, 9, 8, 7], [0, 1, 10, 0, 0]])
    out = embed(ids)
    assert out.shape == (2, 3, 4)
    unknown = embed.embedding.weight[1]
    assert torch.equal(out[0, 1], unknown) and torch.equal(out[1, 2], unknown)  # ids >= 10 are [UNK]
    assert torch.equal(out[1, 0], torch.zeros(4))  # [PAD] embeds to zeros
    assert embed.tokens(ids).tolist() == [[True, True, True], [False, True, True]]


def test_vocab_and_length_params_clip_to_the_data():
    steps_in, _, steps = sequence_input(TEXT, {"vocab_size": 20000, "seq_len": 128}, 8)
    assert (steps_in.vocab_size, steps) == (50, 10)
    steps_in, _, steps = sequence_input(TEXT, {"vocab_size": 20, "seq_len": 4}, 8)
    assert (steps_in.vocab_size, steps) == (20, 4)
    _, features, steps = sequence_input(WINDOW, {"lookback": 5}, 8)
    assert (features, steps) == (1, 5)


@pytest.mark.parametrize("family", ["rnn", "transformer"])
@pytest.mark.parametrize("meta", [TEXT, SIGNAL])
def test_state_dict_round_trip_predicts_identically(family, meta):
    params = {"positional": "learned"} if family == "transformer" else {"cell": "lstm"}
    model = build_model(family, params, meta).eval()
    copy = build_model(family, params, meta).eval()
    copy.load_state_dict(model.state_dict())
    x = sample(meta)
    with torch.no_grad():
        assert torch.equal(model(x), copy(x))


def good_or_bad_texts(n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    filler = ["the", "movie", "was", "very", "plot", "actor", "and", "it", "really", "quite"]
    texts, labels = [], np.arange(n) % 2
    for label in labels:
        words = list(rng.choice(filler, rng.integers(2, 9)))
        words.insert(int(rng.integers(0, len(words) + 1)), "good" if label else "bad")
        texts.append(" ".join(words))
    return np.array(texts, dtype=object), labels


def bump_signals(n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """A noisy bump early (class 0) or late (class 1) in a 24-step signal."""
    labels = np.arange(n) % 2
    centre = np.where(labels == 1, 18, 6)[:, None]
    t = np.arange(24)[None]
    signals = np.exp(-((t - centre) ** 2) / 8.0) + 0.3 * rng.normal(size=(n, 24))
    return signals[:, None, :].astype(np.float32), labels


@pytest.mark.parametrize("family", ["rnn", "transformer"])
@pytest.mark.parametrize("kind", ["text", "signal"])
def test_learns_a_tiny_task(family, kind):
    rng = np.random.default_rng(0)
    if kind == "text":
        texts, y = good_or_bad_texts(240, rng)
        encoder = TextEncoder(seq_len=12).fit(texts[:160])
        X = encoder.transform(texts)
        meta = ModelMeta(12, 2, "binary", kind="text", **encoder.model_input())
    else:
        X, y = bump_signals(240, rng)
        meta = ModelMeta(24, 2, "binary", kind="signal", input_shape=(1, 24))
    torch.manual_seed(0)
    model = build_model(family, {}, meta)
    result = fit(model, make_head("binary", y[:160], 2, {}), X[:160], y[:160],
                 {"lr": 3e-3, "batch_size": 32, "max_epochs": 6}, X_val=X[160:], y_val=y[160:],
                 metric=get_metric("accuracy", "binary"))
    if kind == "signal":
        at_least_linear(result.best_score, X[:160], y[:160], X[160:], y[160:], margin=0.1)
    else:  # token ids: a linear model over them means nothing, so the majority class is the reference
        assert result.best_score >= majority_score(y[:160], y[160:]) + 0.3


@pytest.mark.parametrize("family", ["rnn", "transformer"])
def test_every_space_entry_suggests_a_buildable_model(family):
    module = FAMILIES[family]
    space, fixed = parse_space({**module.SPACE, **module.KIND_SPACE["text"]})
    assert not fixed
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    for _ in range(3):
        params = suggest(study.ask(), space, {})
        assert set(params) == set(space)
        assert build_model(family, params, TEXT)(sample(TEXT)).shape == (4, 3)


def test_families_are_registered_for_their_kinds():
    assert {"rnn", "transformer"} <= set(family_names("text")) & set(family_names("signal"))
    assert "rnn" in family_names("image") and "transformer" not in family_names("image")
    assert set(get_family("rnn").defaults) >= set(rnn.SPACE)
    assert set(get_family("transformer").defaults) >= set(transformer.SPACE)


def test_bad_values_are_config_errors():
    with pytest.raises(ConfigError, match="cell must be one of lstm, gru; got 'lstn'.*did you mean 'lstm'"):
        build_model("rnn", {"cell": "lstn"}, SIGNAL)
    with pytest.raises(ConfigError, match="positional must be one of sinusoidal, learned; got 'rotary'"):
        build_model("transformer", {"positional": "rotary"}, SIGNAL)
    with pytest.raises(ConfigError, match="sequence model takes text, signals, time series or images; got table"):
        build_model("rnn", {}, ModelMeta(10, 2, "binary"))
    with pytest.raises(ConfigError, match="vocabulary size"):
        build_model("transformer", {}, ModelMeta(10, 2, "binary", kind="text", input_shape=(10,)))


@pytest.mark.parametrize("family", ["rnn", "transformer"])
def test_starting_recipes_build_for_every_kind_the_family_takes(family):
    spec = get_family(family)
    assert spec.starting_points
    metas = [m for m in (TEXT, SIGNAL, WINDOW, IMAGE) if m.kind in spec.data_kinds]
    for recipe in spec.starting_points:
        for meta in metas:
            out = build_model(family, recipe, meta).eval()(sample(meta))
            assert out.shape == (4, meta.output_dim) and torch.isfinite(out).all()
