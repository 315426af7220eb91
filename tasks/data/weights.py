"""Starting weights named by a task option: the task's own recipe, a checkpoint file, or public weights.

A weights option (`weights`, `backbone_weights`) takes one of:
- "recipe" (`weights` only): train with the task's pretraining recipe, cached in the artifact store;
- "none" (`backbone_weights` only): random initialisation;
- "imagenet" (`backbone_weights` only): torchvision's public ImageNet weights of the task's backbone
  (the task names them: `ResNet50_Weights.IMAGENET1K_V1` for a ResNet-50);
- a path to a checkpoint file: a state dict, or a dict holding one under "state_dict" or "model" (a
  "module." prefix from DataParallel is removed). Its sha256, not its path, is part of the checkpoint
  identity, so replacing the file retrains nothing silently and moving it retrains nothing at all;
- "torchvision:<Enum>.<NAME>" (e.g. "torchvision:ResNet50_Weights.IMAGENET1K_V1") or "timm:<model>.<tag>"
  (e.g. "timm:nasnetalarge.tf_in1k"): public weights, downloaded once into torch's / Hugging Face's own
  cache by a user who is online. Offline (HF_HUB_OFFLINE=1 or METRICBENCH_OFFLINE=1, or no route to the
  host within a second) a weights file that is not cached fails at once with one line saying what to do.
"""

from __future__ import annotations

import hashlib
import os
import socket
from pathlib import Path
from urllib.parse import urlparse

import torch
from metricbench.bench.core.errors import UsageError
from metricbench.bench.core.registry import Option

PUBLIC_PREFIXES = ("torchvision:", "timm:")
# a shorter pretraining gives a weaker start (more headroom for finetuning); tasks without `start_options` list it too
PRETRAIN_STEPS = Option(int, 0, "steps of the pretraining recipe (0: the recipe's own)")
KEYWORDS = ("recipe", "none", "imagenet")


def kind(value: str) -> str:
    """ "recipe", "none", "torchvision", "timm" or "file"."""
    if value in KEYWORDS:
        return value
    for prefix in PUBLIC_PREFIXES:
        if value.startswith(prefix):
            return prefix[:-1]
    return "file"


def valid(value: str) -> bool:
    """Whether `value` is well formed (a file's existence is checked before a run, not here)."""
    return bool(value) and (kind(value) != "torchvision" or "." in value.split(":", 1)[1])


def weights_option(default: str, help: str) -> Option:
    """A task option naming weights (list it in the task's `weight_options`)."""
    return Option(
        str, default, help, check=valid, requirement="'recipe', 'none', a checkpoint path, or torchvision:/timm: weights"
    )


def start_options(
    weights_help: str, weights_default: str = "recipe", backbone: bool = False, streamed: bool = False
) -> dict[str, Option]:
    """The options that say where a paper task's model starts (list the weights ones in `weight_options`):
    `weights`; with `backbone`, `backbone_weights` (default "imagenet"); `pretrain_steps`; with `streamed`,
    the DataLoader `workers` (-1: up to 4, one per core; see `tasks.data.splits.worker_count`)."""
    options = {}
    if backbone:
        options["backbone_weights"] = weights_option(
            "imagenet", "backbone start: 'imagenet' (torchvision's public weights), 'none', or a file"
        )
    options["weights"] = weights_option(weights_default, weights_help)
    options["pretrain_steps"] = PRETRAIN_STEPS
    if streamed:
        options["workers"] = Option(int, -1, "DataLoader workers (-1: up to 4, one per core)")
    return options


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def check(option: str, value: str, task: str) -> None:
    """Raise a one-line UsageError, before anything runs, if the weights `option` names cannot be had:
    a missing file, or public weights that are neither cached nor downloadable now (within a second)."""
    source = kind(value)
    if source == "file" and not Path(value).expanduser().is_file():
        raise UsageError(
            f"task '{task}': {option} file '{value}' not found; give the path of a checkpoint file, or see the task's options"
        )
    if source == "torchvision":
        _torchvision_weights(value, f"task '{task}': {option}")
    elif source == "timm":
        _timm_available(value, f"task '{task}': {option}")


def identity(value: str) -> str:
    """What the weights are, for a checkpoint's identity: the file's sha256, or the public name."""
    if kind(value) == "file":
        return f"sha256:{_sha256(Path(value).expanduser())}"
    return value


def _offline() -> bool:
    return any(os.environ.get(flag, "") not in ("", "0") for flag in ("HF_HUB_OFFLINE", "METRICBENCH_OFFLINE"))


def _unreachable(url: str) -> str | None:
    """Why `url`'s host cannot be reached within a second (None if it can)."""
    if _offline():
        return "downloads are off (HF_HUB_OFFLINE or METRICBENCH_OFFLINE is set)"
    parsed = urlparse(url)
    try:
        with socket.create_connection((parsed.hostname, parsed.port or 443), timeout=1.0):
            return None
    except OSError as error:
        return f"{parsed.hostname} is unreachable ({error.strerror or type(error).__name__})"


