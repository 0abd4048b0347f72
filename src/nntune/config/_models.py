"""The run configuration, one validated model per section. CLI options override these keys."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from ._duration import parse_duration
from ._space import ParamSpec, Scalar


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class DataConfig(_Section):
    path: str | None = Field(None, description="CSV, TSV or Parquet file")
    dataset: str | None = Field(None, description="built-in: digits, breast_cancer, wine, iris, diabetes")
    target: str | None = Field(None, description="the column to predict")
    task: Literal["auto", "binary", "multiclass", "regression"] = "auto"
    test_size: float = Field(0.2, gt=0, lt=1, description="share held out for the final test")
    val_size: float = Field(0.2, gt=0, lt=1, description="validation share when cv is not set")
    unlabeled: str | None = Field(None, description="rows without labels (same feature columns) for "
                                  "autoencoder pretraining: CSV, TSV or Parquet")
    kind: Literal["auto", "table", "image", "signal", "timeseries", "text", "graph"] = Field(
        "auto", description="what the data is; auto: a table unless a text or time column, an image folder, "
        "an array file or a graph says otherwise")
    labels: str | None = Field(None, description="images or signals in a .npy file: the labels' .npy file")
    text_column: str | None = Field(None, description="text: the column holding the texts")
    tokenizer: Literal["word", "bpe"] = Field("word", description="text: word-level or byte-pair encoding, "
                                              "trained on the training texts only")
    vocab_size: int = Field(20000, ge=10, description="text: the largest vocabulary (the search may use less)")
    seq_len: int = Field(128, ge=4, description="text: the most tokens per text (the search may use fewer)")
    synonyms: str | None = Field(None, description="text augmentation: a CSV of word,synonym rows")
    time_column: str | None = Field(None, description="time series: the column of time stamps")
    lookback: int = Field(24, ge=1, description="time series: the longest window of past steps (the search "
                          "may use fewer)")
    horizon: int = Field(1, ge=1, description="time series: forecast the value this many steps after a window")
    graph: str | None = Field(None, description="graph: the Planetoid data set's name in the folder (Cora)")


class ModelConfig(_Section):
    family: str = Field("mlp", description="model family from the registry")


class EarlyStoppingConfig(_Section):
    patience: int = Field(10, ge=1, description="epochs without improvement before stopping")
    min_delta: float = Field(0.0, ge=0, description="smallest change that counts as improvement")
    restore_best: bool = Field(True, description="end with the best epoch's weights")


class CurriculumConfig(_Section):
    order: Literal["none", "easy_first", "hard_first", "random"] = Field(
        "none", description="easy_first: a curriculum; hard_first (anti-curriculum) and random are controls")
    scoring: Literal["loss", "column"] = Field(
        "loss", description="difficulty: the loss of quick reference models trained on the other half "
        "of the rows (no row scores itself), or a column of the data")
    column: str | None = Field(None, description="scoring column: numeric, higher = harder; not a feature")
    pacing: Literal["linear", "root", "step"] = Field(
        "linear", description="how the share of the training rows used per epoch grows")
    start: float = Field(0.25, gt=0, le=1, description="share of the rows (the easiest) used in epoch 1")
    full: float = Field(0.5, gt=0, le=1, description="share of max_epochs after which every row is used")


class PretrainConfig(_Section):
    epochs: int = Field(0, ge=0, description="autoencoder pretraining epochs for the hidden layers (0: off)")
    loss: Literal["mse", "bce"] = Field("mse", description="reconstruction loss; bce needs inputs in [0, 1]")
    noise: float = Field(0.0, ge=0, description="denoising: std of the Gaussian noise added to the inputs")


class TrainingConfig(_Section):
    max_epochs: int = Field(100, ge=1)
    final: Literal["auto", "refit", "folds"] = Field(
        "auto", description="the delivered model: folds (the selected recipe's k fold models, each early-stopped "
        "on its own fold, averaged), refit (retrained on all training rows with the trial's exact recipe, "
        "stopped at its chosen epoch), or auto (folds with cross-validation, else refit where one refit takes "
        "at most a quarter of the timeout)")
    ensemble: int = Field(
        3, ge=1, description="with final folds: the top trials whose fold models greedy ensemble selection "
        "may average, on their out-of-fold predictions (1: the best trial's alone); where final auto refits "
        "(one validation split): the refits of the best recipe, each with its own seed, averaged where the "
        "time allows (1: one network; final refit always delivers one)")
    early_stopping: EarlyStoppingConfig = Field(default_factory=EarlyStoppingConfig)
    loss: Literal["auto", "cross_entropy", "bce", "mse", "mae", "huber"] = "auto"
    label_smoothing: float | None = Field(
        None, ge=0, lt=1, description="null: the model family's own value for classification (mlp 0.1, "
        "the other families 0); regression is never smoothed")
    class_weight: Literal["none", "balanced"] = "none"
    clip_norm: float | None = Field(None, gt=0)
    clip_value: float | None = Field(None, gt=0)
    device: str = Field("auto", description="auto picks cuda, then mps, then cpu")
    threads: int | None = Field(None, ge=1, description="torch threads (default: available cores)")
    curriculum: CurriculumConfig = Field(default_factory=CurriculumConfig)
    pretrained: str | None = Field(None, description="transfer learning: start from these weights (an nntune "
                                   "model directory or a .safetensors file with matching layer names)")
    freeze_layers: int = Field(0, ge=0, description="with pretrained weights: hidden layers kept frozen")
    pretrained_lr_scale: float = Field(1.0, gt=0, description="with pretrained weights: their learning rate "
                                       "is the recipe's times this")
    pretrain: PretrainConfig = Field(default_factory=PretrainConfig)


class SearchConfig(_Section):
    strategy: str = Field("auto", description="auto (Sobol start, then a GP; see docs/strategies.md), grid, "
                          "random, qmc, tpe, gp, cmaes, nsga2 (several objectives), depth (choose n_layers first)")
    pruner: str = Field("auto", description="auto (the strategy's choice: auto's rung pruner with the auto "
                        "strategy, else none), none, median, percentile, successive_halving, hyperband")
    trials: int | None = Field(None, ge=1, description="trial budget (default 50 without a timeout)")
    timeout: float | None = Field(None, description="wall-clock limit for the whole run: 90s, 10m, 1h")
    cv: Annotated[int, Field(ge=2)] | Literal["auto"] | None = Field(
        "auto", description="k-fold cross-validation: a number of folds, none (one validation split), or auto "
        "(5 folds on tables of up to 2,000 training rows, where one split is too small to choose by; else none)")
    metric: str | None = Field(None, description="accuracy, balanced_accuracy, f1, roc_auc, log_loss, r2, rmse, mae")
    space: dict[str, ParamSpec | Scalar] = Field(
        default_factory=dict, description="parameters to search (or fix, with a plain value)")
    space_mode: Literal["extend", "replace"] = Field(
        "extend", description="extend the default space or replace it")
    objectives: list[str] = Field(
        default_factory=list, description="several objectives: the metric first, then any of params, "
        "latency (ms per batch of 256 rows), train_time (s); e.g. [accuracy, params]")
    constraints: list[str] = Field(
        default_factory=list, description="limits such as 'params<=50000' or 'latency<=2'")
    pick: str = Field("first", description="which Pareto-optimal trial becomes the model: first "
                      "(best on the first objective), knee, or the name of an objective")
    warm_start: str | None = Field(None, description="an earlier run directory or STORAGE_URL#STUDY whose "
                                   "best configurations are tried first")
    cocktail: bool = Field(False, description="regularisation cocktail: each regulariser (dropout, batch "
                           "norm, weight decay, L1, mixup, clipping, skip connections) an on/off switch "
                           "with its strength as a conditional parameter")
    augment: bool = Field(False, description="search the data kind's augmentations: flips, rotations, crops, "
                          "jitter and cutout for images; jitter, scaling, shifts and warps for signals and time "
                          "series; token deletion, swaps, insertions and synonyms for text; noise for tables")
    population: Annotated[int, Field(ge=1)] | Literal["auto", "off"] = Field(
        "auto", description="population training: trials of one shape trained at once as one batched model "
        "(MLPs on tables); auto (small networks on CPU, where it pays), off, or a number of trials K")
    depth_trials: int = Field(6, ge=1, description="strategy depth: trials per depth tried, each scored by "
                              "k-fold CV; counted apart from `trials`, which all go to the chosen depth")
    depth_max: int | None = Field(None, ge=0, description="strategy depth: the deepest n_layers tried "
                                  "(default: the highest n_layers of the space)")

    @field_validator("timeout", mode="before")
    @classmethod
    def _duration(cls, value: Any) -> float | None:
        try:
            return parse_duration(value)
        except Exception as exc:  # pydantic reports ValueError with the key's location
            raise ValueError(str(exc)) from None

    @field_validator("cv", mode="before")
    @classmethod
    def _folds(cls, value: Any) -> Any:
        # As written on the command line or in YAML: 5, "5", auto, none (one validation split).
        if isinstance(value, str):
            text = value.strip().lower()
            if text in ("none", "off", "no"):
                return None
            if text.isdigit():
                return int(text)
            if text != "auto":
                raise ValueError(f"cv must be a number of folds (2 or more), auto or none; got '{value}'")
            return text
        return value

    @field_validator("population", mode="before")
    @classmethod
    def _population(cls, value: Any) -> Any:
        # As written on the command line or in YAML: auto, off, 16, "16".
        if isinstance(value, str):
            text = value.strip().lower()
            if text.isdigit():
                return int(text)
            if text not in ("auto", "off"):
                raise ValueError(f"population must be auto, off or a number of trials (1 or more); got '{value}'")
            return text
        return value


class ExecutionConfig(_Section):
    workers: int = Field(1, ge=1, description="trial processes sharing the study (local backend)")
    backend: Literal["local", "ray"] = Field("local", description="local processes, or tasks on a Ray cluster")
    address: str | None = Field(None, description="Ray cluster: auto or HOST:PORT; unset starts a local one")
    cpus_per_trial: float = Field(1.0, gt=0, description="Ray: CPUs reserved per trial (torch threads)")
    gpus_per_trial: float = Field(0.0, ge=0, description="Ray: GPUs reserved per trial")
    heartbeat: float = Field(10.0, gt=0, description="seconds between a running trial's heartbeats "
                             "(database storage); a trial silent for 3 heartbeats is failed and retried")
    retries: int = Field(2, ge=0, description="times a trial whose worker died is run again")


class CompressStep(_Section):
    """One compression of the tuned model, run after tuning (see `nntune compress`)."""

    method: Literal["prune", "quantize", "distill"]
    out: str | None = Field(None, description="model directory (default: model-pruned, model-int8 or "
                            "model-student in the run directory)")
    sparsity: float | None = None
    structured: bool | None = None
    criterion: str | None = None
    steps: int | None = None
    finetune_epochs: int | None = None
    student_units: float | None = None
    temperature: float | None = None
    alpha: float | None = None
    epochs: int | None = None
    student_dropout: float | None = None

    def options(self) -> dict[str, Any]:
        return self.model_dump(exclude={"method", "out"}, exclude_none=True)


class RunConfig(_Section):
    """A whole tuning run, as written in a YAML file."""

    data: DataConfig = Field(default_factory=DataConfig)
    model: ModelConfig = Field(default_factory=ModelConfig)
    training: TrainingConfig = Field(default_factory=TrainingConfig)
    search: SearchConfig = Field(default_factory=SearchConfig)
    execution: ExecutionConfig = Field(default_factory=ExecutionConfig)
    storage: str | None = Field(None, description="SQLAlchemy URL (sqlite:///..., postgresql://...) or a "
                                "*.journal file; default: sqlite in the run directory")
    study: str | None = Field(None, description="study name (default: the data's name)")
    out: str | None = Field(None, description="run directory (default: runs/<study>)")
    resume: bool = Field(False, description="continue the study of this name, or start it")
    seed: int = Field(0, ge=0, le=2**32 - 1,
                      description="seed for splits, sampler and weights (0 to 2**32 - 1, as NumPy takes)")
    compress: list[CompressStep] = Field(
        default_factory=list, description="compressions of the tuned model, run after tuning")

    @field_validator("compress", mode="before")
    @classmethod
    def _one_or_many(cls, value: Any) -> Any:
        # compress: quantize, or a list of methods and/or {method: ..., options} mappings
        steps = [value] if isinstance(value, str | dict) else value
        return [{"method": s} if isinstance(s, str) else s for s in steps] if isinstance(steps, list) else steps
