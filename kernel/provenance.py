"""Which instances this node made itself.

A PACS often forwards a whole study, so the node's own results (SEG, SR, Grad-CAM heatmap) can
come back to it. They are stored like anything else, but they are never a model's input and
never make the node run on a study again (a new job, new results, forwarded back again: a loop).
"""

from __future__ import annotations

from pydicom.dataset import Dataset

NODE_MANUFACTURER = "lnm-node"
"""Manufacturer (0008,0070) of every output this node writes; no scanner bears this name."""


def is_node_result(header: Dataset) -> bool:
    """True when ``header`` (any instance, header only) is an output of an lnm-node."""
    return str(header.get("Manufacturer", "") or "").strip() == NODE_MANUFACTURER
