"""Images as ArrayData: from an array, a .npy/.npz file, a folder of class folders, or digits.

`load_data` calls `load_images` when the data looks like images (see _kinds). The helpers
that read samples and labels from arrays and array files are shared with _signals.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..errors import DataError, check_choice
from ._arrays import ArrayData, Standardize, encode_labels
from ._schema import LARGEST_NUMBER
from ._task import detect_task

IMAGE_DATASETS = ("digits",)
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif")
SAMPLE_KEYS = ("X", "x", "data")  # the same keys _kinds looks at to choose the kind
LABEL_KEYS = ("y", "Y", "labels")
# Greyscale modes Pillow opens; 16-bit ones keep their depth instead of going through 8-bit "L".
_GREY_MODES = ("1", "L", "LA", "I;16", "I;16B", "I;16L", "I")
_DEEP_GREY_MODES = ("I;16", "I;16B", "I;16L", "I")


def load_images(source: Any = None, *, y: Any = None, dataset: str | None = None, labels: str | None = None,
                task: str = "auto") -> ArrayData:
    """Images (N, C, H, W) float32 with their labels, standardized per channel by the encoder.

    `source`: an array (N, C, H, W) or (N, H, W) with labels `y`; a .npy file with labels in
    the .npy file `labels`; a .npz file holding `X` and `y`; or a folder with one sub-folder of
    image files per class (read as values in [0, 1]). `dataset="digits"`: scikit-learn's 8x8
    digits. Raises DataError on bad input.

    >>> data = load_images(dataset="digits")
    >>> data.features.shape
    (1797, 1, 8, 8)
    """
    check_one_source(source, dataset)
    if dataset is not None:
        check_choice("dataset", dataset, IMAGE_DATASETS)
        images, raw_labels, name = _digits()
    elif isinstance(source, str | Path) and Path(source).is_dir():
        images, raw_labels = _read_folder(Path(source))
        name = Path(source).name
    else:
        samples, raw_labels, name = read_samples(source, y=y, labels=labels, what="images")
        images = _as_images(samples)
    return labelled_data(images, raw_labels, task, kind="image", name=name,
                         details={"image_shape": list(images.shape[1:])})


def _digits() -> tuple[np.ndarray, np.ndarray, str]:
    from sklearn.datasets import load_digits

    bunch = load_digits()
    return (bunch.images[:, None] / 16.0).astype(np.float32), bunch.target, "digits"  # pixels are 0..16


def _as_images(samples: np.ndarray) -> np.ndarray:
    if samples.ndim == 3:
        return samples[:, None]
    if samples.ndim != 4:
        raise DataError(f"images must be an array of shape (N, C, H, W) or (N, H, W); got shape {samples.shape}")
    if samples.shape[-1] in (1, 3, 4) and samples.shape[1] not in (1, 3, 4):
        # Guessing the layout would silently scramble the pixels of a true (N, C, H, W) array.
        raise DataError(f"images of shape {samples.shape} look channels-last (N, H, W, C); nntune takes "
                        "(N, C, H, W): pass X.transpose(0, 3, 1, 2)")
    return samples


def _read_folder(root: Path) -> tuple[np.ndarray, np.ndarray]:
    """Every image of every class folder, as one (N, C, H, W) array in [0, 1] and class names."""
    class_dirs = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not class_dirs:
        raise DataError(f"image folder '{root}' has no class sub-folders; put each class's images in a "
                        "sub-folder named after the class")
    pixels, names, first = [], [], None
    for class_dir in class_dirs:
        files = sorted(p for p in class_dir.iterdir()
                       if p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith("."))
        if not files:
            raise DataError(f"class folder '{class_dir}' has no image files ({', '.join(IMAGE_SUFFIXES)})")
        for path in files:
            image = _read_image(path)
            if first is None:
                first = (path, image.shape[:2])
            elif image.shape[:2] != first[1]:
                # Resizing would change the data behind the user's back: ask for one size.
                raise DataError(f"image '{path}' is {_size(image.shape)} but '{first[0]}' is {_size(first[1])}; "
                                "all images must have one size (resize them beforehand)")
            pixels.append(image)
            names.append(class_dir.name)
    if any(image.shape[2] == 3 for image in pixels):  # mixed: greyscale becomes RGB, as Pillow would
        pixels = [np.repeat(image, 3, axis=2) if image.shape[2] == 1 else image for image in pixels]
    return np.stack(pixels).transpose(0, 3, 1, 2), np.asarray(names)


def _read_image(path: Path) -> np.ndarray:
    """One image as (H, W, 1) for greyscale or (H, W, 3) for colour, float32 in [0, 1]."""
    from PIL import Image

    try:
        with Image.open(path) as image:
            if image.mode in _DEEP_GREY_MODES:
                return (np.asarray(image, dtype=np.float32) / 65535.0)[..., None]
            if image.mode in _GREY_MODES:
                return (np.asarray(image.convert("L"), dtype=np.float32) / 255.0)[..., None]
            return np.asarray(image.convert("RGB"), dtype=np.float32) / 255.0  # alpha is dropped
    except Exception as exc:  # Pillow raises many kinds for a broken file
        raise DataError(f"image file '{path}' could not be read: {exc}".splitlines()[0]) from None


def _size(shape: tuple[int, ...]) -> str:
    return f"{shape[1]}x{shape[0]} (width x height)"


# --- shared with _signals: samples and labels from arrays and array files -----------------


def check_one_source(source: Any, dataset: str | None) -> None:
    if (source is None) == (dataset is None):
        raise DataError("give exactly one of data (an array, file or folder) or dataset (a built-in name)")


def read_samples(source: Any, *, y: Any, labels: str | Path | None, what: str) -> tuple[np.ndarray, Any, str]:
    """(samples, raw labels, name) from an array, a .npy file or a .npz file.

    Labels given as `y` win over a `labels` .npy file, which wins over the .npz's own `y`."""
    stored_labels = None
    if isinstance(source, np.ndarray):
        samples, name = source, what
    elif isinstance(source, str | Path):
        path = Path(source)
        name = path.stem
        if path.is_dir():
            raise DataError(f"{what} are read from an array or a .npy/.npz file; '{path}' is a folder")
        if path.suffix.lower() == ".npz":
            samples, stored_labels = _read_npz(path)
        elif path.suffix.lower() == ".npy":
            samples = _read_npy(path)
        else:
            raise DataError(f"{what} file '{path}' has suffix '{path.suffix}'; accepted: .npy, .npz")
    else:
        raise DataError(f"{what} must be a NumPy array or a .npy/.npz file; got {type(source).__name__}")
    if y is None and labels is not None:
        y = _read_npy(Path(labels))
    if y is None:
        y = stored_labels
    if y is None:
        raise DataError(f"{what} in an array need their labels: pass y=... or --labels FILE.npy")
    return _check_samples(samples, what), y, name


