"""Data augmentation of training batches, tunable per kind of data.

`make_augment(recipe, kind)` returns the callable that `fit(..., augment=...)` applies to every
training batch on its device (never to a validation batch), or None when the recipe switches
augmentation off, so that training is then exactly as without it. `augment_space(kind)` is the
search-space fragment that tunes it.

The recipe keys (`AUGMENT_DEFAULTS`): `augment` is the master switch (off by default; the
ablation turns it off to measure its effect); `aug_magnitude` in [0, 1] scales the strength of
every image, signal and time-series transform; one `aug_<transform>` switch per transform;
`aug_p` is the per-token probability of the text operations and `aug_noise` the noise std of
tables (in standardized units). With `augment: true` alone a mild, safe set is on.

- images (B, C, H, W): flips, rotation, random resized crop and cutout with kornia, and
  brightness/contrast jitter in torch: the inputs are standardized, and kornia's colour jitter
  clamps to [0, 1] (and its saturation and hue need RGB in [0, 1]);
- signals and time-series windows (B, C, L): jitter, scaling, time shift and window warping;
- text token ids (B, L), 0 = padding at the end: synonym replacement, insertion, swap of
  neighbours and deletion; back-translation is `back_translate`, applied once before tokenizing;
- tables (B, F): Gaussian noise (mixup is the trainer's own `mixup_alpha`).

Randomness: the torch transforms draw from their own generator seeded by `seed`, so a run is
reproducible and torch's global stream is left alone. kornia takes no generator and draws from
torch's global random stream: image runs are reproducible when the caller seeds torch
(`torch.manual_seed`), as it does for the network's initial weights.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch

from ..errors import ConfigError, DataError, check_choice

Augment = Callable[[torch.Tensor], torch.Tensor]

AUGMENT_DEFAULTS: dict[str, Any] = {
    "augment": False, "aug_magnitude": 0.5,
    # images
    "aug_flip_h": False, "aug_flip_v": False, "aug_rotate": True, "aug_crop": True, "aug_color": True,
    "aug_cutout": False,
    # signals and time-series windows
    "aug_jitter": True, "aug_scale": False, "aug_shift": False, "aug_warp": False,
    # text
    "aug_p": 0.1, "aug_synonym": True, "aug_insert": False, "aug_swap": True, "aug_delete": True,
    # tables
    "aug_noise": 0.1,
}

# The switches each kind reads, in the order the transforms run.
SWITCHES: dict[str, tuple[str, ...]] = {
    "image": ("aug_color", "aug_flip_h", "aug_flip_v", "aug_rotate", "aug_crop", "aug_cutout"),
    "signal": ("aug_jitter", "aug_scale", "aug_shift", "aug_warp"),
    "timeseries": ("aug_jitter", "aug_scale", "aug_shift", "aug_warp"),
    "text": ("aug_synonym", "aug_insert", "aug_swap", "aug_delete"),
    "table": (),
    "graph": (),  # node indices: nothing to augment
}

# Strengths at aug_magnitude 1 (inputs are standardized: noise and offsets are in stds).
MAX_DEGREES = 30.0        # rotation: +-30 degrees
MIN_CROP_AREA = 0.5       # random resized crop keeps at least half the area
MAX_ASPECT_CHANGE = 0.3   # ... with an aspect ratio in [1/1.3, 1.3]
MAX_CUTOUT_AREA = 0.25    # cutout erases a rectangle of up to a quarter of the image
MAX_BRIGHTNESS = 0.4      # offset of +-0.4 std
MAX_CONTRAST = 0.4        # contrast factor in [0.6, 1.4]
MAX_JITTER = 0.2          # Gaussian noise of std 0.2
MAX_SCALE = 0.5           # per-sample factor in [0.5, 1.5]
MAX_SHIFT = 0.2           # roll by up to a fifth of the length
MAX_WARP = 2.0            # a quarter of the window slowed down or sped up by up to 2x
WARP_SHARE = 0.25
PROBABILITY = 0.5         # of each flip, rotation and cutout per image
SPECIAL_IDS = 2           # text ids below this are [PAD]=0 and [UNK]=1

_ON = {"augment": True}


def _switch() -> dict[str, Any]:
    return {"type": "categorical", "choices": [False, True], "when": _ON}


_MAGNITUDE = {"type": "float", "low": 0.1, "high": 1.0, "when": _ON}
# Vertical flips are left out of the default image space (upside down is rarely a valid view of
# a natural image; add aug_flip_v for aerial or microscopy images), and scaling and shifting out
# of the time-series one: the label is the value after the window, so a scaled window or one
# whose last step moved no longer matches it.
_SPACES: dict[str, dict[str, dict[str, Any]]] = {
    "image": {"aug_magnitude": _MAGNITUDE, **{k: _switch() for k in (
        "aug_flip_h", "aug_rotate", "aug_crop", "aug_color", "aug_cutout")}},
    "signal": {"aug_magnitude": _MAGNITUDE, **{k: _switch() for k in SWITCHES["signal"]}},
    "timeseries": {"aug_magnitude": _MAGNITUDE, "aug_jitter": _switch(), "aug_warp": _switch()},
    "text": {"aug_p": {"type": "float", "low": 0.02, "high": 0.2, "when": _ON},
             **{k: _switch() for k in ("aug_insert", "aug_swap", "aug_delete")}},
    "table": {"aug_noise": {"type": "float", "low": 0.01, "high": 0.3, "log": True, "when": _ON}},
}


def augment_space(kind: str, *, synonyms: bool = False) -> dict[str, dict[str, Any]]:
    """The search-space fragment (the format of training.SPACE) that tunes augmentation for
    `kind`: whether to augment, and with it the strength and which transforms. `synonyms`: a
    synonym table is available, so synonym replacement is worth tuning. Empty for graphs."""
    check_choice("kind", kind, SWITCHES)
    if kind == "graph":
        return {}
    space = {"augment": {"type": "categorical", "choices": [False, True]}, **_SPACES[kind]}
    if kind == "text" and synonyms:
        space["aug_synonym"] = _switch()
    return {name: dict(spec) for name, spec in space.items()}


def make_augment(recipe: Mapping[str, Any], kind: str, *, seed: int = 0,
                 synonyms: Mapping[int, Sequence[int]] | None = None) -> Augment | None:
    """The augmentation the recipe asks for on batches of `kind`, or None when it is off or
    switches on no transform that applies (with synonym replacement, only when `synonyms`,
    a table of token id -> synonym ids, is given).

    >>> augment = make_augment({"augment": True, "aug_magnitude": 0.3}, "signal", seed=1)
    >>> augment(torch.zeros(2, 1, 40)).shape
    torch.Size([2, 1, 40])
    """
    check_choice("kind", kind, SWITCHES)
    recipe = {**AUGMENT_DEFAULTS, **recipe}
    if not recipe["augment"]:
        return None
    if kind == "graph":
        raise ConfigError("augment is on, but graph nodes cannot be augmented; set augment: false for graph data")
    magnitude = _within("aug_magnitude", recipe["aug_magnitude"], 0.0, 1.0)
    if kind == "table":
        noise = _within("aug_noise", recipe["aug_noise"], 0.0, math.inf)
        return TableNoise(noise, seed) if noise > 0 else None
    on = [name for name in SWITCHES[kind] if recipe[name]]
    if kind == "text":
        if not synonyms:
            on = [name for name in on if name != "aug_synonym"]
        p = _within("aug_p", recipe["aug_p"], 0.0, 1.0)
        return TextAugment(on, p, seed, synonyms) if on and p > 0 else None
    if not on:
        return None
    if kind == "image":
        return ImageAugment(on, magnitude, seed)
    return SignalAugment(on, magnitude, seed)


def _within(name: str, value: Any, low: float, high: float) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = math.nan
    if not low <= number <= high:
        accepted = f"between {low:g} and {high:g}" if math.isfinite(high) else f">= {low:g}"
        raise ConfigError(f"{name} must be a number {accepted}; got {value!r}")
    return number


class _Seeded:
    """Draws from a generator per device, seeded once: reproducible, and torch's global
    random stream stays as it was."""

    def __init__(self, seed: int) -> None:
        self.seed = int(seed)
        self._generators: dict[torch.device, torch.Generator] = {}

    def generator(self, device: torch.device) -> torch.Generator:
        if device not in self._generators:
            self._generators[device] = torch.Generator(device=device).manual_seed(self.seed)
        return self._generators[device]

    def uniform(self, *shape: int, like: torch.Tensor, low: float = 0.0, high: float = 1.0) -> torch.Tensor:
        """Uniform in [low, high), float32 on the batch's device."""
        draw = torch.rand(shape, generator=self.generator(like.device), device=like.device)
        return low + (high - low) * draw

    def normal(self, *shape: int, like: torch.Tensor) -> torch.Tensor:
        return torch.randn(shape, generator=self.generator(like.device), device=like.device, dtype=like.dtype)

    def integers(self, low: int, high: int, *shape: int, like: torch.Tensor) -> torch.Tensor:
        """Whole numbers in [low, high)."""
        return torch.randint(low, high, shape, generator=self.generator(like.device), device=like.device)


