"""Population training: K plain MLPs of one depth trained at once as one batched model.

Small networks spend their time on per-operation overhead, not arithmetic: a 2x64 MLP at batch
32 keeps one CPU thread about 2% busy. Trained together, K such networks cost about the same
number of operations per step as one, each a K-times larger batched matrix multiply.

How the population is laid out, and why it is written here rather than with `torch.func`:

- Every member's weights live in one flat (K, P) parameter, viewed per layer as (K, out, in)
  and (K, out). Members narrower than the population are padded with zeros; a padded unit's
  pre-activation is 0, every activation maps 0 to 0, and no gradient reaches a padded weight,
  so a padded member trains exactly as it would alone. (Layer norm averages over the member's
  own units only, through a mask; batch norm keeps each member's running statistics in one
  flat (K, S) buffer beside the weights.)
- Lite periodic embeddings of the numeric columns (the mlp's `plr_lite`, rtdl_num_embeddings'
  `PeriodicEmbeddings(lite=True)`) are every member's own frequencies and shared-column linear
  layer, at the front of the flat parameter; their width is the same for every member.
- The optimizer is written for the flat parameter (Adam, AdamW and SGD with momentum, each
  update as torch's own, in a handful of tensor operations for the whole population), because
  torch's optimizers take one learning rate per parameter group: a group per member would cost
  K kernel launches per step. Learning rates, weight decay, momentum, dropout and label
  smoothing are (K,) tensors: one value per member.
- Each member keeps the recipe's schedule (nntune's `Schedule` over a placeholder optimizer
  holding only its hyperparameters), its own shuffle of the rows (a generator seeded as `fit`
  seeds it), its own early stopping, restored best epoch and divergence check: a member that
  stops, diverges or is stopped by its callback leaves the population; the rest go on.

A member's history, best epoch and weights match what `fit` gives the same network alone up to
float noise, except that dropout draws its masks from another stream.
"""

from __future__ import annotations

import math
import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from ..errors import ConfigError
from ..models._tabular_blocks import NumericEmbedding
from ._heads import Head
from ._metrics import Metric
from ._recipe import DEFAULTS, Schedule
from ._trainer import EVAL_CHUNK, FitResult, TrainingDiverged, _steps

OPTIMIZERS = ("adam", "adamw", "sgd")
NORMS = ("none", "layer", "batch")
EMBEDDINGS = ("none", "plr_lite")
# What every member of one population shares: the training loop's shape. (Per member: lr,
# weight_decay, momentum, dropout, label_smoothing, widths, embedding scale, initial weights
# and seed.)
SHARED = ("n_layers", "activation", "norm", "optimizer", "nesterov", "schedule", "batch_size", "max_epochs",
          "warmup_epochs", "patience", "min_delta", "restore_best", "loss", "class_weight", "embedding")
EMBEDDING_SHAPE = ("embedding_dim", "embedding_frequencies")  # shared too, where there is an embedding
# Recipe entries the population does not model: a member with any of them set trains alone.
UNSUPPORTED = {"l1": 0.0, "l2": 0.0, "clip_norm": None, "clip_value": None, "mixup_alpha": 0.0,
               "residual": False, "k": 1, "curriculum": "none", "augment": False, "pretrain": False}
ACTIVATIONS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "relu": F.relu, "leaky_relu": F.leaky_relu, "gelu": F.gelu, "silu": F.silu, "tanh": torch.tanh, "selu": F.selu,
}
ADAM_BETAS, ADAM_EPS = (0.9, 0.999), 1e-8  # torch.optim.Adam's defaults, which `fit` uses


def population_key(recipe: Mapping[str, Any]) -> tuple | None:
    """What members must share to train together, or None when the recipe needs something a
    population does not model (it then trains alone with `fit`)."""
    recipe = {**DEFAULTS, **recipe}
    if recipe.get("optimizer") not in OPTIMIZERS or recipe.get("norm", "none") not in NORMS:
        return None
    if recipe.get("activation", "relu") not in ACTIVATIONS or recipe.get("embedding", "none") not in EMBEDDINGS:
        return None
    for name, off in UNSUPPORTED.items():
        if recipe.get(name, off) not in (off, None, 0, False, "none"):
            return None
    shared = SHARED + (EMBEDDING_SHAPE if recipe.get("embedding", "none") != "none" else ())
    return tuple(str(recipe.get(name, "none" if name == "embedding" else None)) for name in shared)