def _read_npy(path: Path) -> np.ndarray:
    if not path.exists():
        raise DataError(f"array file '{path}' does not exist")
    if path.suffix.lower() != ".npy":
        raise DataError(f"'{path}' must be a .npy file (np.save)")
    try:
        return np.load(path, allow_pickle=False)  # pickles can run code: never load them
    except Exception as exc:
        raise DataError(f"array file '{path}' could not be read: {exc}".splitlines()[0]) from None


def _read_npz(path: Path) -> tuple[np.ndarray, np.ndarray | None]:
    if not path.exists():
        raise DataError(f"array file '{path}' does not exist")
    try:
        with np.load(path, allow_pickle=False) as archive:
            sample_key = next((k for k in SAMPLE_KEYS if k in archive.files), None)
            if sample_key is None:
                raise DataError(f"'{path}' holds {', '.join(archive.files)}; nntune reads the samples from 'X' "
                                "and the labels from 'y'")
            label_key = next((k for k in LABEL_KEYS if k in archive.files), None)
            return archive[sample_key], archive[label_key] if label_key else None
    except DataError:
        raise
    except Exception as exc:
        raise DataError(f"array file '{path}' could not be read: {exc}".splitlines()[0]) from None


def _check_samples(samples: np.ndarray, what: str) -> np.ndarray:
    if len(samples) == 0:
        raise DataError(f"the {what} array has no samples")
    if not (np.issubdtype(samples.dtype, np.number) or samples.dtype == bool):
        raise DataError(f"{what} must be numbers; got an array of dtype {samples.dtype}")
    if samples.dtype.kind == "f" and samples.dtype.itemsize > 4:  # float32 would turn these into inf
        huge = (np.abs(samples) > LARGEST_NUMBER).reshape(len(samples), -1).any(axis=1)
        if huge.any():
            raise DataError(f"{int(huge.sum())} of the {len(samples)} {what} hold values beyond {LARGEST_NUMBER:.3g} "
                            "(the largest float32, which nntune's networks compute in); rescale them")
    samples = samples.astype(np.float32, copy=False)
    bad = int((~np.isfinite(samples)).reshape(len(samples), -1).any(axis=1).sum())
    if bad:
        raise DataError(f"{bad} of the {len(samples)} {what} hold NaN or infinite values")
    return samples


def labelled_data(features: np.ndarray, raw_labels: Any, task: str, *, kind: str, name: str,
                  details: dict[str, Any], fixed_split: tuple | None = None) -> ArrayData:
    """ArrayData with labels checked and encoded; with task 'auto', labels are classes."""
    values = np.asarray(raw_labels)
    if values.ndim == 2 and values.shape[1] == 1:
        values = values[:, 0]
    if values.ndim != 1:
        raise DataError(f"labels must be one value per sample; got an array of shape {values.shape}")
    if len(values) != len(features):
        raise DataError(f"{len(features)} samples but {len(values)} labels")
    missing = int(pd.isna(values).sum()) if values.dtype.kind in "fO" else 0
    if missing:
        raise DataError(f"{missing} of the {len(values)} labels are missing (NaN or None)")
    task = detect_task(pd.Series(values, name="label"), _class_task(values, task))
    codes, classes = encode_labels(values, task)
    return ArrayData(features, codes, task, kind, name, Standardize, classes=classes,
                     fixed_split=fixed_split, details=details)


def _class_task(values: np.ndarray, task: str) -> str:
    """'auto' means classes here (a class can be any number); regression only when asked."""
    if task != "auto":
        return task
    if values.dtype.kind == "f" and not np.all(np.mod(values, 1) == 0):
        example = values[np.mod(values, 1) != 0][0]
        raise DataError(f"labels are fractional numbers (e.g. {example}): pass task='regression' "
                        "(--task regression) to predict them, or give class labels")
    return "binary" if len(np.unique(values)) == 2 else "multiclass"