class TableNoise(_Seeded):
    """Gaussian noise of std `noise` added to every standardized feature."""

    def __init__(self, noise: float, seed: int) -> None:
        super().__init__(seed)
        self.noise = noise

    @torch.no_grad()
    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.noise * self.normal(*x.shape, like=x)


class SignalAugment(_Seeded):
    """Jitter, scaling, time shift and window warping of (B, C, L) windows, vectorized over
    the batch: each sample draws its own factor, shift and warp, shared by its channels."""

    def __init__(self, on: Sequence[str], magnitude: float, seed: int) -> None:
        super().__init__(seed)
        self.on, self.magnitude = list(on), magnitude

    @torch.no_grad()
    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        m = self.magnitude
        if "aug_jitter" in self.on:
            x = x + MAX_JITTER * m * self.normal(*x.shape, like=x)
        if "aug_scale" in self.on:
            x = x * self.uniform(len(x), 1, 1, like=x, low=1 - MAX_SCALE * m, high=1 + MAX_SCALE * m)
        if "aug_shift" in self.on:
            x = self.shift(x, round(MAX_SHIFT * m * x.shape[-1]))
        if "aug_warp" in self.on:
            x = self.warp(x, 1 + (MAX_WARP - 1) * m)
        return x

    def shift(self, x: torch.Tensor, most: int) -> torch.Tensor:
        """Roll each sample by its own number of steps in [-most, most] (wrapping around)."""
        if most < 1:
            return x
        steps = self.integers(-most, most + 1, len(x), 1, like=x)
        source = (torch.arange(x.shape[-1], device=x.device) - steps) % x.shape[-1]
        return x.gather(-1, source.unsqueeze(1).expand_as(x))

    def warp(self, x: torch.Tensor, most: float) -> torch.Tensor:
        """Stretch a random quarter of each sample by a factor in [1/most, most] and resample
        the whole to its length by linear interpolation; the first and last steps stay put."""
        length = x.shape[-1]
        if length < 3 or most <= 1:
            return x
        span = max(2.0, WARP_SHARE * (length - 1))
        start = self.uniform(len(x), 1, like=x, high=length - 1 - span)
        factor = most ** self.uniform(len(x), 1, like=x, low=-1.0, high=1.0)
        # The stretched series is longer by (factor - 1) * span; output step j sits at warped
        # coordinate v, which maps back to source coordinate u piece by piece.
        total = (length - 1) + (factor - 1) * span
        v = torch.arange(length, device=x.device, dtype=x.dtype) * (total / (length - 1))
        inside = start + (v - start) / factor
        after = v - (factor - 1) * span
        u = torch.where(v <= start, v, torch.where(v <= start + factor * span, inside, after))
        u = u.clamp(0, length - 1)
        low = u.floor().long().clamp(max=length - 2)
        weight = (u - low).unsqueeze(1)
        low = low.unsqueeze(1).expand_as(x)
        return x.gather(-1, low) * (1 - weight) + x.gather(-1, low + 1) * weight