@dataclass
class Member:
    """One network of a population: a plain MLP (`nntune.models.mlp.MLP`, trained in place),
    its recipe and its seed (the row order; as `fit`'s `seed`)."""

    module: nn.Module
    recipe: dict[str, Any]
    seed: int = 0


@dataclass
class MemberResult(FitResult):
    error: BaseException | None = None  # raised by the member's callback, or its divergence


class _Layout:
    """Where each layer's weight and bias sit in the flat (K, P) parameter, at the population's
    padded widths; and each member's own widths."""

    def __init__(self, modules: Sequence[nn.Module]) -> None:
        self.widths = [_widths(m) for m in modules]  # per member: input, hidden..., output
        depth = {len(w) for w in self.widths}
        if len(depth) != 1 or len({w[0] for w in self.widths}) != 1 or len({w[-1] for w in self.widths}) != 1:
            raise ConfigError("a population's members need the same depth, inputs and outputs")
        embeds = {_embedding_shape(m) for m in modules}
        if len(embeds) != 1:
            raise ConfigError("a population's members need the same numerical embedding (or none)")
        # (numeric columns, frequencies, values per column) of the lite periodic embedding, or None
        self.embed: tuple[int, int, int] | None = embeds.pop()
        self.padded = [max(w[i] for w in self.widths) for i in range(len(self.widths[0]))]
        offset = 0
        self.embed_slices: tuple[slice, slice, slice] | None = None
        if self.embed is not None:  # frequencies (n, f), linear weight stored (2f, d), bias (d)
            n, f, d = self.embed
            freq = slice(0, n * f)
            weight = slice(freq.stop, freq.stop + 2 * f * d)
            self.embed_slices = (freq, weight, slice(weight.stop, weight.stop + d))
            offset = weight.stop + d
        self.slices: list[tuple[slice, slice]] = []
        for a, b in zip(self.padded, self.padded[1:], strict=False):
            weight = slice(offset, offset + a * b)
            bias = slice(weight.stop, weight.stop + b)
            self.slices.append((weight, bias))
            offset = bias.stop
        self.norm_slices: list[tuple[slice, slice]] = []
        for width in self.padded[1:-1]:  # norm gain and shift per hidden layer
            self.norm_slices.append((slice(offset, offset + width), slice(offset + width, offset + 2 * width)))
            offset += 2 * width
        self.size = offset
        # Batch norm's running mean and variance per hidden layer, in a (K, S) buffer.
        self.stat_slices: list[tuple[slice, slice]] = []
        start = 0
        for width in self.padded[1:-1]:
            self.stat_slices.append((slice(start, start + width), slice(start + width, start + 2 * width)))
            start += 2 * width
        self.stat_size = start

    def masks(self, device: torch.device) -> list[torch.Tensor]:
        """Per hidden layer (K, 1, width): 1 on each member's own units, 0 on the padding."""
        masks = []
        for i, width in enumerate(self.padded[1:-1], start=1):
            own = torch.tensor([w[i] for w in self.widths], device=device)
            masks.append((torch.arange(width, device=device)[None, :] < own[:, None]).float().unsqueeze(1))
        return masks


def _widths(module: nn.Module) -> list[int]:
    blocks = list(getattr(module, "blocks", []))
    head = getattr(module, "head", None)
    if not isinstance(head, nn.Linear) or any(not isinstance(getattr(b, "linear", None), nn.Linear) for b in blocks) \
            or getattr(module, "members", 1) != 1 or getattr(module, "member_scale", None) is not None:
        raise ConfigError("population training takes plain MLPs (family mlp, embedding none or plr_lite, no TabM "
                          "members or weight norm)")
    linears = [b.linear for b in blocks] + [head]
    return [linears[0].in_features] + [lin.out_features for lin in linears]


