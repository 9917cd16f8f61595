"""The Embedder's `embed` and `stream` on a Ray cluster, through Ray Data.

Inputs become rows; CPU tasks read and decode them (hashing what the caller had not hashed;
an object named by URI they fetch through its filesystem, `bindcli.embed.object_store`);
an actor pool, one model per actor, encodes them; results stream back to the driver in
whatever order they finish, so `bindcli.collections.ingest.index` commits them a batch at a time exactly
as it does for the local engine, and an interrupted job resumes from its last commit. Every
actor builds its model through `bindcli.embed.embedder.open_embedder` from the driver's config and
weights, so the vectors are the local engine's; the first results are checked to say so.

Only this module imports Ray, and only when `--engine ray` asks for it.
"""

from __future__ import annotations

import dataclasses
import io
import logging
import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import PurePosixPath
from typing import TYPE_CHECKING

import numpy as np

from bindcli._util import extras
from bindcli._util.chunks import batched
from bindcli._util.paths import is_uri
from bindcli.embed import stages
from bindcli.embed.embedder import BaseEmbedder, Embedder
from bindcli.embed.identity import loading_options, with_adapter
from bindcli.embed.inputs import Input
from bindcli.embed.object_store import worker_environment
from bindcli.embed.stages import Embedding
from bindcli.errors import BindError, InputError, UsageError
from bindcli.modality import Kind

if TYPE_CHECKING:  # pragma: no cover
    from bindcli.embed.identity import Model
    from bindcli.media.options import MediaOptions
    from bindcli.model.config import ModelConfig
    from bindcli.model.placement import Placement


def import_ray():  # noqa: ANN201 - the module, or a UsageError naming the install
    """Ray, or a UsageError that names the `pip install` to run."""
    try:
        import ray
        import ray.data  # noqa: F401
    except ImportError:
        raise UsageError(extras.RAY.hint()) from None
    return ray


@dataclasses.dataclass(frozen=True)
class WorkerSpec:
    """What every actor needs to build the driver's embedder: the config itself (so workers
    need not see a config file), the weights the driver was told to use (None: each worker
    resolves them as `bind` does, `$BIND_WEIGHTS` else its cache), device and precision."""

    config: "ModelConfig"
    weights: str | None
    device: str = "auto"
    precision: str = "auto"
    batch_size: int = 8
    options: "MediaOptions | None" = None
    #: the driver's `bind tune` adapter file (on storage every worker sees), if any
    adapter: str | None = None

    def open(self) -> "Embedder":
        from bindcli.embed.embedder import open_embedder

        return open_embedder(
            self.config, self.weights, device=self.device, precision=self.precision,
            batch_size=self.batch_size, cache=False, options=self.options, workers=1,
            adapter=self.adapter,
        )


def decode(batch: dict[str, np.ndarray], options: "MediaOptions | None") -> dict[str, list]:
    """A Ray Data batch of inputs -> their tensors (as .npy bytes) and content hashes, through
    the stages the local Embedder runs (`digest`, `prepare`); an input that cannot be used
    keeps its row with the reason, so the driver names it. An object named by URI is fetched
    into a scratch folder, hashed as it arrives, decoded from there and named by its URI."""
    rows = [Input(str(source), Kind(kind), bool(literal))
            for source, kind, literal in zip(batch["source"], batch["kind"], batch["literal"])]
    shas: list[str | InputError | None] = [None] * len(rows)
    results: list[object] = [None] * len(rows)
    with tempfile.TemporaryDirectory(prefix="bind-fetch-") as scratch:
        local = list(rows)  # what each row is read from: for a URI, its local copy
        for i, inp in enumerate(rows):
            if not inp.literal and is_uri(inp.source):
                local[i] = Input(os.path.join(scratch, f"{i}{PurePosixPath(inp.source).suffix}"), inp.kind)
                shas[i] = _fetched(inp.source, local[i].source)
        rest = [i for i, sha in enumerate(shas) if sha is None]
        given = [str(batch["sha256"][i]) or None for i in rest]
        for i, sha in zip(rest, stages.digests([rows[i] for i in rest], given)):
            shas[i] = sha
        readable = [i for i, sha in enumerate(shas) if not isinstance(sha, InputError)]
        for n, prepared in stages.prepare_many([local[i] for i in readable], options):
            i = readable[n]
            if isinstance(prepared, InputError) and local[i] is not rows[i]:  # named as the driver knows it
                prepared = InputError(rows[i].source, prepared.reason.replace(local[i].source, rows[i].source))
            results[i] = prepared
    results = [sha if isinstance(sha, InputError) else r for sha, r in zip(shas, results)]
    return {
        "slot": [int(s) for s in batch["slot"]],
        "kind": [inp.kind.value for inp in rows],
        "sha256": [sha if isinstance(sha, str) else "" for sha in shas],
        "tensor": [b"" if isinstance(r, InputError) else _npy(r.numpy()) for r in results],
        "error": [r.reason if isinstance(r, InputError) else "" for r in results],
    }


