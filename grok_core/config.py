"""Run configuration: one frozen dataclass, validated on construction, hashed into a run key.

Every knob that changes a run's numbers lives here, so a run is fully named by its config.
Bad values raise ValueError before any tensor is built, and values are stored as their field's
declared type, so that equal configs hash to equal keys (wd=1 and wd=1.0 are one run).
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import numbers
from dataclasses import dataclass

from .losses import LOSS_PRECISIONS, LOSSES
from .measures import MEASURES
from .tasks import FUNCTIONS, LABEL_TRANSFORMS
from .updates import GRAD_TRANSFORMS, OPTIMISERS, PARAM_MASKS

# Bump when the training semantics change (same config, different numbers): old store entries
# then stop matching instead of being silently reused. The fingerprint is a hash of short float64
# runs under this version (tests/test_semantics.py), so a change of what training computes fails a test.
SEMANTICS_VERSION = 1
SEMANTICS_FINGERPRINT = "85e48c9c74e00655"

SPLITS = ("random", "square", "strip", "symmetric")
MODELS = ("transformer", "mlp", "twohot", "quadratic", "onlymlp")
INIT_RESCALES = ("none", "l1", "l2")
ACTIVATIONS = ("relu", "gelu", "square")
EMBED_INITS = ("normal", "toeplitz", "circulant", "onehot")
PRECISIONS = ("fp32", "tf32")
SNAPSHOT_DTYPES = ("float32", "float16")

# Fields that may differ between runs trained together in one batch; everything else fixes
# the shapes or the optimiser and must be shared.
PER_RUN_FIELDS = ("fn", "split", "split_param", "frac_train", "split_seed", "init_seed",
                  "embed_init", "lr", "wd", "output_scale", "label_transform", "param_mask",
                  "stop_acc", "stop_hold", "stop_after", "corrupt_share", "corrupt_seed", "keep_fraction",
                  "ticket_base", "ticket_step", "init_rescale", "grokfast_alpha",
                  "grokfast_lamb")

# Beyond any device's memory (the p*p table), and it keeps the primality test below fast.
P_MAX = 2 ** 31 - 1
# torch.Generator takes seeds below 2**64.
SEED_MAX = 2 ** 64 - 1


def is_prime(n: int) -> bool:
    if n < 2:
        return False
    f = 2
    while f * f <= n:
        if n % f == 0:
            return False
        f += 1
    return True


def _integral(value) -> bool:
    """A whole number that is not a bool: 3 or 3.0, not 3.5, nan, inf, True or '3'."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        return False
    return isinstance(value, numbers.Integral) or float(value).is_integer()


def _as_type(name: str, value, kind: str):
    """value as a field of declared type `kind` (int, float, bool, str) holds it, or a ValueError.

    Ints stay ints and integral floats become ints (YAML's 1.0e+4); floats take ints and are stored as
    floats; numbers are finite; bools are never numbers, and strings are never anything else."""
    if kind == "int" and _integral(value):
        return int(value)
    if kind == "float" and isinstance(value, numbers.Real) and not isinstance(value, bool):
        try:
            x = float(value)
        except OverflowError:
            x = math.inf
        if math.isfinite(x):
            return x
    if (kind == "bool" and isinstance(value, bool)) or (kind == "str" and isinstance(value, str)):
        return value
    need = {"int": "an integer", "float": "a finite number", "bool": "true or false (unquoted in YAML)",
            "str": "a string"}[kind]
    hint = ""
    if kind in ("int", "float") and isinstance(value, str) and value.lower().count("e") == 1:
        mant, exp = value.lower().split("e")       # PyYAML wants a point and a signed exponent: 1e10 is text
        try:
            float(value)
            hint = (f" (YAML reads {value} as text; write {mant if '.' in mant else mant + '.0'}e"
                    f"{exp if exp[:1] in '+-' else '+' + exp})")
        except ValueError:
            pass
    raise ValueError(f"{name}={value!r} is not allowed; it must be {need}{hint}")


