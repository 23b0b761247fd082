"""Reading Jukebox weights: the two official checkpoint files, or one converted safetensors file.

The official `5b/vqvae.pth.tar` and `5b/prior_level_2.pth.tar` are pickled dicts whose `model`
entry is the state dict. They are read, in this order:
1. `torch.load(weights_only=True)`;
2. if that refuses, a restricted unpickler that rebuilds tensors and plain containers only (the
   official `hps` object becomes a plain dict); any other pickled global is refused;
3. arbitrary unpickling only when the caller passes `trusted=True`.
Only the tensors encoding needs are kept (133 of the VQ-VAE; 7 + 12 per block of the prior).
`convert` writes them, as stored (fp16 Conv1D weights stay fp16), into one memory-mappable
safetensors file (~5.3 GB for 36 blocks) together with the model config; later runs load that.

    python preprocessing/convert_jukebox.py --vqvae 5b/vqvae.pth.tar --prior 5b/prior_level_2.pth.tar \\
        --layers 36 --out jukebox-5b-L36.safetensors
"""

from __future__ import annotations

import json
import os
import pickle
import re
import types
import zipfile
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from safetensors.torch import save_file

from llark.encoders.jukebox import JukeboxConfig, TopLevelPrior, TopLevelVQVAE

VQVAE_PREFIX, PRIOR_PREFIX = "vqvae.", "prior_level_2."
FORMAT = "llark-jukebox-encoder"
_BLOCK_KEY = re.compile(r"^prior\.transformer\._attn_mods\.(\d+)\.")


class CheckpointError(ValueError):
    """A weights file that cannot serve as the Jukebox encoder; the message names the file."""


class UntrustedGlobalError(CheckpointError):
    """The file pickles a global beyond tensors and plain containers."""


# ---------------------------------------------------------------------------------------------------
# The restricted unpickler: torch.load's documented `pickle_module` hook with an allow-list.


class _PlainHyperparams(dict):
    """Stands in for the official `jukebox.hparams.Hyperparams` (a dict subclass): data only, no code."""


_ALLOWED_GLOBALS: dict[tuple[str, str], Any] = {
    ("torch._utils", "_rebuild_tensor_v2"): torch._utils._rebuild_tensor_v2,
    ("torch._utils", "_rebuild_parameter"): torch._utils._rebuild_parameter,
    ("collections", "OrderedDict"): __import__("collections").OrderedDict,
    ("copyreg", "_reconstructor"): __import__("copyreg")._reconstructor,
    ("builtins", "dict"): dict,
    ("jukebox.hparams", "Hyperparams"): _PlainHyperparams,
}


class _RestrictedUnpickler(pickle.Unpickler):
    # torch resolves storage classes itself before asking; everything else must be on the list.
    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in _ALLOWED_GLOBALS:
            return _ALLOWED_GLOBALS[(module, name)]
        raise UntrustedGlobalError(f"pickled global {module}.{name} is not a tensor or a plain container")


def _restricted_load(file, **kwargs) -> Any:
    return _RestrictedUnpickler(file, **kwargs).load()


_RESTRICTED_PICKLE = types.SimpleNamespace(__name__="llark_restricted_pickle", Unpickler=_RestrictedUnpickler,
                                           load=_restricted_load)


