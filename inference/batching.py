"""Run the forward passes of jobs that wait together as one batch (one network, one pass).

A worker that runs several jobs at once in one process (Celery's thread pool, one process per
GPU) shares one loaded network per model version. Each job prepares its own inputs (reading
DICOM, selecting frames: CPU work that overlaps), then asks a :class:`ForwardBatcher` for its
forward pass. The first request for a network opens a batch and waits at most ``wait_seconds``
for others with the same input shapes (or until ``max_size`` have come); that thread runs one
pass over the concatenated inputs and hands each request its slice: the network's output, its
Grad-CAM map and its gate features. On a GPU the batch costs about what one input costs.

Every pass of a network goes through the batcher, batched or not, under that network's lock:
Grad-CAM and the gate hook into the network's modules, so two passes at once on one network
would mix their hooks (a test-time augmentation's plain forwards, too, run inside the pass). A batch whose pass fails is run again one input at a time, so one bad
input fails only its own job.
"""

from __future__ import annotations

import logging
import threading
import weakref
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace

import numpy as np
import torch
from torch import nn

from inference.gate import FeatureTap
from inference.gradcam import Explanation, explain_input
from inference.tta import with_tta

logger = logging.getLogger(__name__)

#: what one forward pass gives: the output and map, and the gate's features (None: no gate)
PassResult = tuple[Explanation, np.ndarray | None]
PassFunction = Callable[
    [nn.Module, Sequence[torch.Tensor], str, int, Sequence[str] | None, Sequence[str]],
    PassResult,
]


def forward_pass(
    network: nn.Module,
    tensors: Sequence[torch.Tensor],
    layer: str,
    index: int,
    gate_layers: Sequence[str] | None,
    tta: Sequence[str] = (),
) -> PassResult:
    """One eval pass over ``tensors`` (forward order): output and Grad-CAM of ``tensors[index]``
    at ``layer``, and the pooled features ``[B,D]`` of ``gate_layers`` (None: not tapped).

    With test-time augmentations ``tta`` (``inference.tta``) the output is the average of the
    explained pass's and one plain forward's per augmentation; the map and the features are
    the un-augmented input's.
    """
    if not gate_layers:
        explanation, features = explain_input(network, tensors, layer, index), None
    else:
        with FeatureTap(network, list(gate_layers)) as tap:
            explanation = explain_input(network, tensors, layer, index)
        features = tap.last()
    if tta:
        output = with_tta(network, tensors, tta, plain=explanation.output)
        explanation = replace(explanation, output=output)
    return explanation, features


def _item(result: PassResult, position: int) -> PassResult:
    """The ``position``-th input's share of a batched pass, with a batch axis of 1."""
    explanation, features = result
    part = slice(position, position + 1)
    output = explanation.output
    sliced = tuple(o[part] for o in output) if isinstance(output, tuple) else output[part]
    return (
        Explanation(output=sliced, heatmap=explanation.heatmap[part]),
        None if features is None else features[part],
    )


@dataclass
class _Request:
    tensors: Sequence[torch.Tensor]
    done: threading.Event = field(default_factory=threading.Event)
    result: PassResult | None = None
    error: BaseException | None = None


@dataclass
class _Batch:
    requests: list[_Request] = field(default_factory=list)
    full: threading.Event = field(default_factory=threading.Event)


class ForwardBatcher:
    """Batches concurrent forward passes per network; ``wait_seconds`` 0 runs each alone.

    ``sizes`` keeps the sizes of the last 1000 passes (for logs, metrics and tests).
    """

    def __init__(
        self, wait_seconds: float, max_size: int, run: PassFunction = forward_pass
    ) -> None:
        if wait_seconds < 0 or max_size < 1:
            raise ValueError("wait_seconds must be >= 0 and max_size >= 1")
        self.wait_seconds = wait_seconds
        self.max_size = max_size
        self._run = run
        self._lock = threading.Lock()
        self._open: dict[tuple, _Batch] = {}
        self._network_locks: weakref.WeakKeyDictionary[nn.Module, threading.Lock] = (
            weakref.WeakKeyDictionary()
        )
        self.sizes: deque[int] = deque(maxlen=1000)

    @property
    def batching(self) -> bool:
        """Whether passes wait for others at all."""
        return self.wait_seconds > 0 and self.max_size > 1

    def run(
        self,
        network: nn.Module,
        tensors: Sequence[torch.Tensor],
        layer: str,
        index: int = 0,
        gate_layers: Sequence[str] | None = None,
        tta: Sequence[str] = (),
    ) -> PassResult:
        """The pass of one input (batch axis 1), run alone or within a batch of its network."""
        if not self.batching:
            return self._locked_pass(network, tensors, layer, index, gate_layers, tta)
        key = (
            id(network),
            layer,
            index,
            tuple(gate_layers or ()),
            tuple(tta),
            tuple((tuple(t.shape[1:]), t.dtype, str(t.device)) for t in tensors),
        )
        request = _Request(tensors)
        with self._lock:
            batch = self._open.get(key)
            leader = batch is None
            if batch is None:
                batch = self._open[key] = _Batch()
            batch.requests.append(request)
            if len(batch.requests) >= self.max_size:
                del self._open[key]
                batch.full.set()
        if not leader:
            request.done.wait()
            if request.error is not None:
                raise request.error
            assert request.result is not None
            return request.result
        batch.full.wait(self.wait_seconds)
        with self._lock:
            if self._open.get(key) is batch:
                del self._open[key]
        self._run_batch(network, batch.requests, layer, index, gate_layers, tta)
        if request.error is not None:
            raise request.error
        assert request.result is not None
        return request.result

    def _locked_pass(
        self,
        network: nn.Module,
        tensors: Sequence[torch.Tensor],
        layer: str,
        index: int,
        gate_layers: Sequence[str] | None,
        tta: Sequence[str],
    ) -> PassResult:
        with self._lock:
            network_lock = self._network_locks.setdefault(network, threading.Lock())
        with network_lock:
            result = self._run(network, tensors, layer, index, gate_layers, tta)
        self.sizes.append(int(tensors[0].shape[0]))
        return result

    def _run_batch(
        self,
        network: nn.Module,
        requests: list[_Request],
        layer: str,
        index: int,
        gate_layers: Sequence[str] | None,
        tta: Sequence[str],
    ) -> None:
        try:
            if len(requests) == 1:
                requests[0].result = self._locked_pass(
                    network, requests[0].tensors, layer, index, gate_layers, tta
                )
                return
            stacked = [
                torch.cat([r.tensors[i] for r in requests]) for i in range(len(requests[0].tensors))
            ]
            try:
                result = self._locked_pass(network, stacked, layer, index, gate_layers, tta)
            except Exception:
                logger.exception("a batch of %d failed; running its inputs one by one", len(requests))
                for request in requests:
                    try:
                        request.result = self._locked_pass(
                            network, request.tensors, layer, index, gate_layers, tta
                        )
                    except Exception as error:  # noqa: BLE001 - this input's own failure, for its job
                        request.error = error
                return
            logger.info("forward pass of a batch of %d", len(requests))
            for position, request in enumerate(requests):
                request.result = _item(result, position)
        except BaseException as error:
            for request in requests:
                if request.result is None and request.error is None:
                    request.error = error
            raise
        finally:
            for request in requests:
                request.done.set()