def positive_int(name: str, value) -> int:
    """A count (seeds, steps between checkpoints, runs per batch): an integer >= 1, or a ValueError."""
    if not _integral(value) or value < 1:
        raise ValueError(f"{name}={value!r} is not allowed; it must be an integer >= 1")
    return int(value)


class HashedConfig:
    """to_dict / from_dict / replace / key for the frozen config dataclasses (RunConfig, ResNetConfig).

    key() hashes the full resolved config together with key_tags(): the training-semantics version
    and whatever else tells one kind of run from another. Fields named in LATER_FIELDS (added after runs
    were first stored) enter the hash only when set away from their defaults, so those runs keep their keys.
    """
    LATER_FIELDS: tuple[str, ...] = ()

    def key_tags(self) -> dict:
        raise NotImplementedError

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict):
        unknown = set(d) - {f.name for f in dataclasses.fields(cls)}
        if unknown:
            raise ValueError(f"unknown config field(s) {sorted(unknown, key=str)}; known fields: "
                             f"{', '.join(f.name for f in dataclasses.fields(cls))}")
        return cls(**d)

    def _store_declared_types(self):
        """Each field as its declared type (see _as_type), so that the key does not depend on how a value
        was spelled; called first in __post_init__."""
        for f in dataclasses.fields(self):
            object.__setattr__(self, f.name, _as_type(f.name, getattr(self, f.name), f.type))

    def replace(self, **changes):
        return dataclasses.replace(self, **changes)

    BATCH_SHARES = "shapes and optimiser settings"     # what runs trained in one batch share (batch_key), in words

    @classmethod
    def check_batchable(cls, configs: list) -> None:
        """ValueError, naming the fields that differ, unless the configs are some and share one batch_key()."""
        if not configs:
            raise ValueError(f"configs is empty; give at least one {cls.__name__}")
        first = configs[0].batch_key()
        for c in configs[1:]:
            if c.batch_key() != first:
                diff = sorted({k for (k, v) in first} ^ {k for (k, v) in c.batch_key()} |
                              {k for (k, v), (k2, v2) in zip(first, c.batch_key()) if v != v2})
                raise ValueError(f"runs in one batch must share {cls.BATCH_SHARES}; these differ: {diff}")

    def key(self) -> str:
        """Hash of the full resolved config plus the training-semantics version."""
        d = self.to_dict()
        for f in dataclasses.fields(self):
            if f.name in self.LATER_FIELDS and d[f.name] == f.default:
                del d[f.name]
        blob = json.dumps({**self.key_tags(), **d}, sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]


def _allowed(name, value, allowed):
    if value not in allowed:
        raise ValueError(f"{name}={value!r} is not allowed; choose one of {', '.join(map(repr, allowed))}")


