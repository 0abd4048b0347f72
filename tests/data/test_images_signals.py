from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from nntune.data import encode_split, encoder_from_json, make_folds, split_train_test
from nntune.data._images import load_images
from nntune.data._signals import load_signals
from nntune.errors import DataError


def test_digits_as_images_standardized_on_training_rows_and_encoder_reloads():
    data = load_images(dataset="digits")
    assert data.kind == "image" and data.features.shape == (1797, 1, 8, 8)
    assert data.features.dtype == np.float32
    assert 0.0 <= data.features.min() and data.features.max() <= 1.0
    assert data.task == "multiclass" and data.classes == list(range(10))
    assert data.details["image_shape"] == [1, 8, 8]

    train, test = split_train_test(data, 0.2, seed=0)
    split = encode_split(data, train, test)
    assert split.X_train.shape == (len(train), 1, 8, 8)
    assert abs(split.X_train.mean()) < 1e-4 and abs(split.X_train.std() - 1) < 1e-3
    assert abs(split.X_eval.mean()) > 1e-4  # the statistics came from the training rows only

    reloaded = encoder_from_json(split.preprocessor.to_json())
    np.testing.assert_array_equal(reloaded.transform(data.features[test]), split.X_eval)
    assert reloaded.model_input() == {"input_shape": (1, 8, 8)}


def _png(path, size=(6, 5), value=0, mode="L"):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new(mode, size, value).save(path)


def test_image_folder_reads_classes_from_sub_folders(tmp_path):
    for label, value in (("cat", 0), ("dog", 255)):
        for i in range(3):
            _png(tmp_path / label / f"{i}.png", value=value)
    (tmp_path / "dog" / "notes.txt").write_text("not an image")  # other files are ignored
    data = load_images(tmp_path)
    assert data.features.shape == (6, 1, 5, 6)  # 6 wide, 5 high
    assert data.classes == ["cat", "dog"] and data.task == "binary"
    assert data.y.tolist() == [0, 0, 0, 1, 1, 1]
    assert data.features[data.y == 1].min() == 1.0 and data.features[data.y == 0].max() == 0.0


def test_image_folder_mixed_modes_become_rgb(tmp_path):
    _png(tmp_path / "a" / "0.png", value=128)
    _png(tmp_path / "b" / "0.png", value=(255, 0, 0), mode="RGB")
    data = load_images(tmp_path)
    assert data.features.shape == (2, 3, 5, 6)
    np.testing.assert_allclose(data.features[0, :, 0, 0], [128 / 255] * 3)


def test_image_folder_errors_name_the_file(tmp_path):
    _png(tmp_path / "a" / "0.png")
    _png(tmp_path / "a" / "1.png", size=(7, 5))
    with pytest.raises(DataError, match=r"'.*1\.png' is 7x5 \(width x height\) but '.*0\.png' is 6x5"):
        load_images(tmp_path)
    (tmp_path / "a" / "1.png").write_bytes(b"not a png")
    with pytest.raises(DataError, match=r"image file '.*1\.png' could not be read"):
        load_images(tmp_path)
    (tmp_path / "b").mkdir()
    (tmp_path / "a" / "1.png").unlink()
    with pytest.raises(DataError, match=r"class folder '.*b' has no image files"):
        load_images(tmp_path)
    with pytest.raises(DataError, match="has no class sub-folders"):
        load_images(tmp_path / "b")


