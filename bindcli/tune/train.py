"""Training an adapter: symmetric InfoNCE between the tuned tower and the frozen anchor's
vectors, with early stopping on the held-out split and a checkpoint each epoch.

The anchor's vectors (class names through the templates, or the partners of pairs) come
through the base embedder, so bind's cache holds them and a second run computes nothing.
`--method head` trains its map on the base tower's vectors (also from the cache): the map
acts on the output before it is normalised, so the cached unit vectors are all it needs.
`--method lora` decodes the files once and runs the tower forward and backward, under bf16
autocast when the run's precision is bf16, with gradient checkpointing if asked.

For a seed, the run is deterministic on the CPU: the split, the initial factors and each
epoch's order are drawn from it, and a resumed run continues from the checkpoint's
parameters and optimizer state to the same result as one that was never stopped.

Imports: see `bindcli.tune`.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import hashlib
import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from bindcli._util.atomic import atomic_path
from bindcli._util.hashing import sha256_file
from bindcli.embed.inputs import Input, gather
from bindcli.errors import InputError, UsageError
from bindcli.model.adapter import Adapter, AdapterHeader, read_adapter
from bindcli.tune.data import TuneData, tuned_tower

if TYPE_CHECKING:  # pragma: no cover
    import torch

    from bindcli.embed.embedder import Embedder
    from bindcli.modality import Kind

#: learning rates when none is given: the map is small and starts at the identity; the
#: low-rank factors move every weight they touch
DEFAULT_LR = {"head": 1e-2, "lora": 1e-3}


@dataclasses.dataclass(frozen=True)
class Settings:
    """How to train (`bind tune`'s options)."""

    method: str = "head"
    rank: int = 4
    blocks: int = 2
    epochs: int = 20
    lr: float | None = None  # None: DEFAULT_LR of the method
    batch: int = 16
    temperature: float = 0.07
    patience: int = 5  # epochs without a better held-out figure before stopping
    seed: int = 0
    checkpointing: bool = False  # recompute the blocks' activations in the backward pass
    templates: tuple[str, ...] = ()  # class names' prompts; empty: each modality's own

    @property
    def rate(self) -> float:
        return self.lr if self.lr is not None else DEFAULT_LR[self.method]

    def check(self) -> None:
        if self.method not in DEFAULT_LR:
            raise UsageError(f"--method {self.method}: choose head or lora")
        for name, value in (("--epochs", self.epochs), ("--train-batch", self.batch)):
            if value < 1:
                raise UsageError(f"{name} {value}: give 1 or more")
        if self.method == "lora" and (self.rank < 1 or self.blocks < 1):
            raise UsageError("--rank and --blocks: give 1 or more")
        if not self.rate > 0 or not self.temperature > 0:
            raise UsageError("--lr and --temperature: give a value above 0")


@dataclasses.dataclass(frozen=True)
class Epoch:
    """What one epoch measured."""

    number: int
    epochs: int
    loss: float  # mean training loss
    val_loss: float
    val_top1: float
    best: bool  # the best so far: the adapter will hold this epoch's parameters


@dataclasses.dataclass
class Callbacks:
    """How a caller hears of the run: `started(items)` once the data is encoded (an epoch
    is that many items), `step(n)` after each training batch of n items, `epoch` after each
    epoch (its checkpoint is written first, so raising there stops a run that `resume`
    continues)."""

    step: Callable[[int], None] = lambda n: None
    epoch: Callable[[Epoch], None] = lambda e: None
    started: Callable[[int], None] = lambda items: None


@dataclasses.dataclass
class Outcome:
    """A finished run: the adapter written, each epoch, and the inputs skipped."""

    adapter: Adapter
    history: list[Epoch]
    skipped: list[InputError]
    stopped_early: bool


@dataclasses.dataclass
class _Side:
    """One split, encoded: the tuned side's input (base unit vectors for head, tensors for
    lora), the anchors' unit vectors, the group of each item (its class, or for pairs its
    partner: items of one group are not each other's negatives) and, for the held-out
    accuracy of class data, each item's candidates and the right one."""

    tuned: list
    anchors: np.ndarray
    groups: np.ndarray
    candidates: list[np.ndarray]
    truth: np.ndarray
    hashes: list[str]


def data_hash(data: TuneData, workers: int = 4) -> str:
    """SHA-256 of the data's (file content, target) list: what the adapter's header names and
    a checkpoint must match. An unreadable file counts by its path."""

    def content(path: str) -> str:
        try:
            return sha256_file(path)
        except OSError:
            return f"unreadable:{path}"

    with concurrent.futures.ThreadPoolExecutor(workers) as pool:
        files = list(pool.map(content, [e.path for e in data.examples]))
        targets = list(pool.map(lambda e: e.target if e.text else content(e.target), data.examples))
    listed = sorted(zip(files, targets))
    return hashlib.sha256(json.dumps(listed).encode()).hexdigest()


def checkpoint_path(adapter: str | Path) -> Path:
    """Where a run writing `adapter` keeps its checkpoint (removed when it finishes)."""
    adapter = Path(adapter)
    return adapter.with_name(adapter.name + ".ckpt")


def train(
    embedder: "Embedder",
    data: TuneData,
    held_out: TuneData,
    output: str | Path,
    settings: Settings = Settings(),
    *,
    as_kind: "Kind | None" = None,
    split: dict | None = None,
    resume: bool = False,
    callbacks: Callbacks = Callbacks(),
) -> Outcome:
    """Train an adapter of `embedder`'s model on `data`, choose its epoch on `held_out`, and
    write it to `output`. `split` records how the held-out split was drawn (the header's).
    Unreadable inputs are skipped and returned; too few left to train is a UsageError."""
    import torch

    settings.check()
    placement = embedder.placement
    if placement.precision not in ("fp32", "bf16"):
        raise UsageError(f"--precision {placement.precision}: training runs in fp32 or bf16 (with fp32 weights)")
    if embedder.adapter is not None:
        raise UsageError("tune the base model: drop --adapter (BIND_ADAPTER) for bind tune")
    tower = tuned_tower(data, as_kind)
    skipped: list[InputError] = []
    train_side = _encode(embedder, data, settings, as_kind, skipped)
    val_side = _encode(embedder, held_out, settings, as_kind, skipped)
    if len(train_side.truth) < 2 or len(val_side.truth) < 1:
        raise UsageError(f"{data.name}: too few readable items to train on and hold out")
    if data.by_class and len(set(train_side.groups.tolist())) < 2:
        raise UsageError(f"{data.name}: the readable training items are of one class; tuning needs two")
    digest = hashlib.sha256(json.dumps(sorted(train_side.hashes)).encode()).hexdigest()
    fingerprint = json.dumps([embedder.model_id, placement.precision, tower, digest,
                              sorted(val_side.hashes), dataclasses.asdict(settings)], sort_keys=True)

    torch.manual_seed(settings.seed)
    model, params = _trainable(embedder, tower, settings)
    optimizer = torch.optim.AdamW(list(params.values()), lr=settings.rate, weight_decay=0.0)
    autocast = placement.precision == "bf16"
    state = _State()
    ckpt = checkpoint_path(output)
    if resume:
        state = _State.load(ckpt, fingerprint, params, optimizer)
    elif ckpt.exists():
        ckpt.unlink()
    callbacks.started(len(train_side.truth))

    def forward(side: _Side, rows: Sequence[int]) -> "torch.Tensor":
        with torch.autocast(placement.device.type, dtype=torch.bfloat16, enabled=autocast):
            if model is None:
                base = torch.from_numpy(np.stack([side.tuned[i] for i in rows])).to(placement.device)
                out = base @ params["head.map"].T
            else:
                out = model.embed(tower, torch.stack([side.tuned[i] for i in rows]))
        return torch.nn.functional.normalize(out.float(), dim=-1)

    for epoch in range(state.epoch, settings.epochs):
        if state.stale >= settings.patience:
            break
        losses = []
        for rows in _batches(train_side, settings, epoch):
            tuned = forward(train_side, rows)
            loss = _info_nce(tuned, train_side, rows, settings.temperature)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            losses.append((float(loss.detach()), len(rows)))
            callbacks.step(len(rows))
        with torch.no_grad():
            val_loss, val_top1 = _validate(forward, val_side, settings)
        best = (val_top1, -val_loss) > state.best
        if best:
            state.best, state.best_epoch, state.stale = (val_top1, -val_loss), epoch + 1, 0
            state.best_params = {k: v.detach().clone() for k, v in params.items()}
        else:
            state.stale += 1
        mean = sum(loss * n for loss, n in losses) / max(1, sum(n for _, n in losses))
        result = Epoch(epoch + 1, settings.epochs, mean, val_loss, val_top1, best)
        state.history.append(dataclasses.asdict(result))
        state.epoch = epoch + 1
        state.save(ckpt, fingerprint, params, optimizer)
        callbacks.epoch(result)
    stopped = state.stale >= settings.patience and state.epoch < settings.epochs

    best_params = state.best_params or {k: v.detach().clone() for k, v in params.items()}
    top1, neg_loss = state.best
    header = AdapterHeader(
        base=embedder.model_id, tower=tower, method=settings.method,
        rank=settings.rank if settings.method == "lora" else 0,
        blocks=settings.blocks if settings.method == "lora" else 0,
        data=digest, items=len(train_side.truth), epochs=state.epoch,
        validation={"top1": top1, "loss": -neg_loss, "epoch": state.best_epoch, "n": len(val_side.truth)},
        split=dict(split or {}),
    )
    from bindcli.model.tuning import save_adapter

    save_adapter(output, best_params, header)
    ckpt.unlink(missing_ok=True)
    history = [Epoch(**e) for e in state.history]
    return Outcome(read_adapter(output), history, skipped, stopped)


def _encode(
    embedder: "Embedder", data: TuneData, settings: Settings, as_kind: "Kind | None", skipped: list[InputError]
) -> _Side:
    """The split's items through the base model (anchors and, for head, the tuned side) or
    decoded (lora); what cannot be read is added to `skipped` and left out."""
    from bindcli.embed.stages import Embedding, digests, prepare_many

    gathered = gather([e.path for e in data.examples], as_kind=as_kind)
    found = [n for n, x in enumerate(gathered) if isinstance(x, Input)]
    shas: list = list(gathered)  # each input's content hash, else why it has none
    for n, sha in zip(found, digests([gathered[n] for n in found])):
        shas[n] = sha
    skipped.extend(x for x in shas if isinstance(x, InputError))
    inputs = [x if isinstance(sha, str) else sha for x, sha in zip(gathered, shas)]
    anchors, candidates = _anchors(embedder, data, inputs, settings)
    tuned: dict[int, object] = {}
    readable = [n for n, sha in enumerate(shas) if isinstance(sha, str)]
    if settings.method == "head":
        results = embedder.embed([inputs[n] for n in readable], hashes=[shas[n] for n in readable])
        for n, result in zip(readable, results):
            if isinstance(result, Embedding):
                tuned[n] = result.unit
            else:
                skipped.append(result)
    else:
        loaded = prepare_many([inputs[n] for n in readable], embedder.options)
        for k, tensor in loaded:
            if isinstance(tensor, InputError):
                skipped.append(tensor)
            else:
                tuned[readable[k]] = tensor
    kept = [n for n in range(len(inputs)) if n in tuned and anchors[n] is not None]
    for n in range(len(inputs)):
        if n in tuned and anchors[n] is None:
            skipped.append(InputError(data.examples[n].target, "its partner could not be embedded"))
    groups = _groups(data, kept)
    return _Side(
        tuned=[tuned[n] for n in kept],
        anchors=np.stack([anchors[n] for n in kept]) if kept else np.zeros((0, 1), np.float32),
        groups=groups,
        candidates=[candidates[n] for n in kept],
        truth=np.array([_truth(data, n, i) for i, n in enumerate(kept)], dtype=np.int64),
        hashes=[f"{shas[n]}:{data.examples[n].target}" for n in kept],
    )


def _anchors(
    embedder: "Embedder", data: TuneData, inputs: list, settings: Settings
) -> tuple[list, list]:
    """Each item's anchor unit vector (None where its partner failed) and candidates: class
    data's class directions for the item's kind (`bind eval`'s, by its templates); for pairs
    the partner, the candidates being the split's partners."""
    from bindcli.embed.stages import Embedding
    from bindcli.eval.accuracy import class_directions
    from bindcli.zeroshot import templates_for

    if data.by_class:
        kinds = {x.kind for x in inputs if isinstance(x, Input)}
        directions = class_directions(embedder, data.dataset().classes, templates_for(kinds, settings.templates))
        index = {c: i for i, c in enumerate(data.classes)}
        found = [
            (directions[x.kind][index[e.target]], directions[x.kind]) if isinstance(x, Input) else (None, None)
            for x, e in zip(inputs, data.examples)
        ]
        return [a for a, _ in found], [c for _, c in found]
    partners = [Input.text(e.target) if e.text else e.target for e in data.examples]
    results = embedder.embed(partners)
    anchors = [r.unit if isinstance(r, Embedding) else None for r in results]
    return anchors, [None] * len(anchors)


def _groups(data: TuneData, kept: list[int]) -> np.ndarray:
    names = data.classes if data.by_class else list(dict.fromkeys(data.examples[n].target for n in kept))
    index = {name: i for i, name in enumerate(names)}
    return np.array([index[data.examples[n].target] for n in kept], dtype=np.int64)


def _truth(data: TuneData, n: int, position: int) -> int:
    """The right candidate of item n: its class, or (pairs) its own partner's position."""
    return data.classes.index(data.examples[n].target) if data.by_class else position


def _trainable(embedder: "Embedder", tower: str, settings: Settings) -> "tuple[torch.nn.Module | None, dict]":
    """(the model whose tower trains, None for head; the trainable tensors by adapter name)."""
    import torch

    from bindcli.model import tuning

    device = embedder.placement.device
    if settings.method == "head":
        dim = embedder.config.out_embed_dim
        return None, {"head.map": tuning.identity_map(dim).to(device)}
    from bindcli.model.factory import load_model

    model = load_model(embedder.config, embedder.weights, [tower], device=device, dtype=torch.float32)
    params = tuning.add_lora(model, tower, settings.rank, settings.blocks, settings.seed)
    model.modality_trunks[tower].checkpointing = settings.checkpointing
    return model, params


def _batches(side: _Side, settings: Settings, epoch: int) -> list[list[int]]:
    """This epoch's batches: the items in an order drawn from (seed, epoch), batched among
    items of one shape (lora stacks tensors)."""
    order = np.random.default_rng([settings.seed, epoch]).permutation(len(side.truth))
    pending: dict[tuple, list[int]] = {}
    batches = []
    for i in order.tolist():
        shape = tuple(getattr(side.tuned[i], "shape", ()))
        group = pending.setdefault(shape, [])
        group.append(i)
        if len(group) == settings.batch:
            batches.append(pending.pop(shape))
    batches.extend(pending.values())
    return batches


def _info_nce(tuned: "torch.Tensor", side: _Side, rows: Sequence[int], temperature: float) -> "torch.Tensor":
    """Symmetric InfoNCE of the tuned vectors against their anchors; items of one group
    (class) are not each other's negatives."""
    import torch
    import torch.nn.functional as F

    anchors = torch.from_numpy(side.anchors[list(rows)]).to(tuned.device)
    groups = torch.from_numpy(side.groups[list(rows)]).to(tuned.device)
    logits = tuned @ anchors.T / temperature
    eye = torch.eye(len(rows), dtype=torch.bool, device=tuned.device)
    logits = logits.masked_fill((groups[:, None] == groups[None, :]) & ~eye, float("-inf"))
    target = torch.arange(len(rows), device=tuned.device)
    return (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target)) / 2