class ImageAugment(_Seeded):
    """Brightness/contrast jitter (torch, seeded) then flips, rotation, random resized crop
    and cutout (one kornia pipeline per image size, made on the first batch of that size)."""

    def __init__(self, on: Sequence[str], magnitude: float, seed: int) -> None:
        super().__init__(seed)
        self.on, self.magnitude = list(on), magnitude
        self._pipelines: dict[tuple[int, int], torch.nn.Module] = {}

    @torch.no_grad()
    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if "aug_color" in self.on:
            x = self.color(x)
        pipeline = self.pipeline(x.shape[-2], x.shape[-1])
        return pipeline(x) if pipeline is not None else x

    def color(self, x: torch.Tensor) -> torch.Tensor:
        """Per image: contrast around the image's mean, then a brightness offset."""
        m, view = self.magnitude, (len(x), 1, 1, 1)
        contrast = self.uniform(*view, like=x, low=1 - MAX_CONTRAST * m, high=1 + MAX_CONTRAST * m)
        brightness = self.uniform(*view, like=x, low=-MAX_BRIGHTNESS * m, high=MAX_BRIGHTNESS * m)
        mean = x.mean(dim=(1, 2, 3), keepdim=True)
        return (x - mean) * contrast.to(x.dtype) + mean + brightness.to(x.dtype)

    def pipeline(self, height: int, width: int) -> torch.nn.Module | None:
        if (height, width) not in self._pipelines:
            self._pipelines[(height, width)] = self._kornia(height, width)
        return self._pipelines[(height, width)]

    def _kornia(self, height: int, width: int) -> torch.nn.Module | None:
        import kornia.augmentation as K

        m = self.magnitude
        aspect = 1 + MAX_ASPECT_CHANGE * m
        # Zeros fill rotated corners and erased boxes: the channel mean of standardized images.
        # kornia's crop takes `p` for the whole batch: every image is cropped, each at its own
        # scale (which may be close to all of it).
        makers = {
            "aug_flip_h": lambda: K.RandomHorizontalFlip(p=PROBABILITY),
            "aug_flip_v": lambda: K.RandomVerticalFlip(p=PROBABILITY),
            "aug_rotate": lambda: K.RandomRotation(MAX_DEGREES * m, p=PROBABILITY),
            "aug_crop": lambda: K.RandomResizedCrop((height, width), scale=(1 - (1 - MIN_CROP_AREA) * m, 1.0),
                                                    ratio=(1 / aspect, aspect), p=1.0),
            "aug_cutout": lambda: K.RandomErasing(scale=(0.02, 0.02 + (MAX_CUTOUT_AREA - 0.02) * m),
                                                  value=0.0, p=PROBABILITY),
        }
        ops = [makers[name]() for name in self.on if name in makers]
        return K.AugmentationSequential(*ops) if ops else None


