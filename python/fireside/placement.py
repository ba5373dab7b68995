"""Where a model's layers go (which devices): the one place that decides it in Python.

llama.cpp's own default (every device it sees) would include RPC workers that another
model of this process registered, so fireside names the devices itself:

* this machine's GPUs are the discrete ones, or the integrated ones when there is no
  discrete GPU (:func:`local_gpus`), and layers go there by default;
* RPC workers are used only by the model that asked for them, before the local devices
  (so the output layer stays local);
* ``device="cpu"`` keeps every layer on the CPU, ``device="gpu"`` takes the first GPU, a
  device name (see :func:`fireside.devices`) takes that device.

``_core.Model`` keeps its own guard (without ``devices`` it picks the same GPUs), for
callers of the native layer alone.
"""

from __future__ import annotations

from fireside import _core


def local_gpus() -> list[str]:
    """Names of this machine's GPUs that layers go to by default (discrete ones, else
    integrated ones; never RPC workers); empty when none."""
    local = [d for d in _core.devices() if not d.remote]
    return [d.name for d in local if d.type == "gpu"] or [d.name for d in local if d.type == "igpu"]


def offloads_by_default() -> bool:
    """Whether a model loaded without ``device`` or ``n_gpu_layers`` offloads its layers."""
    return bool(local_gpus()) and _core.supports_gpu_offload()


def gpu_layers(n_gpu_layers: int | None, offload: bool) -> int:
    """The layers to offload: ``n_gpu_layers`` as given, else (``None``) every layer when
    :func:`pick_devices` offloads (``-1``) and none when it does not."""
    if n_gpu_layers is not None:
        return n_gpu_layers
    return -1 if offload else 0


def pick_devices(device: str | None, remote: list[str]) -> tuple[list[str], bool]:
    """``(devices for the loader, whether layers are offloaded)`` for ``device`` plus the
    ``remote`` (RPC) device names this model asked for; a ``ValueError`` naming the
    available devices for one that does not exist."""
    if device is not None and not isinstance(device, str):
        raise TypeError(f"device must be a device name or None, got {type(device).__name__}")
    local = [d.name for d in _core.devices() if not d.remote]
    gpus = local_gpus()
    if device is None:
        chosen = gpus if offloads_by_default() else []
    elif device.lower() == "cpu":
        chosen = []
    elif device.lower() == "gpu":
        if not gpus:
            raise ValueError("device='gpu' but no GPU is available; use device='cpu'")
        chosen = gpus[:1]
    elif device in local:
        chosen = [device]
    else:
        raise ValueError(f"unknown device {device!r}; available: {', '.join(local) or 'none'}")
    # workers first, as llama.cpp orders them: the output layer then stays local
    devices = remote + chosen
    return devices, bool(devices)