def _fetched(uri: str, copy: str) -> str | InputError:
    """The object at `uri` copied to `copy`, and its content hash; or why it could not be."""
    from bindcli.embed.object_store import fetch

    try:
        return fetch(uri, copy)
    except InputError as exc:
        return exc
    except OSError as exc:
        return InputError(uri, exc.strerror or str(exc))


class Encode:
    """One actor of the pool: one model (through `open_embedder`), encoding decoded batches
    by the local Embedder's stages (`batch_key`, `encode`)."""

    def __init__(self, spec: WorkerSpec) -> None:
        self.embedder = spec.open()

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, list]:
        import torch

        embedder = self.embedder
        slots = [int(s) for s in batch["slot"]]
        vectors: dict[int, bytes] = {}
        groups: dict[stages.BatchKey, list[tuple[int, object]]] = {}
        for slot, kind, blob, error in zip(slots, batch["kind"], batch["tensor"], batch["error"]):
            if error:
                continue
            tensor = torch.from_numpy(np.load(io.BytesIO(blob)))
            groups.setdefault(stages.batch_key(Kind(kind), tensor), []).append((slot, tensor))
        for key, rows in groups.items():
            for chunk in batched(rows, embedder.batch_size):
                out = stages.encode(embedder.encoder, key, [t for _, t in chunk])  # type: ignore[misc]
                vectors.update((slot, v.tobytes()) for (slot, _), v in zip(chunk, out))
        n = len(slots)
        return {
            "slot": slots,
            "sha256": list(batch["sha256"]),
            "error": list(batch["error"]),
            "vector": [vectors.get(s, b"") for s in slots],
            "model": [with_adapter(embedder.model_id, embedder.adapter)] * n,
            "precision": [embedder.placement.precision] * n,
            "device": [str(embedder.placement.device)] * n,
        }


def _cluster_messages_to_stderr() -> None:
    """Ray's driver prints the cluster's messages (`(raylet) A worker died ...`) on stdout,
    where bind writes its data; they belong on stderr."""
    from ray._private import worker

    original = getattr(worker, "print_to_stdstream", None)
    if original is None or getattr(original, "bind_stderr", False):
        return

    def to_stderr(data: dict, ignore_prefix: bool) -> None:
        original({**data, "is_err": True}, ignore_prefix)

    to_stderr.bind_stderr = True  # type: ignore[attr-defined]
    worker.print_to_stdstream = to_stderr


def _with_credentials(sources: list[str]) -> dict | None:
    """The decoding tasks' runtime environment: the driver's credential variables for a job
    that reads URIs (see `bindcli.embed.object_store.worker_environment`), else the cluster's own."""
    env = worker_environment(sources)
    return {"env_vars": env} if env else None


def _npy(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=False)
    return buffer.getvalue()


