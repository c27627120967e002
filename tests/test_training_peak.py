"""The peak MFU is measured against: stated, from a GPU's datasheet, or measured, and named."""

from __future__ import annotations

import torch

from ja_pretrain.training.peak import datasheet_peak, measure_matmul_peak, resolve_peak


def test_datasheet_dense_peaks_by_device_name():
    assert datasheet_peak("NVIDIA H200", torch.bfloat16) == 989e12
    assert datasheet_peak("NVIDIA H100 80GB HBM3", torch.bfloat16) == 989e12
    assert datasheet_peak("NVIDIA H100 PCIe", torch.float16) == 756e12
    assert datasheet_peak("NVIDIA A100-SXM4-80GB", torch.bfloat16) == 312e12
    assert datasheet_peak("NVIDIA L40S", torch.bfloat16) == 362e12  # not the L4's
    assert datasheet_peak("NVIDIA A10", torch.float16) == 125e12  # not the A100's
    assert datasheet_peak("NVIDIA H100 80GB HBM3", torch.float32) is None  # fp32: measured
    assert datasheet_peak("Quadro RTX 5000", torch.bfloat16) is None


def test_stated_and_measured_peaks_say_where_they_come_from():
    stated = resolve_peak(torch.device("cpu"), torch.float32, 2e12)
    assert (stated.flops, stated.source) == (2e12, "--peak_tflops")
    measured = resolve_peak(torch.device("cpu"), torch.float32)
    assert measured.source == "measured float32 matmul on CPU at start-up" and measured.flops > 1e8
    # the best window of a short measurement, not a mean that one slow window drags down
    assert measure_matmul_peak(torch.device("cpu"), torch.float32, seconds=0.3, windows=3, size=256) > 1e8
