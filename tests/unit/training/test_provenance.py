import pytest
import torch

from training.provenance import run_platform


def test_run_platform_records_the_variables_that_choose_cpu_kernels(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("MKL_CBWR", "AVX2")
    monkeypatch.delenv("ONEDNN_MAX_CPU_ISA", raising=False)

    facts = run_platform("cpu")

    assert facts["mkl_cbwr"] == "AVX2" and "onednn_max_cpu_isa" not in facts
    assert facts["onednn"] == (
        torch.backends.mkldnn.is_available() and torch.backends.mkldnn.enabled
    )
    assert facts["cpu_capability"] == torch.backends.cpu.get_cpu_capability()
