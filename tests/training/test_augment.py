"""Augmentation of training batches: every transform changes a batch and keeps its shape and
type, nothing happens when it is off, text keeps its padding, and fit augments training
batches only."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from nntune.config import ParamSpec
from nntune.errors import ConfigError, DataError
from nntune.models import ModelMeta, build_model
from nntune.training import fit, get_metric, make_head
from nntune.training._augment import (
    AUGMENT_DEFAULTS,
    SWITCHES,
    augment_space,
    back_translate,
    load_synonyms,
    make_augment,
    synonym_ids,
)

from .test_trainer import blobs, learned


def only(kind: str, switch: str, **recipe) -> dict:
    """A recipe with augmentation on and, of `kind`'s transforms, only `switch`."""
    return {"augment": True, **dict.fromkeys(SWITCHES[kind], False), switch: True, **recipe}


def changed_and_intact(augment, x: torch.Tensor) -> torch.Tensor:
    """Apply `augment`; check it changed the batch, kept shape and type, and left `x` alone."""
    original = x.clone()
    out = augment(x)
    assert out.shape == x.shape and out.dtype == x.dtype
    assert not torch.equal(out, x)
    assert torch.equal(x, original)  # never in place: the trainer's tensors are the data set
    return out


@pytest.mark.parametrize("kind", list(SWITCHES))
def test_nothing_on_means_no_augment(kind):
    assert make_augment(AUGMENT_DEFAULTS, kind) is None
    assert make_augment({"aug_noise": 0.5, "aug_jitter": True}, kind) is None  # the master switch is off
    if kind not in ("table", "graph"):
        assert make_augment({"augment": True, **dict.fromkeys(SWITCHES[kind], False)}, kind) is None


def test_special_cases_of_on_and_off():
    assert make_augment({"augment": True, "aug_noise": 0.0}, "table") is None
    assert make_augment(only("text", "aug_synonym"), "text") is None  # no synonym table given
    assert make_augment({"augment": True}, "image") is not None  # a mild default set
    with pytest.raises(ConfigError, match="graph nodes cannot be augmented"):
        make_augment({"augment": True}, "graph")
    with pytest.raises(ConfigError, match="aug_magnitude must be a number between 0 and 1; got 2"):
        make_augment({"augment": True, "aug_magnitude": 2}, "signal")
    with pytest.raises(ConfigError, match="kind must be one of"):
        make_augment({"augment": True}, "video")


@pytest.mark.parametrize("switch", SWITCHES["image"])
def test_each_image_transform_changes_the_batch(switch):
    torch.manual_seed(0)  # kornia draws from torch's global stream
    x = torch.randn(16, 3, 12, 12)
    changed_and_intact(make_augment(only("image", switch), "image"), x)


@pytest.mark.parametrize("kind", ["signal", "timeseries"])
@pytest.mark.parametrize("switch", SWITCHES["signal"])
def test_each_signal_transform_changes_the_batch_reproducibly(kind, switch):
    x = torch.randn(8, 2, 40)
    out = changed_and_intact(make_augment(only(kind, switch), kind, seed=3), x)
    assert torch.equal(out, make_augment(only(kind, switch), kind, seed=3)(x))
    assert not torch.equal(out, make_augment(only(kind, switch), kind, seed=4)(x))


def test_signal_transforms_do_what_they_say():
    x = torch.randn(8, 2, 40)
    scaled = make_augment(only("signal", "aug_scale", aug_magnitude=1.0), "signal")(x)
    factor = scaled / x
    assert torch.allclose(factor, factor[:, :1, :1].expand_as(factor), atol=1e-4)  # one factor per sample
    assert factor.min() >= 0.5 - 1e-4 and factor.max() <= 1.5 + 1e-4
    shifted = make_augment(only("signal", "aug_shift", aug_magnitude=1.0), "signal")(x)
    for sample, out in zip(x, shifted, strict=True):
        assert any(torch.equal(torch.roll(sample, s, -1), out) for s in range(-8, 9))
    warped = make_augment(only("signal", "aug_warp", aug_magnitude=1.0), "signal")(x)
    # The first and last steps stay: a forecast window still ends on its last value.
    assert torch.allclose(warped[..., [0, -1]], x[..., [0, -1]], atol=1e-5)


def test_table_noise_has_the_asked_std():
    x = torch.zeros(4000, 5)
    out = changed_and_intact(make_augment({"augment": True, "aug_noise": 0.2}, "table", seed=1), x)
    assert abs(float(out.std()) - 0.2) < 0.01


TEXTS = torch.tensor([
    [5, 6, 7, 8, 9, 10, 0, 0, 0, 0],
    [2, 3, 4, 5, 6, 7, 8, 9, 10, 11],  # at the length limit
    [0, 0, 0, 0, 0, 0, 0, 0, 0, 0],    # an empty text
    [7, 0, 0, 0, 0, 0, 0, 0, 0, 0],
    [1, 5, 1, 7, 0, 0, 0, 0, 0, 0],    # [UNK] tokens
])
SYNONYMS = {5: [50, 51], 7: [70], 1: [99], 12: [13]}  # 1 is [UNK]: never replaced


def padding_only_at_the_end(ids: torch.Tensor) -> bool:
    real = (ids != 0).int()
    return bool((real[:, 1:] <= real[:, :-1]).all())


