"""Train/serve parity of a model with its gate: `evaluate` on busi-dev hold-out images against the
node process on the same images wrapped as breast DICOM studies.

    python -P benchmarks/gate_parity.py [--model ynet-busi] [--dataset ../shared/data/busi-dev]

(``-P``: the folder of the script, whose inference.py would shadow the package, is not put on
the path.)

Prints, for both paths: images run, images the gate declined, AUC; and the largest difference
of one image's probability. Not a test (it runs every hold-out image through the whole node).
"""

from __future__ import annotations

import argparse
import csv
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pydicom
from sklearn.metrics import roc_auc_score
from sqlalchemy import create_engine, text
from sqlalchemy.exc import SQLAlchemyError

from dicom_node.send import send_paths
from inference.registry import Registry, default_models_dir
from kernel.settings import Destination
from phantom.wrap import wrap_image
from tests.support.network import free_port, port_open, wait_until
from training.datasets import read_image_folder, usable_rows
from training.evaluate import evaluate
from training.exclusion import model_holdout


def _node_probabilities(home: Path, studies: dict[str, str]) -> dict[str, float | None]:
    """Image name -> the node's probability (None: declined), read from its database."""
    engine = create_engine(f"sqlite:///{home / 'lnm.sqlite3'}")
    with engine.connect() as connection:
        rows = connection.execute(
            text(
                "select s.study_instance_uid, j.state, j.probability from job j "
                "join study s on s.id = j.study_id"
            )
        ).all()
    engine.dispose()
    by_uid = {uid: (state, probability) for uid, state, probability in rows}
    if any(by_uid.get(uid, ("",))[0] not in ("DELIVERED", "SKIPPED") for uid in studies):
        raise LookupError("not every job is final yet")
    return {
        name: (by_uid[uid][1] if by_uid[uid][0] == "DELIVERED" else None)
        for uid, name in studies.items()
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", default="ynet-busi")
    parser.add_argument("--dataset", type=Path, default=Path("../shared/data/busi-dev"))
    args = parser.parse_args()
    spec = Registry.load(default_models_dir()).get(args.model, args.model)
    holdout = set(model_holdout(spec.folder).groups)
    rows = [r for r in usable_rows(read_image_folder(args.dataset)) if r.group in holdout]
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        started = time.perf_counter()
        metrics = evaluate(spec, args.dataset, root / "eval", subset_groups=holdout, sheet_cases=0)
        with (root / "eval" / "cases.csv").open(newline="") as handle:
            evaluated = {
                Path(r["image"]).name: float(r["probability"]) for r in csv.DictReader(handle)
            }
        print(
            f"evaluate: {metrics['n']} run, {metrics['n_declined_out_of_domain']} declined, "
            f"AUC {metrics['auc']:.4f} ({time.perf_counter() - started:.0f} s)"
        )

        studies: dict[str, str] = {}
        files = []
        for index, row in enumerate(rows):
            path = wrap_image(row.image, root / "studies", "BREAST", f"{args.model}-{index}")
            studies[str(pydicom.dcmread(path, stop_before_pixels=True).StudyInstanceUID)] = (
                row.image.name
            )
            files.append(path)
        home, port = root / "home", free_port()
        env = {**os.environ, "LNM_SWEEP_INTERVAL_SECONDS": "0.5"}
        node = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "cli.main",
                "serve",
                "--home",
                str(home),
                "--port",
                str(port),
                "--quiet-seconds",
                "1",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env=env,
        )
        try:
            wait_until(lambda: port_open(port), timeout=120, what="the node")
            started = time.perf_counter()
            send_paths(
                Destination(ae_title="LNMNODE", host="127.0.0.1", port=port), files, "PARITY"
            )

            def finished() -> bool:
                try:
                    return len(_node_probabilities(home, studies)) == len(studies)
                except (LookupError, OSError, SQLAlchemyError):  # not final, or no database yet
                    return False

            wait_until(finished, timeout=3600, interval=5, what="every job final")
            served = _node_probabilities(home, studies)
        finally:
            node.terminate()
            node.wait(timeout=120)
    labels = {row.image.name: row.malignant for row in rows}
    ran = [name for name, p in served.items() if p is not None]
    auc = roc_auc_score([labels[n] for n in ran], [served[n] for n in ran])
    print(
        f"node:     {len(ran)} run, {len(served) - len(ran)} declined, AUC {auc:.4f} "
        f"({time.perf_counter() - started:.0f} s)"
    )
    same = set(ran) == set(evaluated)
    difference = max(abs(served[n] - evaluated[n]) for n in ran if n in evaluated)  # type: ignore[operator]
    print(
        f"same images declined: {same}; largest probability difference {difference:.5f}; "
        f"AUC difference {abs(auc - metrics['auc']):.4f}"
    )
    return 0 if abs(auc - metrics["auc"]) <= 0.01 else 1


if __name__ == "__main__":
    raise SystemExit(main())
