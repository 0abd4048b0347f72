"""Autoencoder pretraining: teach an MLP's hidden layers to encode the inputs before the
supervised fit, using every row there is, labelled or not.

The hidden layers (the encoder) are joined to a mirrored decoder and trained to reconstruct
their inputs, optionally from a noisy copy (a denoising autoencoder). The encoder keeps what it
learned; the decoder is thrown away. The existing `fit` loop does the training, given a head
whose targets are the inputs themselves.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from ..errors import ConfigError, check_choice
from ._trainer import fit

PRETRAIN_LOSSES = ("mse", "bce")

PRETRAIN_DEFAULTS = {"pretrain_epochs": 0, "pretrain_loss": "mse", "pretrain_noise": 0.0}

# Off, a short and a longer warm start; noise only matters when pretraining runs.
PRETRAIN_SPACE = {
    "pretrain_epochs": {"type": "categorical", "choices": [0, 10, 30]},
    "pretrain_noise": {"type": "float", "low": 0.0, "high": 0.3, "when": {"pretrain_epochs": [10, 30]}},
}

# What the supervised recipe holds that does not belong in a reconstruction: mixup blends
# rows for class boundaries, l1/l2 would also shrink the decoder that is thrown away.
SUPERVISED_ONLY = {"mixup_alpha": 0.0, "l1": 0.0, "l2": 0.0, "restore_best": False}


def pretrain_encoder(module: nn.Module, X: np.ndarray, recipe: dict, *, epochs: int, loss: str = "mse",
                     noise: float = 0.0, device: torch.device | None = None, seed: int = 0,
                     deadline: float | None = None) -> list[float]:
    """Train the hidden layers of an nntune MLP as the encoder of an autoencoder on `X`, in
    place, and return the reconstruction loss of each epoch. Called between building the
    network and the supervised `fit`; `X` is preprocessed, and may add unlabelled rows.

    `loss` is "mse" or "bce" (binary cross-entropy on logits, for inputs in [0, 1]); `noise`
    is the standard deviation of Gaussian noise added to each training batch's inputs (the
    targets stay clean). The recipe's optimizer, learning rate and batch size are used.
    `deadline` (time.monotonic) ends pretraining early, as it ends `fit`.

    >>> pretrain_encoder(model, np.vstack([X_train, X_unlabelled]), recipe, epochs=10)
    """
    blocks = _encoder(module)
    loss = check_choice("pretrain_loss", loss, PRETRAIN_LOSSES)
    if int(epochs) != epochs or epochs < 0:
        raise ConfigError(f"pretrain_epochs must be a whole number >= 0 (0 switches pretraining off); got {epochs}")
    if not noise >= 0:
        raise ConfigError(f"pretrain_noise must be >= 0; got {noise}")
    if epochs == 0:
        return []
    # A copy only when needed; the caller's array is never written either way.
    X = np.ascontiguousarray(X, dtype=np.float32)
    input_dim = blocks[0].linear.in_features
    if X.ndim != 2 or X.shape[1] != input_dim or len(X) < 2:
        raise ConfigError(f"pretraining needs at least 2 rows of {input_dim} columns; got shape {X.shape}")
    if loss == "bce" and (X.min() < 0 or X.max() > 1):
        raise ConfigError(f"pretrain_loss 'bce' needs every input in [0, 1]; the inputs range from "
                          f"{float(X.min()):.4g} to {float(X.max()):.4g}: use 'mse' or scale them to [0, 1]")

    device = device or torch.device("cpu")
    module.to(device)
    autoencoder = nn.Sequential(GaussianNoise(noise, seed), blocks, _decoder(blocks)).to(device)
    # Layers frozen for transfer stay as loaded, batch-norm statistics included.
    frozen = [b for b in blocks if not any(p.requires_grad for p in b.parameters())]
    result = fit(autoencoder, Reconstruction(loss), X, X, {**recipe, **SUPERVISED_ONLY},
                 epochs=int(epochs), device=device, seed=seed, frozen=frozen, deadline=deadline)
    module.eval()
    return result.history["train_loss"]


def _encoder(module: nn.Module) -> nn.Sequential:
    blocks = getattr(module, "blocks", None)
    if not isinstance(blocks, nn.Sequential) or not all(
            isinstance(getattr(b, "linear", None), nn.Linear) and hasattr(b, "activation") for b in blocks):
        raise ConfigError("pretraining needs an nntune MLP (model family 'mlp', hidden layers in `blocks`); "
                          f"got a {type(module).__name__}: set pretrain_epochs to 0")
    if len(blocks) == 0:
        raise ConfigError("pretraining needs at least one hidden layer (n_layers >= 1); "
                          "this network has none: set pretrain_epochs to 0")
    return blocks


def _decoder(blocks: nn.Sequential) -> nn.Sequential:
    """Linear layers mirroring the encoder, hidden widths reversed back to the input width, with
    the encoder's activation between them; the last layer's outputs stay raw (values or logits)."""
    widths = [blocks[0].linear.in_features] + [b.linear.out_features for b in blocks]
    widths.reverse()
    layers: list[nn.Module] = []
    for a, b in zip(widths, widths[1:], strict=False):
        layers += [nn.Linear(a, b), copy.deepcopy(blocks[0].activation)]
    return nn.Sequential(*layers[:-1])


class GaussianNoise(nn.Module):
    """Adds N(0, std^2) noise to its input while training, nothing in eval mode; with its own
    seeded generator so a pretraining run repeats exactly."""

    def __init__(self, std: float, seed: int) -> None:
        super().__init__()
        self.std = float(std)
        self.seed = seed
        self.generator: torch.Generator | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.std == 0:
            return x
        if self.generator is None or self.generator.device != x.device:
            self.generator = torch.Generator(device=x.device).manual_seed(self.seed)
        return x + self.std * torch.randn(x.shape, generator=self.generator, device=x.device, dtype=x.dtype)


@dataclass
class Reconstruction:
    """A head for `fit` whose targets are the inputs: the interface of `Head` that the loop
    uses (targets, loss_fn, task), so the supervised loop trains the autoencoder unchanged."""

    loss: str
    task: str = "reconstruction"

    def targets(self, y: np.ndarray, device: torch.device) -> torch.Tensor:
        return torch.from_numpy(np.ascontiguousarray(y, dtype=np.float32)).to(device)

    def loss_fn(self, device: torch.device) -> nn.Module:
        return nn.BCEWithLogitsLoss() if self.loss == "bce" else nn.MSELoss()

    def scores(self, outputs: torch.Tensor) -> np.ndarray:
        return outputs.detach().float().cpu().numpy()
