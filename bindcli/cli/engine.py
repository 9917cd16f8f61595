"""`--engine local|ray` and its options, shared by `bind index` and `bind embed`.

`use_engine` tells a `Run` where to embed: `local` (the default) leaves it as it is; `ray`
makes `run.embedder` a `bindcli.embed.ray_engine.RayEmbedder`. Ray is imported only then.
`refuse_uris` says that URIs (`s3://...`) need the Ray engine, whose workers read them.
"""

from __future__ import annotations

import enum
import os
from collections.abc import Iterable
from typing import TYPE_CHECKING, Annotated, Optional

import typer
from rich.markup import escape

from bindcli._util import extras
from bindcli._util.paths import is_uri, path_text
from bindcli.errors import UsageError

if TYPE_CHECKING:  # pragma: no cover
    from bindcli.cli.run import Run
    from bindcli.embed.ray_engine import RayEmbedder

ENGINE_PANEL = "Engine"


class EngineName(str, enum.Enum):
    LOCAL = "local"
    RAY = "ray"


ENGINE_OPTION = Annotated[EngineName, typer.Option(
    "--engine", case_sensitive=False, rich_help_panel=ENGINE_PANEL,
    help="local: embed in this process. ray: on a Ray cluster, one model per worker "
    f"({escape(extras.RAY.install)}).",
)]
ADDRESS_OPTION = Annotated[Optional[str], typer.Option(
    "--address", metavar="auto|HOST:PORT|ray://HOST:PORT", rich_help_panel=ENGINE_PANEL,
    show_default=False,
    help="The Ray cluster to join (auto: the one this machine is part of). Default: "
    "$RAY_ADDRESS, else a Ray instance started on this machine.",
)]
WORKERS_OPTION = Annotated[Optional[int], typer.Option(
    "--workers", min=1, rich_help_panel=ENGINE_PANEL, show_default=False,
    help="Ray: models running at once. Default: one per GPU with --gpus-per-worker, else one.",
)]
GPUS_OPTION = Annotated[float, typer.Option(
    "--gpus-per-worker", min=0, rich_help_panel=ENGINE_PANEL,
    help="Ray: GPUs each worker holds (0: it encodes on CPU).",
)]
CPUS_OPTION = Annotated[int, typer.Option(
    "--cpus-per-worker", min=1, rich_help_panel=ENGINE_PANEL,
    help="Ray: CPU cores each worker holds (its torch threads on a CPU worker).",
)]


def use_engine(
    run: "Run", engine: EngineName, address: str | None, workers: int | None,
    gpus_per_worker: float, cpus_per_worker: int,
) -> None:
    """Sets where `run` embeds; the Ray options without `--engine ray` are a usage error."""
    if engine is EngineName.LOCAL:
        if address or workers or gpus_per_worker or cpus_per_worker != 1:
            raise typer.BadParameter(
                "--address, --workers, --gpus-per-worker and --cpus-per-worker need --engine ray",
                param_hint="--engine",
            )
        return
    from bindcli.embed.ray_engine import import_ray

    import_ray()  # a missing extra is named before anything else happens

    def open_ray(run: "Run") -> "RayEmbedder":
        from bindcli.embed.ray_engine import RayEmbedder, WorkerSpec

        c = run.common
        weights = c.weights or os.environ.get("BIND_WEIGHTS")
        spec = WorkerSpec(
            run.model.config, str(weights) if weights else None, c.device,
            c.precision.value, c.batch_size, c.media_options,
            str(run.model.adapter.path) if run.model.adapter else None,
        )
        return RayEmbedder(
            spec, run.model, address=address, workers=workers,
            gpus_per_worker=gpus_per_worker, cpus_per_worker=cpus_per_worker,
        )

    run.engine = open_ray


def refuse_uris(engine: EngineName, sources: Iterable[str]) -> None:
    """A URI among the inputs without `--engine ray` is one usage error, before any work."""
    if engine is EngineName.LOCAL:
        for source in sources:
            if is_uri(source):
                raise UsageError(
                    f"{path_text(source)}: URIs are read by the Ray engine's workers: add --engine ray"
                )