def read_checkpoint(path: str | Path, trusted: bool = False) -> tuple[dict[str, torch.Tensor], Any]:
    """(state dict, hps) of an official checkpoint file: its `model` entry with `module.` prefixes
    stripped, and its `hps` entry (None when absent)."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such file")
    zip_format = zipfile.is_zipfile(path)
    try:
        if trusted:
            container = torch.load(path, map_location="cpu", weights_only=False, mmap=zip_format)
        else:
            container = _load_untrusted(path, zip_format)
    except UntrustedGlobalError as err:
        raise UntrustedGlobalError(f"{path}: {err}; load it with trusted=True (--trusted) only if you trust "
                                   "where the file came from") from err
    except (pickle.UnpicklingError, RuntimeError, EOFError, OSError, ValueError) as err:
        raise CheckpointError(f"{path}: not a readable PyTorch checkpoint ({type(err).__name__}: {err})") from err
    state = container.get("model", container) if isinstance(container, dict) else None
    if not isinstance(state, dict):
        raise CheckpointError(f"{path}: holds a {type(container).__name__}, not a checkpoint dict with a 'model' entry")
    tensors = {key.removeprefix("module."): value for key, value in state.items() if isinstance(value, torch.Tensor)}
    return tensors, container.get("hps")


def _load_untrusted(path: Path, zip_format: bool) -> Any:
    try:
        return torch.load(path, map_location="cpu", weights_only=True, mmap=zip_format)
    except pickle.UnpicklingError as weights_only_refusal:
        try:
            return torch.load(path, map_location="cpu", weights_only=False, pickle_module=_RESTRICTED_PICKLE,
                              mmap=zip_format)
        except UntrustedGlobalError:
            raise
        except (pickle.UnpicklingError, RuntimeError, EOFError, ValueError):
            raise weights_only_refusal  # not a checkpoint at all: report the first, plainer error


# ---------------------------------------------------------------------------------------------------
# Matching tensors to the model: names and shapes must agree with the config.


def blocks_in(state: dict[str, torch.Tensor]) -> int:
    numbers = [int(match.group(1)) for key in state if (match := _BLOCK_KEY.match(key))]
    return max(numbers) + 1 if numbers else 0


def _select(state: dict[str, torch.Tensor], module: torch.nn.Module, path: str, what: str) -> dict[str, torch.Tensor]:
    """The tensors `module` needs, checked by name and shape; every problem is named at once."""
    expected = module.state_dict()
    missing = [key for key in expected if key not in state]
    if missing:
        hint = " (is this the right file?)" if len(missing) == len(expected) else ""
        raise CheckpointError(f"{path}: missing {len(missing)} of the {len(expected)} {what} tensors the encoder "
                              f"needs{hint}, e.g. {missing[:3]}")
    wrong = [f"{key}: file {tuple(state[key].shape)}, model {tuple(value.shape)}"
             for key, value in expected.items() if tuple(state[key].shape) != tuple(value.shape)]
    if wrong:
        raise CheckpointError(f"{path}: {len(wrong)} {what} tensors have other shapes than the config gives "
                              f"(config mismatch?): {wrong[:3]}")
    return {key: state[key] for key in expected}


def _check_hyperparameters(hps: Any, config: JukeboxConfig, path: str) -> None:
    """Heads and block size cannot be read from tensor shapes; the file's own hps, when present, must agree."""
    if not isinstance(hps, dict):
        return
    pairs = {"heads": config.heads, "blocks": config.blocks, "n_ctx": config.n_ctx, "prior_width": config.width,
             "attn_order": 2}
    wrong = [f"{key}={hps[key]} (config: {value})" for key, value in pairs.items() if key in hps and hps[key] != value]
    if wrong:
        raise CheckpointError(f"{path}: its hyperparameters disagree with the encoder config: {', '.join(wrong)}")


def build_modules(config: JukeboxConfig, layer: int) -> tuple[TopLevelVQVAE, TopLevelPrior]:
    """The encoder's modules on the meta device: names and shapes only, no memory."""
    with torch.device("meta"):
        return TopLevelVQVAE(config).eval(), TopLevelPrior(config, layer).eval()


def _assign(module: torch.nn.Module, tensors: dict[str, torch.Tensor], device: str,
            weight_dtype: torch.dtype) -> torch.nn.Module:
    # Conv1D weights (`.w`) take the compute dtype; everything else stays float32, as the `5b` prior
    # keeps LayerNorms, biases and embeddings in float32 while its matmul weights are fp16.
    placed = {key: value.to(device=device, dtype=weight_dtype if key.endswith(".w") else torch.float32)
              for key, value in tensors.items()}
    module.load_state_dict(placed, strict=True, assign=True)
    return module.requires_grad_(False)