@dataclass(frozen=True)
class RunConfig(HashedConfig):
    """One training run. Defaults are the paper's 1-layer transformer on x+y mod 97."""
    # task and split
    p: int = 97                    # modulus, a prime >= 3
    fn: str = "add"                # see grok_core.tasks.FUNCTIONS
    split: str = "random"          # random | square (k) | strip (t) | symmetric (unordered pairs i <= j only)
    split_param: int = 0           # k for square, t for strip; ignored (must be 0) for random
    frac_train: float = 0.3        # share of the whole p*p table used for training (symmetric: of the p(p+1)/2 pairs)
    operand_offset: int = 0        # d: the second operand is token j + d (60 in the released strip code)
    split_seed: int = 0            # Python-random seed of the split shuffle
    # model
    model: str = "transformer"     # transformer | mlp | twohot | onlymlp (grok_core.models)
    n_layers: int = 1
    d_model: int = 128
    n_heads: int = 4
    d_mlp: int = 0                 # 0 means 4 * d_model (resolved on construction)
    act: str = "relu"
    use_pos: bool = True           # learned positional embedding (transformer only)
    embed_init: str = "normal"     # normal | toeplitz | circulant | onehot (frozen)
    init_seed: int = 0
    # optimisation (full batch: one step = one epoch)
    n_steps: int = 30000
    lr: float = 1e-3
    wd: float = 1.0
    beta1: float = 0.9
    beta2: float = 0.98
    warmup_steps: int = 10
    loss: str = "ce"               # ce (float32) | ce64 (float64 log-softmax) | mse | stablemax (losses.LOSSES)
    # history resolution: step s is recorded when s < record_dense, s % record_every == 0, or s is
    # the last step; the test rows are evaluated only on recorded steps (training is unaffected)
    record_dense: int = 0
    record_every: int = 1
    # numerics: fp32 is strict float32; tf32 lets CUDA matmuls use TF32 (faster, other numbers; CUDA only)
    precision: str = "fp32"
    # the training step's extension points (grok_core.updates, grok_core.tasks), today's members only
    optimizer: str = "adamw"       # see grok_core.updates.OPTIMISERS
    grad_transform: str = "none"   # applied to each run's gradient before the update (updates.GRAD_TRANSFORMS)
    param_mask: str = "none"       # a frozen 0/1 mask per run over its parameters (updates.PARAM_MASKS)
    output_scale: float = 1.0      # the logits are multiplied by it (the lazy/rich scale alpha)
    output_centre: bool = False    # train output_scale * (f(theta) - f(theta_0)): every scale starts at zero logits
    label_transform: str = "none"  # applied to the train labels at the data layer (tasks.LABEL_TRANSFORMS)
    # label_transform='corrupt' (Doshi et al.): the first floor(corrupt_share * n_train) train pairs of the split
    # order get labels drawn uniformly from all p classes by a generator seeded with corrupt_seed
    corrupt_share: float = 0.0
    corrupt_seed: int = 0
    # what is recorded besides the default measures: more registry measures (comma-separated names of
    # grok_core.measures.MEASURES) and `snapshots` log-spaced weight snapshots stored with the run
    measures: str = ""
    snapshots: int = 0
    snapshot_every: int = 0           # also a snapshot at every multiple of this step (0: the log-spaced ones only)
    snapshot_dtype: str = "float32"   # float32 | float16
    # the float type of the per-sample loss, in bits: 16 | 32 (the training dtype, float32) | 64; loss='ce64'
    # is ce in float64 by itself and takes only 32 here (grok_core.losses.loss_dtype)
    loss_precision: int = 32
    adam_eps: float = 1e-8         # AdamW's eps, added to sqrt(v) (Prieto et al. use 1e-25 and smaller)
    # per-run stopping (grok_core.stopping): once test accuracy has been >= stop_acc at every recorded step for
    # stop_hold steps, the run trains stop_after more steps and stops; n_steps stays the budget. 0: never stops early
    stop_acc: float = 0.0
    stop_hold: int = 0
    stop_after: int = 0
    # explicit snapshot steps besides the log-spaced ones: increasing integers in 0..n_steps, comma-separated
    snapshot_at: str = ""
    # lottery tickets (grok_core.tickets): param_mask 'magnitude' keeps the keep_fraction largest |w| of the stored dense
    # run ticket_base (its key) at its snapshot step ticket_step, rewound to that run's init; 'random' keeps keep_fraction
    # at random; init_rescale 'l1' | 'l2' is the dense control: the init scaled to that ticket's L1 or L2 norm
    keep_fraction: float = 1.0
    ticket_base: str = ""
    ticket_step: int = 0
    init_rescale: str = "none"
    # the Grokfast filters (grad_transform grokfast_ema / grokfast_ma; Lee et al. 2024): the EMA's alpha, the
    # amplification lambda of either, the moving average's window in steps
    grokfast_alpha: float = 0.98
    grokfast_lamb: float = 2.0
    grokfast_window: int = 100
    # Muon (optimizer muon): the hidden matrices' learning rate and Nesterov momentum; lr is the AdamW part's
    muon_lr: float = 0.02
    muon_momentum: float = 0.95

    LATER_FIELDS = ("optimizer", "grad_transform", "param_mask", "output_scale", "label_transform",
                    "measures", "snapshots", "snapshot_every", "snapshot_dtype", "loss_precision", "adam_eps",
                    "output_centre",
                    "stop_acc", "stop_hold", "stop_after", "corrupt_share", "corrupt_seed", "snapshot_at",
                    "keep_fraction", "ticket_base", "ticket_step", "init_rescale", "grokfast_alpha", "grokfast_lamb",
                    "grokfast_window", "muon_lr", "muon_momentum")

    def __post_init__(self):
        self._store_declared_types()
        if not 3 <= self.p <= P_MAX or not is_prime(self.p):
            raise ValueError(f"p={self.p!r} is not allowed; p must be a prime >= 3 (and <= 2**31 - 1)")
        _allowed("fn", self.fn, tuple(FUNCTIONS))
        _allowed("split", self.split, SPLITS)
        _allowed("model", self.model, MODELS)
        _allowed("act", self.act, ACTIVATIONS)
        _allowed("embed_init", self.embed_init, EMBED_INITS)
        _allowed("loss", self.loss, LOSSES)
        _allowed("precision", self.precision, PRECISIONS)
        _allowed("optimizer", self.optimizer, tuple(OPTIMISERS))
        _allowed("grad_transform", self.grad_transform, tuple(GRAD_TRANSFORMS))
        _allowed("param_mask", self.param_mask, tuple(PARAM_MASKS))
        _allowed("label_transform", self.label_transform, tuple(LABEL_TRANSFORMS))
        _allowed("snapshot_dtype", self.snapshot_dtype, SNAPSHOT_DTYPES)
        _allowed("loss_precision", self.loss_precision, LOSS_PRECISIONS)
        if self.loss == "ce64" and self.loss_precision != 32:
            raise ValueError(f"loss_precision={self.loss_precision!r} is not allowed with loss='ce64', which computes "
                             "in float64 by itself; use loss='ce' with loss_precision=16, 32 or 64")
        if self.model == "quadratic" and self.act != "square":
            raise ValueError(f"act={self.act!r} is not allowed with model='quadratic', whose hidden layer squares its "
                             "input; use act='square'")
        if not 0 <= self.corrupt_share <= 1:
            raise ValueError(f"corrupt_share={self.corrupt_share!r} is not allowed; it must lie in [0, 1]")
        if self.label_transform != "corrupt" and (self.corrupt_share or self.corrupt_seed):
            raise ValueError(f"corrupt_share={self.corrupt_share!r}, corrupt_seed={self.corrupt_seed!r} are not allowed "
                             f"with label_transform={self.label_transform!r}; they take effect only with 'corrupt'")
        if self.adam_eps <= 0:
            raise ValueError(f"adam_eps={self.adam_eps!r} is not allowed; it must be > 0")
        for name in self.extra_measures:
            _allowed("measures", name, tuple(m for m, spec in MEASURES.items() if not spec.default))
        if not math.isfinite(self.output_scale) or self.output_scale <= 0:
            raise ValueError(f"output_scale={self.output_scale!r} is not allowed; it must be > 0")
        if not 0 < self.frac_train < 1:
            raise ValueError(f"frac_train={self.frac_train!r} is not allowed; it must lie in the open interval (0, 1)")
        pool = self.p * (self.p + 1) // 2 if self.split == "symmetric" else self.p * self.p
        if int(self.frac_train * pool) < 1:
            raise ValueError(f"frac_train={self.frac_train!r} is not allowed at p={self.p}: int(frac_train * {pool} pairs) "
                             "= 0 gives an empty train set")
        if self.split in ("random", "symmetric") and self.split_param != 0:
            raise ValueError(f"split_param={self.split_param!r} is not allowed for split={self.split!r}; use 0")
        if self.split in ("square", "strip") and not 0 <= self.split_param <= self.p - 2:
            name = "k" if self.split == "square" else "t"
            raise ValueError(f"split_param={self.split_param!r} ({name} of the {self.split} split) is not allowed; "
                             f"it must lie in 0..p-2 = 0..{self.p - 2}")
        for name in ("operand_offset", "split_seed", "init_seed", "record_dense", "warmup_steps", "wd", "snapshots",
                     "stop_hold", "stop_after", "corrupt_seed", "ticket_step",
                     "snapshot_every"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name}={getattr(self, name)!r} is not allowed; it must be >= 0")
        if not 0 <= self.stop_acc <= 1:
            raise ValueError(f"stop_acc={self.stop_acc!r} is not allowed; it must lie in (0, 1], or be 0 (never stop early)")
        for name in ("stop_hold", "stop_after"):
            if getattr(self, name) and self.stop_acc == 0:
                raise ValueError(f"{name}={getattr(self, name)!r} is not allowed with stop_acc=0 (no stop rule); "
                                 "set stop_acc in (0, 1] or leave it at 0")
        self._check_members()
        for name in ("n_layers", "d_model", "n_heads", "n_steps", "record_every"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name}={getattr(self, name)!r} is not allowed; it must be >= 1")
        for name in ("init_seed", "corrupt_seed"):
            if getattr(self, name) > SEED_MAX:
                raise ValueError(f"{name}={getattr(self, name)!r} is not allowed; torch takes seeds up to 2**64 - 1")
        if self.lr <= 0:
            raise ValueError(f"lr={self.lr!r} is not allowed; it must be > 0")
        for name in ("beta1", "beta2"):
            if not 0 <= getattr(self, name) < 1:
                raise ValueError(f"{name}={getattr(self, name)!r} is not allowed; it must lie in [0, 1)")
        if self.d_model % self.n_heads:
            raise ValueError(f"d_model={self.d_model} is not allowed with n_heads={self.n_heads}; "
                             "d_model must be a multiple of n_heads")
        if self.d_mlp < 0:
            raise ValueError(f"d_mlp={self.d_mlp!r} is not allowed; use 0 (meaning 4*d_model) or a positive width")
        if self.d_mlp == 0:
            object.__setattr__(self, "d_mlp", 4 * self.d_model)
        self._check_snapshot_at()
        self._check_ticket()
        if self.embed_init in ("toeplitz", "circulant") and self.d_vocab > self.d_model:
            raise ValueError(f"embed_init={self.embed_init!r} needs d_vocab <= d_model, but d_vocab={self.d_vocab} "
                             f"(p + operand_offset + 1) > d_model={self.d_model}")

    def _check_snapshot_at(self):
        """snapshot_at: increasing steps in 0..n_steps, written as "s1,s2,..." (one spelling, so one key)."""
        text = self.snapshot_at
        try:
            steps = [int(s) for s in text.split(",")] if text else []
        except ValueError:
            steps = None
        if steps is None or ",".join(map(str, steps)) != text or steps != sorted(set(steps)) or \
                any(not 0 <= s <= self.n_steps for s in steps):
            raise ValueError(f"snapshot_at={text!r} is not allowed; give increasing steps in 0..n_steps={self.n_steps} "
                             "separated by commas, without spaces, e.g. '2000,15000'")

    def _check_ticket(self):
        """The ticket fields (grok_core.tickets): what each mask kind needs, and nothing set that no kind reads."""
        if not 0 < self.keep_fraction <= 1:
            raise ValueError(f"keep_fraction={self.keep_fraction!r} is not allowed; it must lie in (0, 1] (the share "
                             "of the prunable weights kept)")
        _allowed("init_rescale", self.init_rescale, INIT_RESCALES)
        from_base = self.param_mask == "magnitude" or self.init_rescale != "none"
        if self.init_rescale != "none" and self.param_mask != "none":
            raise ValueError(f"init_rescale={self.init_rescale!r} is not allowed with param_mask={self.param_mask!r}; "
                             "the norm-matched control is dense (param_mask='none')")
        if from_base and not (len(self.ticket_base) == 16 and all(c in "0123456789abcdef" for c in self.ticket_base)):
            raise ValueError(f"ticket_base={self.ticket_base!r} is not allowed; a magnitude ticket or a norm-matched "
                             "control needs the 16-hex-digit key of a stored dense base run")
        if not from_base and (self.ticket_base or self.ticket_step):
            raise ValueError(f"ticket_base={self.ticket_base!r}, ticket_step={self.ticket_step!r} are not allowed with "
                             f"param_mask={self.param_mask!r} and init_rescale='none', which read no base run; leave "
                             "them '' and 0")
        if self.param_mask == "none" and self.init_rescale == "none" and self.keep_fraction != 1:
            raise ValueError(f"keep_fraction={self.keep_fraction!r} is not allowed without a mask or an init rescale; "
                             "leave it 1")

    def _check_members(self):
        """The Grokfast and Muon settings: in range, and set only for the member that reads them (else two keys
        would name one run)."""
        defaults = {f.name: f.default for f in dataclasses.fields(self)}
        owners = {"grokfast_alpha": ("grad_transform", ("grokfast_ema",)),
                  "grokfast_lamb": ("grad_transform", ("grokfast_ema", "grokfast_ma")),
                  "grokfast_window": ("grad_transform", ("grokfast_ma",)),
                  "muon_lr": ("optimizer", ("muon",)), "muon_momentum": ("optimizer", ("muon",))}
        for name, (field, members) in owners.items():
            if getattr(self, name) != defaults[name] and getattr(self, field) not in members:
                raise ValueError(f"{name}={getattr(self, name)!r} is not allowed with {field}={getattr(self, field)!r}; "
                                 f"it sets {' / '.join(members)} only")
        if not 0 <= self.grokfast_alpha < 1:
            raise ValueError(f"grokfast_alpha={self.grokfast_alpha!r} is not allowed; it must lie in [0, 1)")
        if self.grokfast_lamb < 0:
            raise ValueError(f"grokfast_lamb={self.grokfast_lamb!r} is not allowed; it must be >= 0")
        if self.grokfast_window < 1:
            raise ValueError(f"grokfast_window={self.grokfast_window!r} is not allowed; it must be >= 1")
        if self.muon_lr <= 0:
            raise ValueError(f"muon_lr={self.muon_lr!r} is not allowed; it must be > 0")
        if not 0 <= self.muon_momentum < 1:
            raise ValueError(f"muon_momentum={self.muon_momentum!r} is not allowed; it must lie in [0, 1)")
        if self.optimizer == "muon":
            from .models import model_class
            if not hasattr(model_class(self.model), "hidden_matrices"):
                raise ValueError(f"optimizer='muon' is not allowed with model={self.model!r}: it names no hidden "
                                 "weight matrices for Muon; use model='transformer'")

    @property
    def has_stop_rule(self) -> bool:
        """Whether the run has a stop rule (it may then end before n_steps)."""
        return self.stop_acc > 0

    @property
    def extra_measures(self) -> tuple[str, ...]:
        """The measures field as names (recorded after the default ones, in this order)."""
        return tuple(m.strip() for m in self.measures.split(",") if m.strip())

    @property
    def d_vocab(self) -> int:
        """Operand tokens 0..p-1+offset plus the '=' token, derived rather than set by hand."""
        return self.p + self.operand_offset + 1

    def key_tags(self) -> dict:
        return {"semantics": SEMANTICS_VERSION}

    def batch_key(self) -> tuple:
        """Runs with equal batch keys can share one batched model."""
        d = self.to_dict()
        return tuple((k, v) for k, v in sorted(d.items()) 
                     if k not in PER_RUN_FIELDS or (k == "embed_init" and v == "onehot"))