@pytest.mark.parametrize("switch", SWITCHES["text"])
def test_text_operations_keep_padding_at_the_end_and_never_touch_it(switch):
    augment = make_augment(only("text", switch, aug_p=0.4), "text", seed=5, synonyms=SYNONYMS)
    out = changed_and_intact(augment, TEXTS)
    assert torch.equal(out, make_augment(only("text", switch, aug_p=0.4), "text", seed=5, synonyms=SYNONYMS)(TEXTS))
    assert padding_only_at_the_end(out)
    assert (out[2] == 0).all()  # an empty text stays empty
    before, after = (TEXTS != 0).sum(1), (out != 0).sum(1)
    if switch == "aug_delete":
        assert (after <= before).all() and (after >= 1)[before > 0].all()
    elif switch == "aug_insert":
        assert (after >= before).all() and (after <= TEXTS.shape[1]).all()
        assert set(out[out != 0].tolist()) <= set(TEXTS[TEXTS != 0].tolist())
    else:
        assert torch.equal(after, before)


def test_swap_and_delete_only_reorder_or_drop_tokens():
    swapped = make_augment(only("text", "aug_swap", aug_p=0.5), "text", seed=1)(TEXTS)
    assert torch.equal(swapped.sort(1).values, TEXTS.sort(1).values)
    deleted = make_augment(only("text", "aug_delete", aug_p=0.5), "text", seed=1)(TEXTS)
    for row, out in zip(TEXTS.tolist(), deleted.tolist(), strict=True):
        kept = iter(row)
        assert all(token in kept for token in out if token)  # a subsequence, in order


def test_synonym_replacement_maps_only_to_listed_synonyms():
    out = make_augment(only("text", "aug_synonym", aug_p=1.0), "text", seed=0, synonyms=SYNONYMS)(TEXTS)
    differs = out != TEXTS
    assert differs.any()
    for before, after in zip(TEXTS[differs].tolist(), out[differs].tolist(), strict=True):
        assert after in SYNONYMS[before] and before != 1
    assert torch.equal(out[TEXTS == 1], TEXTS[TEXTS == 1])


def test_synonym_table_from_a_csv(tmp_path):
    path = tmp_path / "synonyms.csv"
    path.write_text("word,synonym\nbig,large\nbig, huge\n\nfilm,movie\nbig,large\n")
    table = load_synonyms(path)
    assert table == {"big": ["large", "huge"], "film": ["movie"]}
    vocabulary = {"big": 4, "large": 7, "film": 9}
    assert synonym_ids(table, vocabulary.get) == {4: [7]}  # unknown words are dropped
    path.write_text("big,large\nfilm\n")
    with pytest.raises(DataError, match="line 2: expected 'word,synonym'"):
        load_synonyms(path)
    with pytest.raises(DataError, match="does not exist"):
        load_synonyms(tmp_path / "none.csv")


def test_back_translation_is_the_users_function_checked():
    assert back_translate(["a good film", "bad"], lambda b: [t.upper() for t in b]) == ["A GOOD FILM", "BAD"]
    with pytest.raises(DataError, match="one text per text: 2 in, 1 texts out"):
        back_translate(["a", "b"], lambda b: b[:1])


@pytest.mark.parametrize("kind", list(SWITCHES))
def test_each_kind_has_a_valid_space_fragment(kind):
    space = augment_space(kind, synonyms=True)
    assert set(space) <= set(AUGMENT_DEFAULTS)
    for spec in map(ParamSpec.model_validate, space.values()):
        assert set(spec.when or {}) <= set(space)
        assert spec.matches({"augment": True}) and (not spec.when or not spec.matches({"augment": False}))
    if kind == "graph":
        assert space == {}
    assert ("aug_synonym" in augment_space(kind)) is False


def test_fit_augments_training_batches_only():
    X, y, Xv, yv = blobs()
    Xv, yv = Xv[:50], yv[:50]
    seen: list[int] = []

    def counting(xb: torch.Tensor) -> torch.Tensor:
        seen.append(len(xb))
        return xb

    head = make_head("binary", y, 2, {})
    torch.manual_seed(0)
    model = build_model("mlp", {"n_layers": 1, "units": 8}, ModelMeta(4, head.output_dim, "binary"))
    result = fit(model, head, X, y, {"max_epochs": 3, "batch_size": 64, "patience": 10}, X_val=Xv, y_val=yv,
                 metric=get_metric("accuracy", "binary"), augment=counting)
    assert result.epochs_run == 3
    assert seen == [64, 64, 64, 8] * 3  # 200 training rows a epoch; the 50 validation rows never


def test_fit_trains_with_a_real_augment():
    X, y, Xv, yv = blobs()
    head = make_head("binary", y, 2, {})
    torch.manual_seed(0)
    model = build_model("mlp", {"n_layers": 1, "units": 16}, ModelMeta(4, head.output_dim, "binary"))
    augment = make_augment({"augment": True, "aug_noise": 0.1}, "table", seed=0)
    result = fit(model, head, X, y, {"max_epochs": 10, "lr": 0.01}, X_val=Xv, y_val=yv,
                 metric=get_metric("accuracy", "binary"), augment=augment)
    assert np.isfinite(result.history["train_loss"]).all()
    learned(result)