def _embedding_shape(module: nn.Module) -> tuple[int, int, int] | None:
    embedding = getattr(module, "embedding", None)
    if embedding is None:
        return None
    embed = getattr(embedding, "embed", None)
    if not isinstance(embedding, NumericEmbedding) or not isinstance(embed.linear, nn.Linear) \
            or not isinstance(embed.activation, nn.ReLU):
        raise ConfigError("population training takes the lite periodic embedding (plr_lite) only")
    return embedding.n_numeric, int(embed.periodic.weight.shape[1]), embedding.dim


def _linears(module: nn.Module) -> list[nn.Linear]:
    return [b.linear for b in module.blocks] + [module.head]


def _norms(module: nn.Module) -> list[nn.Module]:
    return [b.norm for b in module.blocks]


class _Population:
    """The K members as one batched MLP over inputs (K, B, F) or shared rows (B, F).

    The weights are one flat (K, P) tensor, and so are their gradients; each layer's weight,
    bias, norm gain and shift and embedding part is a leaf tensor viewing its columns, its `.grad`
    a view of the flat gradient, which backward fills in place. So the optimizer updates the
    whole population in a few operations on two tensors, without copying a layer in or out."""

    def __init__(self, members: Sequence[Member], device: torch.device) -> None:
        modules = [m.module for m in members]
        self.layout = _Layout(modules)
        recipes = [{**DEFAULTS, **m.recipe} for m in members]
        self.activation = ACTIVATIONS[recipes[0].get("activation", "relu")]
        norm = recipes[0].get("norm", "none")
        self.layer_norm, self.batch_norm = norm == "layer", norm == "batch"
        self.training = True
        flat = torch.zeros(len(members), self.layout.size)
        stats = torch.zeros(len(members), self.layout.stat_size)
        for k, module in enumerate(modules):
            if self.layout.embed_slices is not None:
                freq, weight, bias = self.layout.embed_slices
                embed = module.embedding.embed
                flat[k, freq] = embed.periodic.weight.detach().reshape(-1)
                flat[k, weight] = embed.linear.weight.detach().t().reshape(-1)  # stored (2f, d)
                flat[k, bias] = embed.linear.bias.detach()
            for (w, b), lin, (i, o) in zip(self.layout.slices, _linears(module), self._shapes(), strict=True):
                weight = torch.zeros(o, i)
                weight[:lin.out_features, :lin.in_features] = lin.weight.detach()
                flat[k, w] = weight.t().reshape(-1)  # stored (in, out): x @ W without a transpose
                flat[k, b.start:b.start + lin.out_features] = lin.bias.detach()
            if self.layer_norm or self.batch_norm:
                for (g, s), (mean, var), norm in zip(self.layout.norm_slices, self.layout.stat_slices,
                                                     _norms(module), strict=True):
                    width = norm.weight.shape[0]
                    flat[k, g.start:g.start + width] = norm.weight.detach()
                    flat[k, s.start:s.start + width] = norm.bias.detach()
                    if self.batch_norm:
                        stats[k, mean.start:mean.start + width] = norm.running_mean
                        stats[k, var.start:var.start + width] = norm.running_var
        self.masks = self.layout.masks(device)
        self.dropout = torch.tensor([float(r.get("dropout", 0.0)) for r in recipes], device=device).view(-1, 1, 1)
        norms = _norms(modules[0]) if self.layer_norm or self.batch_norm else []
        self.eps = [float(norm.eps) for norm in norms]
        self.stat_momentum = [float(norm.momentum) for norm in norms] if self.batch_norm else []
        self._bind(flat.to(device), stats.to(device))

    def _shapes(self) -> list[tuple[int, int]]:
        padded = self.layout.padded
        return list(zip(padded, padded[1:], strict=False))

    def _bind(self, flat: torch.Tensor, stats: torch.Tensor) -> None:
        """Leaves viewing `flat` (and gradients viewing one flat gradient); batch norm's running
        statistics viewing `stats`."""
        self.flat, self.grad, self.stats = flat, torch.zeros_like(flat), stats
        K = flat.shape[0]

        def leaf(columns: slice, *shape: int) -> torch.Tensor:
            tensor = flat[:, columns].view(K, *shape).requires_grad_()
            tensor.grad = self.grad[:, columns].view(K, *shape)
            return tensor

        self.weights = [leaf(w, i, o) for (w, _), (i, o) in zip(self.layout.slices, self._shapes(), strict=True)]
        self.biases = [leaf(b, 1, o) for (_, b), (_, o) in zip(self.layout.slices, self._shapes(), strict=True)]
        self.gains = [leaf(g, 1, g.stop - g.start) for g, _ in self.layout.norm_slices]
        self.shifts = [leaf(s, 1, s.stop - s.start) for _, s in self.layout.norm_slices]
        self.running = [(stats[:, mean], stats[:, var]) for mean, var in self.layout.stat_slices]
        if self.layout.embed_slices is not None:
            (n, f, d), (freq, weight, bias) = self.layout.embed, self.layout.embed_slices
            self.frequencies = leaf(freq, 1, n, f)
            self.embed_weight, self.embed_bias = leaf(weight, 2 * f, d), leaf(bias, 1, d)

    def keep(self, rows: torch.Tensor) -> None:
        """Only these members (indices into the current population) go on."""
        self._bind(self.flat[rows].clone(), self.stats[rows].clone())
        self.masks = [m[rows] for m in self.masks]
        self.dropout = self.dropout[rows]

    def train(self, mode: bool = True) -> None:
        self.training = mode

    def eval(self) -> None:
        self.training = False

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        h = self._embed(x) if self.layout.embed is not None else x
        last = len(self.weights) - 1
        for layer, (weight, bias) in enumerate(zip(self.weights, self.biases, strict=True)):
            h = torch.baddbmm(bias, h, weight) if h.dim() == 3 else torch.matmul(h, weight) + bias
            if layer == last:
                return h
            if self.layer_norm or self.batch_norm:
                mask = self.masks[layer]
                normed = _masked_layer_norm(h, mask, self.eps[layer]) if self.layer_norm else self._batch_norm(h, layer)
                h = self.activation(normed * self.gains[layer] + self.shifts[layer]) * mask
            else:
                h = self.activation(h)
            if self.training and bool((self.dropout > 0).any()):
                keep = 1.0 - self.dropout
                h = h * (torch.rand_like(h) < keep) / keep
        return h

    def _embed(self, x: torch.Tensor) -> torch.Tensor:
        """PeriodicEmbeddings(lite=True) of the numeric columns, per member: (K, B, n * d + rest)."""
        n = self.layout.embed[0]
        numeric, rest = x[..., :n], x[..., n:]
        if x.dim() == 2:  # shared rows (evaluation)
            numeric, rest = numeric.unsqueeze(0), rest.unsqueeze(0).expand(self.flat.shape[0], -1, -1)
        z = 2 * math.pi * self.frequencies * numeric[..., None]  # (K, B, n, f)
        K, B = z.shape[:2]
        z = torch.cat([torch.cos(z), torch.sin(z)], -1).view(K, -1, z.shape[-1] * 2)
        # One (B * n, 2f) x (2f, d) product per member: a broadcast 4-D matmul would run B * K small ones.
        embedded = F.relu(torch.baddbmm(self.embed_bias, z, self.embed_weight))  # (K, B * n, d)
        return torch.cat([embedded.view(K, B, -1), rest], -1)

    def _batch_norm(self, h: torch.Tensor, layer: int) -> torch.Tensor:
        """nn.BatchNorm1d per member: the batch's statistics while training (running averages
        updated as torch updates them, with the unbiased variance), the running ones in eval."""
        running_mean, running_var = self.running[layer]  # (K, W) views of `stats`; h is (K, B, W)
        if not self.training:
            return (h - running_mean[:, None]) / torch.sqrt(running_var[:, None] + self.eps[layer])
        mean = h.mean(1, keepdim=True)
        var = h.var(1, unbiased=False, keepdim=True)
        with torch.no_grad():
            rows = h.shape[1]
            momentum = self.stat_momentum[layer]
            running_mean.lerp_(mean.squeeze(1), momentum)
            running_var.lerp_(var.squeeze(1) * (rows / max(rows - 1, 1)), momentum)
        return (h - mean) / torch.sqrt(var + self.eps[layer])

    def write_back(self, k: int, module: nn.Module, flat: torch.Tensor, stats: torch.Tensor) -> None:
        """Member k's weights (row k of `flat`, in the first layout) and running statistics (row
        k of `stats`) into its own MLP, unpadded."""
        with torch.no_grad():
            if self.layout.embed_slices is not None:
                (n, f, d), (freq, weight, bias) = self.layout.embed, self.layout.embed_slices
                embed = module.embedding.embed
                embed.periodic.weight.copy_(flat[k, freq].view(n, f))
                embed.linear.weight.copy_(flat[k, weight].view(2 * f, d).t())
                embed.linear.bias.copy_(flat[k, bias])
            for (w, b), lin, (i, o) in zip(self.layout.slices, _linears(module), self._shapes(), strict=True):
                weight = flat[k, w].view(i, o).t()
                lin.weight.copy_(weight[:lin.out_features, :lin.in_features])
                lin.bias.copy_(flat[k, b][:lin.out_features])
            if self.layer_norm or self.batch_norm:
                for (g, s), (mean, var), norm in zip(self.layout.norm_slices, self.layout.stat_slices,
                                                     _norms(module), strict=True):
                    width = norm.weight.shape[0]
                    norm.weight.copy_(flat[k, g][:width])
                    norm.bias.copy_(flat[k, s][:width])
                    if self.batch_norm:
                        norm.running_mean.copy_(stats[k, mean][:width])
                        norm.running_var.copy_(stats[k, var][:width])