def load_encoder_modules(weights: str | None, vqvae: str | None, prior: str | None, layer: int,
                         overrides: dict[str, Any], trusted: bool, device: str,
                         dtype: torch.dtype) -> tuple[TopLevelVQVAE, TopLevelPrior]:
    """Build the VQ-VAE and the prior up to block `layer` from either weight source, on `device`."""
    if weights is not None and (vqvae or prior):
        raise ValueError("give either weights= (a converted file) or vqvae= and prior= (the official files), not both")
    if weights is not None:
        config, vqvae_state, prior_state = read_converted(weights, layer, overrides)
        vqvae_path = prior_path = weights
    elif vqvae and prior:
        config = JukeboxConfig.from_dict(overrides)
        (vqvae_state, _), (prior_state, hps) = read_checkpoint(vqvae, trusted), read_checkpoint(prior, trusted)
        _check_hyperparameters(hps, config, prior)
        vqvae_path, prior_path = vqvae, prior
    else:
        raise ValueError("the jukebox encoder needs weights= (see convert_jukebox.py) or both vqvae= and prior=")
    held = blocks_in(prior_state)
    if layer > held:
        raise CheckpointError(f"{prior_path}: holds {held} prior blocks, so it cannot give block {layer}")
    vqvae_module, prior_module = build_modules(config, layer)
    vqvae_tensors = _select(vqvae_state, vqvae_module, vqvae_path, "VQ-VAE")
    prior_tensors = _select(prior_state, prior_module, prior_path, "prior")
    return (_assign(vqvae_module, vqvae_tensors, device, torch.float32),
            _assign(prior_module, prior_tensors, device, dtype))


# ---------------------------------------------------------------------------------------------------
# The converted file.


def convert(vqvae: str | Path, prior: str | Path, layers: int, out: str | Path,
            overrides: dict[str, Any] | None = None, trusted: bool = False) -> dict[str, Any]:
    """Write the tensors the encoder needs up to block `layers` to one safetensors file (atomic)."""
    config = JukeboxConfig.from_dict(overrides or {})
    (vqvae_state, _), (prior_state, hps) = read_checkpoint(vqvae, trusted), read_checkpoint(prior, trusted)
    _check_hyperparameters(hps, config, str(prior))
    held = blocks_in(prior_state)
    if layers > held:
        raise CheckpointError(f"{prior}: holds {held} prior blocks, so it cannot give {layers}")
    vqvae_module, prior_module = build_modules(config, layers)
    tensors = {VQVAE_PREFIX + key: value.contiguous()
               for key, value in _select(vqvae_state, vqvae_module, str(vqvae), "VQ-VAE").items()}
    tensors |= {PRIOR_PREFIX + key: value.contiguous()
                for key, value in _select(prior_state, prior_module, str(prior), "prior").items()}
    metadata = {"format": FORMAT, "layers": str(layers), "config": json.dumps(config.to_dict()),
                "sources": json.dumps([Path(vqvae).name, Path(prior).name])}
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    temporary = out.with_name(f".{out.name}.tmp-{os.getpid()}")
    save_file(tensors, str(temporary), metadata=metadata)
    os.replace(temporary, out)
    return {"tensors": len(tensors), "bytes": sum(t.numel() * t.element_size() for t in tensors.values()),
            "layers": layers}


def read_converted(path: str | Path, layer: int, overrides: dict[str, Any]) -> tuple[JukeboxConfig, dict, dict]:
    """Config and the tensors up to block `layer` of a converted file; other blocks are never read."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such file")
    try:
        handle = safe_open(str(path), framework="pt", device="cpu")
    except Exception as err:  # safetensors raises its own SafetensorError for any malformed header
        raise CheckpointError(f"{path}: not a safetensors file ({err})") from err
    with handle:
        metadata = handle.metadata() or {}
        if metadata.get("format") != FORMAT:
            raise CheckpointError(f"{path}: not a converted Jukebox encoder file (format {metadata.get('format')!r}); "
                                  "make one with preprocessing/convert_jukebox.py")
        stored = JukeboxConfig.from_dict(json.loads(metadata["config"]))
        held = int(metadata["layers"])
        if layer > held:
            raise CheckpointError(f"{path}: holds {held} prior blocks, so it cannot give block {layer}")
        disagree = {key: value for key, value in overrides.items() if stored.to_dict().get(key) != value}
        if disagree:
            raise CheckpointError(f"{path}: the file's config differs from the settings given: {disagree}")
        vqvae, prior = {}, {}
        for key in handle.keys():
            if key.startswith(VQVAE_PREFIX):
                vqvae[key.removeprefix(VQVAE_PREFIX)] = handle.get_tensor(key)
            elif key.startswith(PRIOR_PREFIX):
                name = key.removeprefix(PRIOR_PREFIX)
                match = _BLOCK_KEY.match(name)
                if match is None or int(match.group(1)) < layer:  # blocks past `layer` are never read
                    prior[name] = handle.get_tensor(key)
    return stored, vqvae, prior