def test_image_arrays_shapes_and_errors(tmp_path):
    images = np.random.default_rng(0).random((6, 5, 4))
    data = load_images(images, y=[0, 1, 2] * 2)
    assert data.features.shape == (6, 1, 5, 4) and data.task == "multiclass"
    with pytest.raises(DataError, match=r"images must be an array of shape \(N, C, H, W\) or \(N, H, W\); "
                                        r"got shape \(6, 20\)"):
        load_images(images.reshape(6, 20), y=[0, 1] * 3)
    with pytest.raises(DataError, match="channels-last"):
        load_images(np.zeros((6, 8, 8, 3)), y=[0, 1] * 3)
    with pytest.raises(DataError, match=r"images in an array need their labels: pass y=\.\.\. or --labels"):
        load_images(images)
    with pytest.raises(DataError, match="6 samples but 5 labels"):
        load_images(images, y=[0, 1] * 2 + [0])
    with pytest.raises(DataError, match="fractional numbers"):
        load_images(images, y=np.linspace(0, 1, 6))
    assert load_images(images, y=np.linspace(0, 1, 6), task="regression").task == "regression"

    np.save(tmp_path / "x.npy", images)
    np.save(tmp_path / "labels.npy", np.array(["a", "b"] * 3))
    from_files = load_images(str(tmp_path / "x.npy"), labels=str(tmp_path / "labels.npy"))
    assert from_files.name == "x" and from_files.classes == ["a", "b"]


def test_signals_from_arrays_and_npz(tmp_path):
    signals = np.random.default_rng(0).normal(size=(8, 30))
    data = load_signals(signals, y=[0, 1] * 4)
    assert data.kind == "signal" and data.features.shape == (8, 1, 30)
    assert data.details["signal_shape"] == [1, 30]
    np.savez(tmp_path / "s.npz", X=signals.reshape(8, 2, 15), y=np.arange(8) % 4)
    from_npz = load_signals(tmp_path / "s.npz")
    assert from_npz.features.shape == (8, 2, 15) and from_npz.classes == [0, 1, 2, 3]
    with pytest.raises(DataError, match=r"signals must be an array of shape \(N, C, L\) or \(N, L\)"):
        load_signals(np.zeros((8, 2, 3, 4)), y=[0, 1] * 4)
    with pytest.raises(DataError, match="signals in an array need their labels"):
        load_signals(signals)


def test_mnist1d_keeps_its_split_and_is_cached(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    np.random.seed(7)
    expected_next = np.random.random()
    np.random.seed(7)
    first = load_signals(dataset="mnist1d")  # generated
    assert np.random.random() == expected_next  # the caller's global generator is left alone
    assert list((tmp_path / "nntune").glob("mnist1d-*.npz"))
    second = load_signals(dataset="mnist1d")  # read from the cache

    assert first.features.shape == (5000, 1, 40) and first.task == "multiclass" and len(first.classes) == 10
    train, val, test = first.fixed_split
    assert (len(train), len(val), len(test)) == (3600, 400, 1000)
    assert test.tolist() == list(range(4000, 5000))
    assert len(np.intersect1d(train, val)) == 0
    assert np.bincount(first.y[val]).min() >= 38  # stratified: about 40 of each digit
    for a, b in zip(first.fixed_split, second.fixed_split, strict=True):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(first.features, second.features)
    np.testing.assert_array_equal(first.y, second.y)
    (fold_train, fold_val), = make_folds(first, np.arange(4000), None, 0.2, seed=3)
    np.testing.assert_array_equal(fold_val, val)


def test_samples_beyond_float32_and_infinite_regression_labels_are_refused():
    # 1e308 became inf in float32 and was reported as "NaN or infinite"; infinite regression
    # labels failed every trial with a NaN loss.
    signals = np.random.default_rng(0).normal(size=(8, 30))
    signals[2, 5] = 1e308
    with pytest.raises(DataError, match=r"1 of the 8 signals hold values beyond 3.4e\+38 \(the largest float32"):
        load_signals(signals, y=[0, 1] * 4)
    labels = np.linspace(0, 1, 8)
    labels[3] = -np.inf
    with pytest.raises(DataError, match=r"regression target 'label' holds 1 infinite value\(s\) \(inf or -inf\); "
                                        r"replace them with numbers, or drop those rows"):
        load_signals(signals[:, :4] * 0, y=labels, task="regression")
