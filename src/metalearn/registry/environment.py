"""What an attempt ran on: CPU model, accelerators and the versions of the libraries that
decide its numbers, recorded with the attempt so a result states its hardware."""
from __future__ import annotations

import platform
from importlib import metadata
from pathlib import Path
from typing import Any

LIBRARIES = ("torch", "pytorch-lightning", "transformers", "datasets", "hydra-core", "optuna")


def cpu_model() -> str:
    """The CPU's model name (Linux /proc/cpuinfo), else what the platform module says."""
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        for line in cpuinfo.read_text(errors="replace").splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def accelerators() -> list[str]:
    """Names of the CUDA (or ROCm) devices torch sees; empty on CPU-only machines."""
    import torch

    if not torch.cuda.is_available():
        return []
    return [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]


def describe_environment() -> dict[str, Any]:
    """CPU model and count, accelerators, OS, Python and library versions."""
    import os

    versions = {}
    for name in LIBRARIES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return {"cpu": cpu_model(), "cpu_count": os.cpu_count(), "accelerators": accelerators(),
            "os": platform.platform(terse=True), "python": platform.python_version(),
            "libraries": versions}
