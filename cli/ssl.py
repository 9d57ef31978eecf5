"""`lnm-node pretrain-ssl OUT`: self-supervised pretraining of a network's shared encoder.

Thin: parse, build the spec and the frames, call ``training.ssl_pretrain.pretrain_ssl``.
Registered in ``cli.main``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from cli.options import fail, make_console

console = make_console()

#: the frames pack ``--frames-only`` writes into OUT
FRAMES_FILE = "frames.npz"


def pretrain_ssl(
    out: Annotated[
        Path,
        typer.Argument(
            metavar="OUT", help="Folder for encoder.pt, ssl.json, log.jsonl (resumable)."
        ),
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
    frames_pack: Annotated[
        Path | None,
        typer.Option(
            "--frames",
            exists=True,
            dir_okay=False,
            help="A frames pack (--frames-only) to pretrain on instead of the folders.",
        ),
    ] = None,
    frames_only: Annotated[
        bool,
        typer.Option(
            "--frames-only",
            help=f"Collect the frames into OUT/{FRAMES_FILE} (a pack for --frames, for a "
            "machine the folders do not travel to) and stop.",
        ),
    ] = False,
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
    from training.ssl_frames import (
        HOLD_OUT_KEYS,
        collect_frames,
        hold_out_record,
        load_frames,
        save_frames,
    )
    from training.ssl_pretrain import SslConfig
    from training.ssl_pretrain import pretrain_ssl as run

    configure_logging(json_lines=False)
    try:
        spec = draft_spec("ssl-encoder", network, backbone, size)
        if frames_pack is not None:
            frames, record = load_frames(frames_pack, size)
            extra = {k: record[k] for k in HOLD_OUT_KEYS if k in record}
            extra["frames_pack"] = str(frames_pack)
        else:
            exclusion = read_excluded_groups(exclude_groups or [])
            folders = [(name, path) for name, path in (("busi", busi), ("ddti", ddti)) if path]
            dicoms = [(f"dicom:{path.name}", path) for path in dicom or []]
            frames = collect_frames(spec, folders, dicoms, exclusion)
            extra = hold_out_record(exclusion)
        for count in frames.counts:
            console.print(f"{count.name}: {count.frames} frames from {count.files} files"
                          f" ({count.excluded} hold-out, {count.unreadable} unreadable)")  # fmt: skip
        if frames_only:
            path = save_frames(frames, out / FRAMES_FILE, extra)
            console.print(f"frames pack: {path} ({path.stat().st_size / 1e6:.1f} MB)")
            return
        config = SslConfig(epochs=epochs, batch_size=batch_size, learning_rate=learning_rate,
                           seed=seed, device=device, max_seconds=seconds)  # fmt: skip
        outcome = run(spec, frames, out, config, extra)
    except (ValueError, FileNotFoundError) as exc:
        fail(console, exc)
    if outcome.history:
        first, last = outcome.history[0], outcome.history[-1]
        console.print(f"{len(outcome.history)} epochs, loss {first['loss']:.4f} -> "
                      f"{last['loss']:.4f}, {outcome.seconds:.0f}s")  # fmt: skip
    console.print(f"encoder: {outcome.encoder_path}")