class RayEmbedder(BaseEmbedder):
    """`Embedder.embed` and `Embedder.stream` with the work on a Ray cluster: what a command
    (or `bindcli.collections.ingest.index`) uses in place of the local Embedder.

    `address`: None starts a Ray instance on this machine (or joins `$RAY_ADDRESS`), `auto`
    joins the cluster this machine belongs to, `ray://HOST:PORT` a remote one through Ray
    Client. `workers` actors, each with `gpus_per_worker` GPUs (0: CPU) and `cpus_per_worker`
    cores (its torch threads); default: one per GPU, else one.
    """

    def __init__(
        self,
        spec: WorkerSpec,
        model: "Model",
        *,
        address: str | None = None,
        workers: int | None = None,
        gpus_per_worker: float = 0,
        cpus_per_worker: int | None = None,
    ) -> None:
        self.spec, self.model = spec, model
        self.config, self.model_id, self.adapter = model.config, model.id, model.adapter
        self.address = address
        self.gpus_per_worker = gpus_per_worker
        self._workers, self._cpus = workers, cpus_per_worker
        self._placement: "Placement | None" = None
        self._started = False

    @property
    def placement(self) -> "Placement":
        """Where the workers encode, as the first of them reported it."""
        if self._placement is None:
            raise RuntimeError("the workers' placement is known once they have encoded something")
        return self._placement

    def __enter__(self) -> "RayEmbedder":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Disconnect from the cluster if this embedder connected (or started it)."""
        if self._started:
            import ray

            ray.shutdown()
            self._started = False

    def _results(
        self, todo: list[tuple[int, Input, str | None]], progress: Callable[[int], None]
    ) -> Iterator[tuple[int, Embedding | InputError]]:
        """(position, result) for each input as the cluster finishes it, in any order."""
        inputs = {i: x for i, x, _ in todo}
        known = {i: sha for i, _, sha in todo}
        for batch in self._run(inputs, known).iter_batches(batch_size=None, batch_format="numpy"):
            done = [self._result(inputs, batch, row) for row in range(len(batch["slot"]))]
            progress(len(done))
            yield from done

    def _result(self, todo: dict[int, Input], batch: dict, row: int) -> tuple[int, Embedding | InputError]:
        slot = int(batch["slot"][row])
        inp = todo[slot]
        if batch["error"][row]:
            return slot, InputError(inp.source, str(batch["error"][row]))
        self._check(str(batch["model"][row]), str(batch["precision"][row]), str(batch["device"][row]))
        vector = np.frombuffer(batch["vector"][row], dtype=np.float32).copy()
        return slot, stages.finish(inp, str(batch["sha256"][row]), vector)

    def _check(self, model_id: str, precision: str, device: str) -> None:
        """Every worker must compute the driver's model at one precision, or the vectors of
        one collection would not be comparable."""
        expected = with_adapter(self.model_id, self.adapter)
        if model_id != expected:
            raise BindError(
                f"a Ray worker computes model {model_id}, not {expected}: give every worker "
                "the same weights file (--weights PATH on shared storage, or the same "
                "`bind weights` download) and the same --adapter file"
            )
        if self._placement is None:
            from bindcli.model.placement import Placement

            self._placement = Placement(device, precision, "on Ray workers")  # type: ignore[arg-type]
        elif precision != self._placement.precision:
            raise BindError(
                f"Ray workers encode at {self._placement.precision} and at {precision}: "
                "give --precision so every worker uses the same"
            )

    def _connect(self):  # noqa: ANN202
        ray = import_ray()
        for name in ("ray", "ray.data"):  # bind's stderr carries bind's messages; errors still show
            logging.getLogger(name).setLevel(logging.ERROR)
        _cluster_messages_to_stderr()
        if not ray.is_initialized():
            try:
                ray.init(address=self.address, log_to_driver=False, configure_logging=False)
            except ConnectionError as exc:  # `auto` with no cluster; a ray:// nobody answers
                where = f"--address {self.address}" if self.address else "$RAY_ADDRESS"
                raise BindError(f"{where}: no Ray cluster answers ({exc}); start one with `ray start "
                                "--head`, or leave out --address to start Ray on this machine") from None
            self._started = True
        context = ray.data.DataContext.get_current()
        context.enable_progress_bars = False  # the driver's one bar is bind's
        context.print_on_execution_start = False
        return ray

    def _run(self, todo: dict[int, Input], known: dict[int, str | None]):  # noqa: ANN202
        """The dataset whose iteration runs the job: rows -> decode tasks -> encode actors."""
        ray = self._connect()
        rows = [
            {"slot": i, "source": x.source, "kind": x.kind.value, "literal": x.literal,
             "sha256": known.get(i) or ""}
            for i, x in todo.items()
        ]
        batch = self.spec.batch_size
        resources = ray.cluster_resources()
        gpus = self.gpus_per_worker
        workers = self._workers or (max(1, int(resources.get("GPU", 0) // gpus)) if gpus else 1)
        cpus = self._cpus or 1
        # what the cluster cannot hold would wait for ever
        if workers * gpus > resources.get("GPU", 0):
            raise UsageError(
                f"--workers {workers} x --gpus-per-worker {gpus:g} needs more GPUs than the "
                f"cluster has ({resources.get('GPU', 0):g})"
            )
        if workers * cpus > resources.get("CPU", 0) - 0.5:  # decoding needs a core too
            raise UsageError(
                f"--workers {workers} x --cpus-per-worker {cpus} leaves no CPU for decoding on a "
                f"cluster of {resources.get('CPU', 0):g} CPUs"
            )
        dataset = ray.data.from_items(rows, override_num_blocks=max(1, min(len(rows) // batch, 4 * workers)))
        decoded = dataset.map_batches(
            decode, batch_size=batch, fn_kwargs={"options": loading_options(self.config, self.spec.options)},
            # half a core each: light work, and a resource ask unlike the actors' keeps Ray Data
            # from fusing this stage into them, where decoding would wait for the model
            num_cpus=0.5,
            # what reads objects needs the driver's credentials (AWS_*, ...), if it has any
            runtime_env=_with_credentials([r["source"] for r in rows]),
        )
        return decoded.map_batches(
            Encode, batch_size=batch, compute=ray.data.ActorPoolStrategy(size=workers),
            num_gpus=gpus, num_cpus=cpus, fn_constructor_kwargs={"spec": self.spec},
        )
