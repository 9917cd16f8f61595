"""`bind generate`: an image from a sound, a depth map or any `bind arith` query, drawn by
Stable unCLIP conditioned on the query's ImageBind vector (`bindcli.generate` does the work).

The query syntax is `arith`'s (`bark.wav + 0.5:photo.jpg - cage.jpg`, `--text`), so a term
that starts with `-` goes after `--`.
"""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Annotated, Optional

import typer

from bindcli.cli.options import QUERY_TERMS, QUERY_TEXT, command
from bindcli.cli.run import Run
from bindcli.generate import DEFAULT_MODEL, Offload

GENERATION_PANEL = "Generation"


@command
def generate(
    run: Run,
    expression: QUERY_TERMS = None,
    text: QUERY_TEXT = None,
    out_file: Annotated[Path, typer.Option(
        "--output", "-o", metavar="OUT.png", dir_okay=False, show_default=False,
        help="Where the image goes; with -n 3: OUT.png, OUT-1.png, OUT-2.png.",
    )] = ...,  # type: ignore[assignment]
    prompt: Annotated[str, typer.Option(
        "--prompt", "-p", rich_help_panel=GENERATION_PANEL,
        help="A text prompt for the diffusion model, besides the embedding (not embedded by "
        "ImageBind).",
    )] = "",
    negative_prompt: Annotated[str, typer.Option(
        "--negative-prompt", rich_help_panel=GENERATION_PANEL, help="What to steer away from.",
    )] = "",
    steps: Annotated[int, typer.Option(
        "--steps", min=1, rich_help_panel=GENERATION_PANEL, help="Diffusion steps.",
    )] = 20,
    guidance: Annotated[float, typer.Option(
        "--guidance", min=0.0, rich_help_panel=GENERATION_PANEL,
        help="Classifier-free guidance scale; 1 or less turns guidance off.",
    )] = 10.0,
    noise_level: Annotated[int, typer.Option(
        "--noise-level", min=0, rich_help_panel=GENERATION_PANEL,
        help="Noise added to the embedding (0..999): higher drifts further from the query.",
    )] = 0,
    seed: Annotated[Optional[int], typer.Option(
        "--seed", min=0, max=2**63 - 1, show_default="random", rich_help_panel=GENERATION_PANEL,
        help="The same seed and options make the same image; image i of -n uses SEED+i.",
    )] = None,
    count: Annotated[int, typer.Option(
        "--images", "-n", min=1, rich_help_panel=GENERATION_PANEL, help="Images to make.",
    )] = 1,
    size: Annotated[Optional[str], typer.Option(
        "--size", metavar="N|WxH", show_default="the model's, 768", rich_help_panel=GENERATION_PANEL,
        help="Image size in pixels, multiples of 8.",
    )] = None,
    embedding_scale: Annotated[Optional[float], typer.Option(
        "--embedding-scale", min=0.0, show_default="the model's expected norm",
        rich_help_panel=GENERATION_PANEL,
        help="The norm of the vector handed to unCLIP. Default: sqrt(sum(mean^2+std^2)) of "
        "the checkpoint's image normalizer, the typical norm of what it was trained on.",
    )] = None,
    diffusion_model: Annotated[str, typer.Option(
        "--diffusion-model", metavar="HUB-ID|FOLDER", envvar="BIND_DIFFUSION_MODEL",
        rich_help_panel=GENERATION_PANEL,
        help="The unCLIP pipeline: a Hugging Face id (fetched into its cache on first use) "
        "or a folder saved by diffusers.",
    )] = DEFAULT_MODEL,
    offload: Annotated[Offload, typer.Option(
        "--offload", case_sensitive=False, rich_help_panel=GENERATION_PANEL,
        help="For small GPUs: model keeps each part in CPU memory until it runs; sequential "
        "moves a layer at a time (least memory, slowest). Needs accelerate.",
    )] = Offload.NONE,
) -> None:
    """Draw an image from a query of any modality: a sound, a depth map, `a.wav + 0.5:b.jpg`.

    The query's ImageBind vector conditions Stable Diffusion 2.1 unCLIP, whose image
    embeddings are OpenCLIP ViT-H/14's, ImageBind's vision tower. The diffusion weights
    (several GB, CreativeML Open RAIL++-M licence) are fetched on first use. The PNG records
    the query, seed, settings and model ids. --device and --precision apply to both models
    (int8 to ImageBind only).

    [dim]Examples:[/dim]
      bind generate bark.wav -o dog.png --seed 7
      bind generate rain.wav + 0.5:city.jpg -p "an oil painting" -n 4 -o city.png
      bind generate room_depth.png --as depth -o room.png --noise-level 200
    """
    from bindcli import generate as gen
    from bindcli.query import Query

    gen.require_extra()
    gen.check_output(out_file)
    parsed = Query.parse(expression or [], text or [])
    settings = gen.Settings(
        steps=steps, guidance=guidance, noise_level=noise_level,
        size=gen.parse_size(size) if size else None, prompt=prompt,
        negative_prompt=negative_prompt, embedding_scale=embedding_scale,
    )
    c = run.common
    gen.check_offload(offload, gen.diffusion_placement(c.device, c.precision.value))
    drawing = not run.out.quiet and run.out.err.is_terminal
    folder = gen.locate_model(diffusion_model, progress=drawing)
    gen.check_settings(folder, settings)
    gen.check_width(run.model.config.out_embed_dim, gen.embedding_width(folder), diffusion_model)
    vector = run.query_vector(parsed, "Embedding the query")
    if vector is None:
        return  # the failed term is named on stderr (exit 1)
    run.close()  # ImageBind's towers are done with: free their memory for the diffusion model
    painter = gen.ImageGenerator.open(
        diffusion_model, folder=folder, device=c.device, precision=c.precision.value,
        offload=offload,
    )
    if painter.placement.warning:
        run.out.warn(painter.placement.warning)
    if c.device == "auto" or c.precision.value == "auto":
        run.out.note(f"{diffusion_model} on {painter.placement.describe()}")
    first = secrets.randbelow(2**31) if seed is None else seed
    if embedding_scale is None:
        run.out.note(f"embedding scale {painter.expected_norm:.4g} (the checkpoint's expected norm)")
    paths = gen.image_paths(out_file, count)
    with run.out.progress(count * steps, "Generating") as advance:
        for i, path in enumerate(paths):
            image = painter.generate(vector, settings, first + i, step=lambda: advance(1))
            gen.write_png(path, image, painter.metadata(parsed, settings, first + i, image, run.model.id))
            run.out.note(f"wrote {path} ({image.width}x{image.height}, seed {first + i})")
