"""`lnm-node pretrain-ssl OUT`: self-supervised pretraining of a network's shared encoder.

Thin: parse, build the spec and the frames, call ``training.ssl_pretrain.pretrain_ssl``.
Registered in ``cli.main``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

console = Console()


def pretrain_ssl(
    out: Annotated[
        Path, typer.Argument(help="Folder for encoder.pt, ssl.json, log.jsonl (resumable).")
    ],
    network: Annotated[
        str, typer.Option(help="Network whose shared encoder to pretrain (`lnm-node networks`).")
    ] = "hybrid-swin",
    backbone: Annotated[
        str | None, typer.Option(help="Backbone of --network (its default if omitted).")
    ] = None,
    size: Annotated[int, typer.Option(help="Model input size (pixels, square).")] = 256,
    busi: Annotated[Path | None, typer.Option(help="Image folder (labels.csv): busi-dev.")] = None,
    ddti: Annotated[
        Path | None, typer.Option(help="Image folder (labels.csv): the ddti crops.")
    ] = None,
    dicom: Annotated[
        list[Path] | None,
        typer.Option(help="Folder of DICOM files; every frame is used (repeatable)."),
    ] = None,
    exclude_groups: Annotated[
        list[Path] | None,
        typer.Option(
            "--exclude-groups",
            help="A holdout.json whose groups' images are left out (repeatable).",
        ),
    ] = None,
    epochs: Annotated[int, typer.Option(min=1)] = 100,
    seconds: Annotated[
        float | None, typer.Option(help="Time budget (s): no epoch starts that would overrun it.")
    ] = None,
    batch_size: Annotated[int, typer.Option(min=2)] = 32,
    learning_rate: Annotated[float, typer.Option()] = 1e-4,
    seed: Annotated[int, typer.Option()] = 0,
    device: Annotated[str, typer.Option(help="cpu, cuda, cuda:1 ...")] = "cpu",
) -> None:
    """Pretrain a network's shared encoder self-supervised (MONAI's self_supervised_pretraining
    recipe) on every unlabelled frame of --busi, --ddti and --dicom; hold-out groups left out.

    Writes OUT/encoder.pt (for `train --pretrain-encoder`, `network_maker(spec, encoder=...)`)
    and OUT/ssl.json (frames per source, method, epochs, losses, seconds); resumes OUT.
    """
    from kernel.logging_setup import configure_logging
    from training.exclusion import read_excluded_groups
    from training.networks import draft_spec
    from training.ssl_frames import collect_frames
    from training.ssl_pretrain import SslConfig
    from training.ssl_pretrain import pretrain_ssl as run

    configure_logging(json_lines=False)
    try:
        spec = draft_spec("ssl-encoder", network, backbone, size)
        exclusion = read_excluded_groups(exclude_groups or [])
        folders = [(name, path) for name, path in (("busi", busi), ("ddti", ddti)) if path]
        dicoms = [(f"dicom:{path.name}", path) for path in dicom or []]
        frames = collect_frames(spec, folders, dicoms, exclusion)
        for count in frames.counts:
            console.print(f"{count.name}: {count.frames} frames from {count.files} files"
                          f" ({count.excluded} hold-out, {count.unreadable} unreadable)")  # fmt: skip
        config = SslConfig(epochs=epochs, batch_size=batch_size, learning_rate=learning_rate,
                           seed=seed, device=device, max_seconds=seconds)  # fmt: skip
        extra = {"excluded_groups": len(exclusion.groups), "exclusion_files": list(exclusion.files),
                 "exclusion_sha256": exclusion.digest}  # fmt: skip
        outcome = run(spec, frames, out, config, extra)
    except (ValueError, FileNotFoundError) as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(1) from exc
    if outcome.history:
        first, last = outcome.history[0], outcome.history[-1]
        console.print(f"{len(outcome.history)} epochs, loss {first['loss']:.4f} -> "
                      f"{last['loss']:.4f}, {outcome.seconds:.0f}s")  # fmt: skip
    console.print(f"encoder: {outcome.encoder_path}")
