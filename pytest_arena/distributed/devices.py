"""The CUDA devices of each xdist worker (``--arena-worker-gpus 0,1`` or ``0+1,2+3``): read from the
option, and checked in the worker. Plain Python: a malformed value is an ``ArenaConfigError`` (the plugin's
one-line usage error)."""

from __future__ import annotations

import os
import re

from ..errors import ArenaConfigError

DEVICE = re.compile(r"[A-Za-z0-9_-]+$")  # a CUDA index or a GPU/MIG UUID
CUDA_DEVICES = "CUDA_VISIBLE_DEVICES"


def gpu_groups(value: str) -> list[str]:
    """``0,1`` -> one device per worker; ``0+1,2+3`` -> two each (tensor parallelism):
    the ``CUDA_VISIBLE_DEVICES`` value of each worker, in worker order."""
    groups = [group.strip() for group in value.split(",")]
    devices = [[d.strip() for d in group.split("+")] for group in groups]
    if not value.strip() or not all(DEVICE.match(d) for group in devices for d in group):
        raise ArenaConfigError("--arena-worker-gpus", "", "expected CUDA devices per worker, e.g. 0,1 (one each) or "
                               f"0+1,2+3 (two each), got {value!r}")
    return [",".join(group) for group in devices]


def pin_devices(devices: str, log) -> None:
    """Check this worker sees only its devices. The controller put them in the worker's environment
    before the process started (``ControllerHooks.pytest_xdist_setupnodes``), so conftests and plugins
    imported before this point saw them too; setting them here would come too late for any of them
    that touched CUDA (``torch.cuda.is_available()`` initialises the driver unseen)."""
    seen = os.environ.get("CUDA_VISIBLE_DEVICES")
    if seen != devices:
        raise ArenaConfigError("--arena-worker-gpus", "", f"this worker was given CUDA devices {devices} but its "
                               f"environment says CUDA_VISIBLE_DEVICES={seen!r} (something changed it)")
    log(f"this worker sees CUDA devices {devices} (CUDA_VISIBLE_DEVICES)")