def _validate(forward: Callable, side: _Side, settings: Settings) -> tuple[float, float]:
    """(InfoNCE over the held-out split, its top-1 against each item's candidates)."""
    rows = list(range(len(side.truth)))
    tuned = np.concatenate([forward(side, part).cpu().numpy() for part in _chunks(rows, settings.batch)])
    import torch

    loss = float(_info_nce(torch.from_numpy(tuned), side, rows, settings.temperature))
    if side.candidates and side.candidates[0] is not None:
        picked = [int(np.argmax(c @ v)) for c, v in zip(side.candidates, tuned)]
        return loss, float(np.mean(np.array(picked) == side.truth))
    # pairs: each item against every partner of the split; an equal partner is as right
    picked = np.argmax(tuned @ side.anchors.T, axis=1)
    return loss, float(np.mean(side.groups[picked] == side.groups))


def _chunks(rows: list[int], size: int) -> list[list[int]]:
    return [rows[i:i + size] for i in range(0, len(rows), size)]


@dataclasses.dataclass
class _State:
    """What a checkpoint holds beyond the parameters and the optimizer."""

    epoch: int = 0
    best: tuple[float, float] = (-1.0, float("-inf"))
    best_epoch: int = 0
    stale: int = 0
    best_params: dict = dataclasses.field(default_factory=dict)
    history: list = dataclasses.field(default_factory=list)

    def save(self, path: Path, fingerprint: str, params: dict, optimizer: "torch.optim.Optimizer") -> None:
        import torch

        saved = {
            "fingerprint": fingerprint, "epoch": self.epoch, "best": list(self.best),
            "best_epoch": self.best_epoch, "stale": self.stale, "history": self.history,
            "params": {k: v.detach().cpu() for k, v in params.items()},
            "best_params": {k: v.cpu() for k, v in self.best_params.items()},
            "optimizer": optimizer.state_dict(),
        }
        with atomic_path(path) as tmp:
            torch.save(saved, tmp)

    @classmethod
    def load(cls, path: Path, fingerprint: str, params: dict, optimizer: "torch.optim.Optimizer") -> "_State":
        import torch

        if not path.is_file():
            raise UsageError(f"--resume: no checkpoint at {path} (a run writing this adapter leaves one each epoch)")
        try:
            saved = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:  # a damaged file surfaces as any of several errors
            raise UsageError(f"{path}: not a readable bind tune checkpoint ({exc})") from None
        if saved.get("fingerprint") != fingerprint:
            raise UsageError(f"{path}: the checkpoint is of another run (other data, model or options): "
                             "start again without --resume")
        with torch.no_grad():
            for k, v in params.items():
                v.copy_(saved["params"][k].to(v.device))
        optimizer.load_state_dict(saved["optimizer"])
        device = next(iter(params.values())).device
        return cls(
            epoch=int(saved["epoch"]), best=tuple(saved["best"]), best_epoch=int(saved["best_epoch"]),
            stale=int(saved["stale"]), history=list(saved["history"]),
            best_params={k: v.to(device) for k, v in saved["best_params"].items()},
        )