def _unwrap(checkpoint, source: str) -> dict[str, torch.Tensor]:
    state = checkpoint
    for key in ("state_dict", "model"):
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise UsageError(
            f"{source} holds no state dict of tensors (expected a dict of tensors, or one under 'state_dict' or 'model')"
        )
    return {k.removeprefix("module."): v for k, v in state.items()}


def _torchvision_weights(value: str, who: str = ""):
    """The torchvision weights enum member `value` names, if cached or downloadable now (else one line)."""
    from torchvision.models import get_weight

    name = value.split(":", 1)[1]
    prefix = f"{who}: " if who else ""
    try:
        weights = get_weight(name)
    except (ValueError, KeyError, AttributeError):
        raise UsageError(
            f"{prefix}unknown torchvision weights '{name}'; name them as Enum.NAME, e.g. ResNet50_Weights.IMAGENET1K_V1"
        ) from None
    cached = Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(urlparse(weights.url).path)
    if not cached.is_file():
        reason = _unreachable(weights.url)
        if reason is not None:
            raise UsageError(
                f"{prefix}public weights {value} are not in torch's cache ({cached}) and cannot be downloaded: {reason}; "
                "download them where you are online, or pass a checkpoint file instead"
            )
    return weights


def _torchvision_state(value: str) -> dict[str, torch.Tensor]:
    return _torchvision_weights(value).get_state_dict(progress=False, check_hash=True)


def _timm_available(value: str, who: str) -> None:
    """Fail at once (one line) when timm weights are not cached and the Hugging Face hub cannot be reached."""
    import timm
    from huggingface_hub import try_to_load_from_cache

    name = value.split(":", 1)[1]
    if not timm.is_model(name.split(".")[0]):
        raise UsageError(f"{who}: unknown timm model '{name.split('.')[0]}' in {value}")
    config = timm.models.get_pretrained_cfg(name)
    repo = getattr(config, "hf_hub_id", None) if config is not None else None
    if repo and any(isinstance(try_to_load_from_cache(repo, f), str) for f in ("model.safetensors", "pytorch_model.bin")):
        return
    reason = _unreachable("https://huggingface.co")
    if reason is not None:
        raise UsageError(
            f"{who}: public weights {value} are not in the Hugging Face cache and cannot be downloaded: {reason}; "
            "download them where you are online, or pass a checkpoint file instead"
        )


def _timm_state(value: str) -> dict[str, torch.Tensor]:
    import timm

    name = value.split(":", 1)[1]
    try:
        return timm.create_model(name, pretrained=True).state_dict()
    except Exception as error:  # huggingface_hub raises many kinds; all mean the same here
        reason = "downloads are off (HF_HUB_OFFLINE is set)" if _offline() else str(error).splitlines()[0][:120]
        raise UsageError(
            f"public weights {value} are not in the Hugging Face cache and cannot be downloaded: {reason}; "
            "download them where you are online, or pass a checkpoint file instead"
        ) from None


def state_dict(value: str) -> dict[str, torch.Tensor]:
    """The tensors named by `value` (a file or a public name), on the CPU."""
    source = kind(value)
    if source == "torchvision":
        return _torchvision_state(value)
    if source == "timm":
        return _timm_state(value)
    if source != "file":
        raise ValueError(f"'{value}' names no weights to load")
    path = Path(value).expanduser()
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise UsageError(f"checkpoint file '{path}' not found") from None
    except Exception as error:  # a truncated zip, a pickle with code in it, not a torch file at all
        raise UsageError(f"checkpoint file '{path}' cannot be read by torch.load ({str(error).splitlines()[0][:120]})") from None
    return _unwrap(checkpoint, f"checkpoint file '{path}'")


def load_into(module: torch.nn.Module, value: str, what: str) -> None:
    """Load the weights named by `value` into `module` (all keys must match); one line if they do not."""
    state = state_dict(value)
    try:
        result = module.load_state_dict(state, strict=False)
    except RuntimeError as error:  # tensors of other shapes: another width, class count or architecture
        detail = next((line.strip() for line in str(error).splitlines() if "size mismatch" in line), "shapes differ")
        raise UsageError(
            f"{value} does not fit {what}: {detail[:160]}; use weights saved from the same model and options"
        ) from None
    problems = [
        f"{len(keys)} {label} keys (e.g. '{keys[0]}')"
        for label, keys in (("missing", result.missing_keys), ("unexpected", result.unexpected_keys))
        if keys
    ]
    if problems:
        raise UsageError(
            f"{value} does not fit {what}: {' and '.join(problems)}; use weights saved from the same model and options"
        )