class TextAugment(_Seeded):
    """Token-level operations on (B, L) ids padded with 0 at the end, each applied to a token
    with probability `p`: synonym replacement (from the table only), insertion of a random
    token after it (drawn from the batch's own tokens, so frequent words are inserted more
    often, and never [PAD] or [UNK]), swap with its right neighbour, deletion (a text keeps at
    least one token). Padding is never changed, only moved: texts stay left-aligned, a
    shortened text is padded at the end and a lengthened one loses what passes the length."""

    def __init__(self, on: Sequence[str], p: float, seed: int,
                 synonyms: Mapping[int, Sequence[int]] | None = None) -> None:
        super().__init__(seed)
        self.on, self.p = list(on), p
        self.table = _synonym_table(synonyms or {})
        self._tables: dict[torch.device, tuple[torch.Tensor, torch.Tensor]] = {}

    @torch.no_grad()
    def __call__(self, ids: torch.Tensor) -> torch.Tensor:
        steps = {"aug_synonym": self.replace, "aug_insert": self.insert, "aug_swap": self.swap,
                 "aug_delete": self.delete}
        for name in self.on:
            ids = steps[name](ids)
        return ids

    def chosen(self, mask: torch.Tensor) -> torch.Tensor:
        """The positions of `mask` that the operation picks, each with probability p."""
        return mask & (self.uniform(*mask.shape, like=mask) < self.p)

    def replace(self, ids: torch.Tensor) -> torch.Tensor:
        choices, counts = self._on_device(ids.device)
        known = (ids > 0) & (ids < len(counts))
        row = torch.where(known, ids, torch.zeros_like(ids))
        n = counts[row]
        picked = self.chosen(known & (n > 0))
        k = (self.uniform(*ids.shape, like=ids) * n).long().clamp(max=choices.shape[1] - 1)
        return torch.where(picked, choices[row, k], ids)

    def insert(self, ids: torch.Tensor) -> torch.Tensor:
        real = ids != 0
        pool = ids[ids >= SPECIAL_IDS]
        if len(pool) == 0:
            return ids
        batch, length = ids.shape
        after = self.chosen(real)
        width = real.long() + after.long()  # positions each token takes in the output
        position = width.cumsum(1) - width
        dump = 2 * length  # one column past the output where padding and unused draws go
        out = torch.zeros(batch, dump + 1, dtype=ids.dtype, device=ids.device)
        out.scatter_(1, torch.where(real, position, dump), ids)
        new = pool[self.integers(0, len(pool), batch, length, like=ids)]
        out.scatter_(1, torch.where(after, position + 1, dump), new)
        return out[:, :length].contiguous()

    def swap(self, ids: torch.Tensor) -> torch.Tensor:
        # Two passes, pairs starting at even then at odd positions, so no two swaps overlap.
        for parity in (0, 1):
            real = ids != 0
            pair = real[:, :-1] & real[:, 1:]
            pair[:, (1 - parity)::2] = False
            start = self.chosen(pair)
            swapped = ids.clone()
            swapped[:, :-1] = torch.where(start, ids[:, 1:], ids[:, :-1])
            swapped[:, 1:] = torch.where(start, ids[:, :-1], swapped[:, 1:])
            ids = swapped
        return ids

    def delete(self, ids: torch.Tensor) -> torch.Tensor:
        real = ids != 0
        keep = real & ~self.chosen(real)
        emptied = real.any(1) & ~keep.any(1)
        first = real.long().argmax(1)
        keep[emptied, first[emptied]] = True
        # A stable sort moves the kept tokens to the front in their order, the rest behind.
        order = torch.argsort((~keep).to(torch.int8), dim=1, stable=True)
        return ids.gather(1, order) * keep.gather(1, order)

    def _on_device(self, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        if device not in self._tables:
            self._tables[device] = tuple(t.to(device) for t in self.table)
        return self._tables[device]


def _synonym_table(synonyms: Mapping[int, Sequence[int]]) -> tuple[torch.Tensor, torch.Tensor]:
    """(choices, counts): row t lists token t's synonym ids, padded; counts[t] says how many.
    Pairs with a special id ([PAD], [UNK]: words outside the vocabulary) are dropped."""
    clean = {int(t): sorted({int(s) for s in alts if int(s) >= SPECIAL_IDS and int(s) != int(t)})
             for t, alts in synonyms.items() if int(t) >= SPECIAL_IDS}
    clean = {t: alts for t, alts in clean.items() if alts}
    size = max(clean, default=0) + 1
    width = max((len(a) for a in clean.values()), default=1)
    choices = torch.zeros(size, width, dtype=torch.int64)
    counts = torch.zeros(size, dtype=torch.int64)
    for token, alts in clean.items():
        choices[token, :len(alts)] = torch.tensor(alts)
        counts[token] = len(alts)
    return choices, counts


def load_synonyms(path: str | Path) -> dict[str, list[str]]:
    """Read a synonym table for text augmentation: word -> its synonyms.

    Format: a CSV file with one `word,synonym` pair per row; a word with several synonyms
    has several rows; a first row `word,synonym` is a header and skipped; empty lines are
    skipped and spaces around fields stripped. Replacement goes one way: add the reverse row
    to make it go both ways. The caller turns the words into token ids with the text encoder
    (`synonym_ids`). Raises DataError naming the line of a row that is not two non-empty fields.

    >>> load_synonyms("synonyms.csv")  # doctest: +SKIP
    {'big': ['large', 'huge'], 'film': ['movie']}
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"synonym file '{path}' does not exist")
    table: dict[str, list[str]] = {}
    with path.open(newline="", encoding="utf-8") as handle:
        for line, row in enumerate(csv.reader(handle), start=1):
            fields = [f.strip() for f in row]
            if not any(fields) or (line == 1 and [f.lower() for f in fields] == ["word", "synonym"]):
                continue
            if len(fields) != 2 or not all(fields):
                raise DataError(f"synonym file '{path.name}', line {line}: expected 'word,synonym'; got {row}")
            word, synonym = fields
            if synonym != word and synonym not in table.setdefault(word, []):
                table[word].append(synonym)
    if not table:
        raise DataError(f"synonym file '{path.name}' holds no 'word,synonym' rows")
    return table


def synonym_ids(synonyms: Mapping[str, Sequence[str]],
                token_id: Callable[[str], int | None]) -> dict[int, list[int]]:
    """The synonym table as token ids for `make_augment`, through the text encoder's lookup
    (`token_id(word)`: its id, or None when unknown). Words the vocabulary lacks are dropped,
    so are multi-token synonyms (the lookup gives None for them)."""
    out: dict[int, list[int]] = {}
    for word, alternatives in synonyms.items():
        word_id = token_id(word)
        ids = [i for i in (token_id(s) for s in alternatives) if i is not None and i >= SPECIAL_IDS]
        if word_id is not None and word_id >= SPECIAL_IDS and ids:
            out[int(word_id)] = [int(i) for i in ids]
    return out


def back_translate(texts: Sequence[str], translate: Callable[[list[str]], list[str]]) -> list[str]:
    """Paraphrases of `texts` from the user's back-translation function (e.g. English ->
    German -> English with any translation model), checked to give one string per text.

    Applied once to the training texts before tokenizing (not per batch: translating is
    slow): the caller adds the paraphrases as extra training rows with the same labels.
    Validation and test texts are never translated.

    >>> back_translate(["a good film"], lambda batch: [t.replace("film", "movie") for t in batch])
    ['a good movie']
    """
    texts = [str(t) for t in texts]
    out = translate(list(texts))
    if not isinstance(out, list | tuple) or len(out) != len(texts):
        got = f"{len(out)} texts" if isinstance(out, list | tuple) else type(out).__name__
        raise DataError(f"the back-translation function must return one text per text: {len(texts)} in, {got} out")
    if not all(isinstance(t, str) for t in out):
        raise DataError("the back-translation function must return strings")
    return list(out)
