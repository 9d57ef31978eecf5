"""Probe for "One machine, two instruction sets" in ../README.md: five training steps of a
small BasicUNet at 64 px on one thread; prints torch's CPU dispatch, the last loss and a hash
of the weights. Run it under each environment of the README's table and compare the hashes.

    NO_ONEDNN=1 MKL_CBWR=AVX2 ATEN_CPU_CAPABILITY=avx2 OMP_NUM_THREADS=1 python numerics_probe.py
"""

import hashlib
import os

import torch
from monai.networks.nets import BasicUNet

torch.manual_seed(0)
torch.set_num_threads(1)
if os.environ.get("NO_ONEDNN"):
    torch.backends.mkldnn.enabled = False
network = BasicUNet(
    spatial_dims=2, in_channels=1, out_channels=1, features=(16, 16, 32, 64, 128, 16)
)
optimiser = torch.optim.AdamW(network.parameters(), 1e-3)
generator = torch.Generator().manual_seed(1)
images = torch.rand(8, 1, 64, 64, generator=generator)
masks = (torch.rand(8, 1, 64, 64, generator=generator) > 0.5).float()
for _ in range(5):
    optimiser.zero_grad()
    loss = torch.nn.functional.binary_cross_entropy_with_logits(network(images), masks)
    loss.backward()
    optimiser.step()
weights = b"".join(p.detach().numpy().tobytes() for p in network.parameters())
print(
    torch.backends.cpu.get_cpu_capability(),
    f"{loss.item():.10f}",
    hashlib.sha256(weights).hexdigest()[:16],
)