def _masked_layer_norm(h: torch.Tensor, mask: torch.Tensor, eps: float) -> torch.Tensor:
    """Layer norm over each member's own units only (biased variance, as nn.LayerNorm)."""
    count = mask.sum(-1, keepdim=True)
    mean = (h * mask).sum(-1, keepdim=True) / count
    centred = (h - mean) * mask
    var = centred.pow(2).sum(-1, keepdim=True) / count
    return centred / torch.sqrt(var + eps)


class _Optimizer:
    """Adam, AdamW or SGD (momentum, Nesterov) over the flat (K, P) parameter, each update as
    torch.optim's with its defaults, with per-member learning rate, weight decay and momentum
    read from each member's placeholder optimizer (where its schedule writes them)."""

    def __init__(self, name: str, nesterov: bool, recipes: Sequence[Mapping[str, Any]], device: torch.device) -> None:
        self.name, self.nesterov = name, nesterov
        # One placeholder torch optimizer per member, holding no weights, only the hyperparameters
        # its `Schedule` adjusts (lr, and beta1 or momentum under one-cycle).
        self.placeholders = [_placeholder(name, r) for r in recipes]
        self.weight_decay = torch.tensor([float(r["weight_decay"]) for r in recipes], device=device)[:, None]
        self.step_count = 0
        self.m: torch.Tensor | None = None
        self.v: torch.Tensor | None = None
        self.denom: torch.Tensor | None = None  # Adam's scratch, kept so no step allocates it anew
        self.device = device
        self.refresh()

    def refresh(self) -> None:
        """Read each member's current rate (and momentum or beta1) from its placeholder."""
        groups = [p.param_groups[0] for p in self.placeholders]
        self.lr = torch.tensor([g["lr"] for g in groups], device=self.device)[:, None]
        self.momentum = torch.tensor([g["betas"][0] if "betas" in g else g["momentum"] for g in groups],
                                     device=self.device)[:, None]

    def keep(self, rows: torch.Tensor) -> None:
        keep = rows.tolist()
        self.placeholders = [self.placeholders[i] for i in keep]
        self.weight_decay = self.weight_decay[rows]
        self.lr, self.momentum = self.lr[rows], self.momentum[rows]
        self.m = None if self.m is None else self.m[rows]
        self.v = None if self.v is None else self.v[rows]
        self.denom = None if self.v is None else torch.empty_like(self.v)

    @torch.no_grad()
    def step(self, p: torch.Tensor, g: torch.Tensor) -> None:
        """One update of every member; `g` (the flat gradient buffer) is used as scratch."""
        lr = self.lr
        self.step_count += 1
        if self.name == "sgd":
            g.addcmul_(p, self.weight_decay)
            if self.m is None:
                self.m = g.clone()
            else:
                self.m.mul_(self.momentum).add_(g)
            update = g.addcmul_(self.m, self.momentum) if self.nesterov else self.m
            p.addcmul_(update, lr, value=-1.0)
            return
        beta1, beta2 = self.momentum, ADAM_BETAS[1]
        if self.name == "adamw":
            p.mul_(1 - lr * self.weight_decay)
        else:
            g.addcmul_(p, self.weight_decay)
        if self.m is None:
            self.m, self.v, self.denom = torch.zeros_like(p), torch.zeros_like(p), torch.empty_like(p)
        self.m.lerp_(g, 1 - beta1)
        self.v.mul_(beta2).addcmul_(g, g, value=1 - beta2)
        t = self.step_count
        # torch's p -= lr / (1 - beta1^t) * m / (sqrt(v) / sqrt(1 - beta2^t) + eps), in as few
        # passes over the population as that takes: the step size folded into the denominator.
        denom = torch.sqrt(self.v, out=self.denom).mul_(1 / math.sqrt(1 - beta2 ** t)).add_(ADAM_EPS)
        p.addcdiv_(self.m, denom.div_(lr / (1 - beta1 ** t)), value=-1.0)


def _placeholder(name: str, recipe: Mapping[str, Any]) -> torch.optim.Optimizer:
    dummy = [torch.zeros(0, requires_grad=True)]
    lr = float(recipe["lr"])
    if name == "sgd":
        return torch.optim.SGD(dummy, lr=lr, momentum=float(recipe["momentum"]))
    return torch.optim.Adam(dummy, lr=lr, betas=ADAM_BETAS)


class _Loss:
    """Each member's mean loss over the batch, as the head's loss would give it alone (label
    smoothing per member)."""

    def __init__(self, head: Head, smoothing: torch.Tensor, device: torch.device) -> None:
        self.head = head
        self.smoothing = smoothing  # (K, 1)
        self.weights = torch.tensor(head.class_weights, dtype=torch.float32, device=device) \
            if head.class_weights else None

    def keep(self, rows: torch.Tensor) -> None:
        self.smoothing = self.smoothing[rows]

    def __call__(self, out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        head = self.head
        if head.task == "regression":
            fn = {"mse": F.mse_loss, "mae": F.l1_loss, "huber": F.huber_loss}[head.loss]
            return fn(out.squeeze(-1), y, reduction="none").mean(-1)
        if head.loss == "bce":
            target = y * (1 - self.smoothing) + 0.5 * self.smoothing
            pos_weight = self.weights[1] / self.weights[0] if self.weights is not None else None
            return F.binary_cross_entropy_with_logits(out.squeeze(-1), target, pos_weight=pos_weight,
                                                      reduction="none").mean(-1)
        logp = F.log_softmax(out, dim=-1)
        nll = -logp.gather(-1, y.unsqueeze(-1)).squeeze(-1)
        if self.weights is None:
            smooth = -logp.mean(-1)
            return ((1 - self.smoothing) * nll + self.smoothing * smooth).mean(-1)
        w = self.weights[y]  # torch's weighted mean: divided by the weights of the rows' classes
        smooth = -(logp * self.weights).mean(-1)
        total = w.sum(-1, keepdim=True)
        return (((1 - self.smoothing) * nll * w + self.smoothing * smooth) / total).sum(-1)


EpochCallback = Callable[[int, int, dict[str, float]], None]


def fit_population(
    members: Sequence[Member],
    head: Head,
    X_train: np.ndarray,
    y_train: np.ndarray,
    *,
    X_val: np.ndarray | None = None,
    y_val: np.ndarray | None = None,
    metric: Metric | None = None,
    epochs: int | None = None,
    on_epoch_end: EpochCallback | None = None,
    deadline: float | None = None,
    device: torch.device | None = None,
) -> list[MemberResult]:
    """Train every member (in place, as `fit` trains one) and return one result each, in the
    order of `members`.

    `on_epoch_end(member, epoch, logs)` is called per member and epoch; an exception it raises
    (a pruned trial) stops that member only and is kept in its result's `error`. A member whose
    loss becomes NaN or infinite stops with a `TrainingDiverged` error. Members must share
    `population_key`."""
    if not members:
        return []
    with warnings.catch_warnings():
        # Each layer's gradient is a view of one flat buffer by design (see _Population); torch
        # notes that such strided gradients are not its preferred layout.
        warnings.filterwarnings("ignore", message="grad and param do not obey the gradient layout contract")
        return _fit_population(members, head, X_train, y_train, X_val, y_val, metric, epochs, on_epoch_end,
                               deadline, device)


def _fit_population(members, head, X_train, y_train, X_val, y_val, metric, epochs, on_epoch_end, deadline,
                    device) -> list[MemberResult]:
    keys = {population_key(m.recipe) for m in members}
    if None in keys or len(keys) != 1:
        raise ConfigError("a population's members must share depth, activation, norm, optimizer, schedule, "
                          "batch size and epochs, and use nothing population training does not model")
    device = device or torch.device("cpu")
    recipes = [{**DEFAULTS, **m.recipe} for m in members]
    shared = recipes[0]
    validate = X_val is not None and metric is not None
    epochs = int(epochs or shared["max_epochs"])
    X = torch.from_numpy(X_train).to(device)
    Y = head.targets(y_train, device)
    Xv = torch.from_numpy(X_val).to(device) if validate else None
    Yv = head.targets(y_val, device) if validate else None
    n = len(X)
    batch_size = max(1, min(int(shared["batch_size"]), n))
    steps = _steps(n, batch_size)

    model = _Population(members, device)
    optimizer = _Optimizer(shared["optimizer"], bool(shared["nesterov"]) and shared["optimizer"] == "sgd",
                           recipes, device)
    schedules = [Schedule(p, r, epochs, steps, total_steps=epochs * steps)
                 for p, r in zip(optimizer.placeholders, recipes, strict=True)]
    for placeholder in optimizer.placeholders:
        placeholder.step()  # (holds no weights; tells its schedule the optimizer has stepped)
    loss_fn = _Loss(head, torch.tensor([float(r["label_smoothing"]) for r in recipes], device=device)[:, None],
                    device)
    generators = [torch.Generator(device="cpu").manual_seed(m.seed) for m in members]
    patience, min_delta = int(shared["patience"]), float(shared["min_delta"])
    restore = bool(shared["restore_best"]) and validate
    per_step_schedule = shared["schedule"] == "onecycle"

    results = [MemberResult() for _ in members]
    active = list(range(len(members)))  # the member each population row trains
    best = model.flat.clone()  # per member: the weights it will keep
    best_stats = model.stats.clone()  # and its batch norm statistics
    bad = [0] * len(members)
    epoch_times: list[tuple[int, float]] = []  # (members training, seconds) per epoch
    for epoch in range(1, epochs + 1):
        epoch_started = time.monotonic()
        model.train()
        optimizer.refresh()
        perms = torch.stack([torch.randperm(n, generator=generators[i]) for i in active]).to(device)
        total = torch.zeros(len(active), device=device)
        out_of_time = False
        for step in range(steps):
            idx = perms[:, step * batch_size:(step + 1) * batch_size].reshape(-1)
            # (index_select on the flat row list: a third of the time of X[idx] with 2-D indices)
            xb = X.index_select(0, idx).view(len(active), -1, *X.shape[1:])
            yb = Y.index_select(0, idx).view(len(active), -1)
            losses = loss_fn(model(xb), yb)
            model.grad.zero_()
            losses.sum().backward()  # members share no weight: each gets its own loss's gradient
            optimizer.step(model.flat, model.grad)
            if per_step_schedule:
                for member in active:
                    schedules[member].step_batch()
                optimizer.refresh()
            total += losses.detach()
            if deadline is not None and time.monotonic() > deadline:
                out_of_time = True
                break
        train_loss = (total / steps).tolist()
        if validate:
            outputs = _predict(model, Xv)
            val_loss = loss_fn(outputs, Yv.expand(len(active), *Yv.shape)).tolist()
        leaving: list[int] = []
        for row, member in enumerate(active):
            result = results[member]
            result.epochs_run = epoch
            result.history["train_loss"].append(train_loss[row])
            logs = {"train_loss": train_loss[row]}
            monitored = train_loss[row]
            try:
                if not math.isfinite(train_loss[row]):
                    raise TrainingDiverged(f"training loss became {train_loss[row]} in epoch {epoch}")
                if validate:
                    score = metric(y_val, head.scores(outputs[row]))
                    if not math.isfinite(score):
                        raise TrainingDiverged(f"validation {metric.name} became {score} in epoch {epoch}")
                    result.history["val_loss"].append(val_loss[row])
                    result.history["val_score"].append(score)
                    logs.update(val_loss=val_loss[row], val_score=score)
                    monitored = val_loss[row]
                    # Ties move the best epoch forward, as in `fit`.
                    if result.best_epoch == 0 or metric.better(score, result.best_score, min_delta) \
                            or score == result.best_score:
                        result.best_epoch, result.best_score, bad[member] = epoch, score, 0
                        if restore:
                            best[member], best_stats[member] = model.flat[row], model.stats[row]
                    else:
                        bad[member] += 1
                else:
                    result.best_epoch = epoch
                schedules[member].step_epoch(monitored)
                if on_epoch_end is not None:
                    on_epoch_end(member, epoch, logs)
            except Exception as exc:  # this member stops; the others go on
                result.error = exc
                result.stop_reason = "diverged" if isinstance(exc, TrainingDiverged) else "stopped"
                leaving.append(row)
                continue
            if validate and bad[member] >= patience:
                result.stop_reason = "early_stopping"
                leaving.append(row)
        if out_of_time or (deadline is not None and time.monotonic() > deadline):
            for member in active:
                if results[member].stop_reason == "max_epochs":
                    results[member].stop_reason = "time"
            leaving = list(range(len(active)))
        if epoch == epochs:
            leaving = list(range(len(active)))
        epoch_times.append((len(active), time.monotonic() - epoch_started))
        if leaving:
            for row in leaving:
                if not restore:
                    best[active[row]], best_stats[active[row]] = model.flat[row], model.stats[row]
            active = _without(model, optimizer, loss_fn, active, leaving)
        if not active:
            break
    per_epoch = _epoch_seconds_alone(epoch_times)
    for k, (member, result) in enumerate(zip(members, results, strict=True)):
        model.write_back(k, member.module, best, best_stats)
        member.module.eval()
        # What the member would have taken alone, not the population's time: the final model's
        # time estimate retrains it alone (execution/_final.py final_seconds).
        result.seconds = per_epoch * result.epochs_run
    return results


def _epoch_seconds_alone(epoch_times: Sequence[tuple[int, float]]) -> float:
    """One member's seconds per epoch alone, from the population's (members training,
    seconds) per epoch: measured where one member trained on its own, else the least-squares
    line through the epochs' times extrapolated to one member (members leave at different
    epochs, so the counts differ), else, all epochs of one count, the time of a whole epoch."""
    if not epoch_times:
        return 0.0
    alone = [t for k, t in epoch_times if k == 1]
    if alone:
        return float(np.median(alone))
    counts = np.array([k for k, _ in epoch_times], dtype=float)
    times = np.array([t for _, t in epoch_times], dtype=float)
    fastest = float(times.min())
    if np.ptp(counts) == 0:
        return fastest
    slope, intercept = np.polyfit(counts, times, 1)
    # (bounded: at least one member's share of the fastest epoch, at most the fastest epoch)
    return float(np.clip(intercept + slope, fastest / counts.max(), fastest))


def _without(model: _Population, optimizer: _Optimizer, loss_fn: _Loss, active: list[int],
             leaving: list[int]) -> list[int]:
    """Drop the leaving rows from the population; returns the members still training."""
    gone = set(leaving)
    keep = [row for row in range(len(active)) if row not in gone]
    if keep:
        rows = torch.tensor(keep, dtype=torch.long, device=model.flat.device)
        model.keep(rows)
        optimizer.keep(rows)
        loss_fn.keep(rows)
    return [active[row] for row in keep]


@torch.no_grad()
def _predict(model: _Population, X: torch.Tensor) -> torch.Tensor:
    """Every active member's raw outputs for the shared rows X: (K, N, outputs)."""
    model.eval()
    parts = [model(X[i:i + EVAL_CHUNK]) for i in range(0, len(X), EVAL_CHUNK)]
    return parts[0] if len(parts) == 1 else torch.cat(parts, dim=1)
