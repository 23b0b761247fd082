"""The Jukebox-5B encoder against the shared reference: parity with the tiny fixture (official container
format, random weights), the official 5b layout on the meta device, loading rules, conversion, windows."""

from __future__ import annotations

import pickle
import sys
import types
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from llark.config import EncoderConfig
from llark.encoders import build_encoder, encode_file
from llark.encoders.jukebox import JukeboxConfig, JukeboxEncoder, token_windows
from llark.encoders.jukebox_weights import (CheckpointError, UntrustedGlobalError, build_modules, convert,
                                            read_checkpoint)

REFERENCE = Path(__file__).resolve().parents[2] / "shared" / "reference" / "jukebox"
TINY = REFERENCE / "tiny"
VQVAE, PRIOR = str(TINY / "vqvae.pth.tar"), str(TINY / "prior_level_2.pth.tar")

pytestmark = pytest.mark.skipif(not TINY.is_dir(), reason="../shared/reference/jukebox is not beside the repo")


def tiny_config() -> dict:
    return JukeboxConfig.from_hparams_file(TINY / "hparams.json").to_dict()


def tiny_encoder(layer: int = 3, device: str = "cpu", **settings) -> JukeboxEncoder:
    return JukeboxEncoder(vqvae=VQVAE, prior=PRIOR, layer=layer, device=device, config=tiny_config(), **settings)


def assert_close(actual: np.ndarray, expected: np.ndarray, relative: float = 1e-4) -> None:
    scale = np.abs(expected).max()
    assert actual.shape == expected.shape
    assert np.abs(actual - expected).max() <= relative * scale, np.abs(actual - expected).max() / scale


# --- parity with the fixture -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def audio() -> np.ndarray:
    return np.load(TINY / "audio.npy")


def test_codes_match_the_reference_exactly(audio):
    assert np.array_equal(tiny_encoder().model.codes(audio).numpy(), np.load(TINY / "codes.npy"))


@pytest.mark.parametrize("layer", [3, 6])
def test_block_activations_match_the_reference(audio, layer):
    encoder = tiny_encoder(layer)
    codes = torch.as_tensor(np.load(TINY / "codes.npy"))[None]
    with torch.no_grad():
        assert_close(encoder.model.prior.embed(codes)[0].numpy(), np.load(TINY / "layer0.npy"))
        assert_close(encoder.model.prior(codes)[0].numpy(), np.load(TINY / f"layer{layer}.npy"))
    # The same rows from audio, through the encoder's own path (VQ-VAE, windows, stitching).
    assert_close(encoder.model.token_activations([audio])[0].numpy(), np.load(TINY / f"layer{layer}.npy"))


def test_pooled_25fps_features_match_the_reference(audio):
    features = tiny_encoder(layer=3).encode(audio)
    assert features.dtype == np.float32
    assert_close(features, np.load(TINY / "pooled25.npy"))


def test_config_is_read_from_hyperparameters_not_hard_coded():
    five_b = JukeboxConfig.from_hparams_file(REFERENCE / "5b_hparams.json")
    assert five_b == JukeboxConfig()  # the defaults are 5b's
    tiny = JukeboxConfig.from_hparams_file(TINY / "hparams.json")
    assert (tiny.width, tiny.heads, tiny.vqvae_width, tiny.codebook_size, tiny.hop_length) == (64, 2, 8, 64, 128)


# --- the official 5b layout -----------------------------------------------------------------------------


def official_layout() -> dict[tuple[str, str], tuple[int, ...]]:
    layout = {}
    for line in (REFERENCE / "5b_checkpoint_keys.tsv").read_text().splitlines():
        if line.startswith("#") or line.startswith("file\t"):
            continue
        file, key, shape, _ = line.split("\t")
        layout[(file, key)] = tuple(int(size) for size in shape.split(","))
    return layout


def test_full_size_model_on_meta_has_the_official_names_and_shapes():
    layout = official_layout()
    vqvae, prior = build_modules(JukeboxConfig(), layer=36)
    needed = {("vqvae.pth.tar", k): tuple(v.shape) for k, v in vqvae.state_dict().items()}
    needed |= {("prior_level_2.pth.tar", k): tuple(v.shape) for k, v in prior.state_dict().items()}
    assert all(v.is_meta for v in prior.state_dict().values())
    assert sum(f == "vqvae.pth.tar" for f, _ in needed) == 133
    assert sum(f == "prior_level_2.pth.tar" for f, _ in needed) == 439  # 440 with the unused x_out
    assert {key: layout.get(key) for key in needed} == needed
    # ... and exactly the file's tensors up to block 36, apart from x_out (never used to encode).
    expected = {key for key in layout if key[0] == "prior_level_2.pth.tar" and key[1] != "prior.x_out.weight"
                and not any(f"_attn_mods.{i}." in key[1] for i in range(36, 72))}
    assert {key for key in needed if key[0] == "prior_level_2.pth.tar"} == expected


def test_loading_refuses_files_without_the_needed_tensors(tmp_path):
    with pytest.raises(CheckpointError, match="heads=2 \\(config: 8\\), prior_width=64"):  # its hps are not 5b's
        JukeboxEncoder(vqvae=VQVAE, prior=PRIOR, layer=3, device="cpu")
    torch.save({"model": read_checkpoint(PRIOR)[0]}, tmp_path / "no-hps.pt")
    with pytest.raises(CheckpointError, match="missing 56 of the 133 VQ-VAE tensors"):  # 5b has deeper resnets
        JukeboxEncoder(vqvae=VQVAE, prior=str(tmp_path / "no-hps.pt"), layer=3, device="cpu")
    with pytest.raises(CheckpointError, match="1 VQ-VAE tensors have other shapes.*bottleneck.level_blocks.2.k"):
        JukeboxEncoder(vqvae=VQVAE, prior=PRIOR, layer=3, device="cpu", config=tiny_config() | {"codebook_size": 32})
    with pytest.raises(CheckpointError, match="prior_level_2.pth.tar: missing 77 of the 77 VQ-VAE tensors.*right file"):
        JukeboxEncoder(vqvae=PRIOR, prior=PRIOR, layer=3, device="cpu", config=tiny_config())
    with pytest.raises(CheckpointError, match="holds 6 prior blocks, so it cannot give block 7"):
        tiny_encoder(layer=7)
    state, _ = read_checkpoint(PRIOR)
    del state["prior.transformer._attn_mods.1.mlp.c_fc.w"]
    torch.save({"model": state}, tmp_path / "holed.pt")
    with pytest.raises(CheckpointError, match="missing 1 of .*_attn_mods.1.mlp.c_fc.w"):
        JukeboxEncoder(vqvae=VQVAE, prior=str(tmp_path / "holed.pt"), layer=3, device="cpu", config=tiny_config())
    (tmp_path / "noise.pth.tar").write_bytes(b"not a checkpoint at all" * 10)
    with pytest.raises(CheckpointError, match="noise.pth.tar: not a readable PyTorch checkpoint"):
        read_checkpoint(tmp_path / "noise.pth.tar")
    with pytest.raises(CheckpointError, match="no such file"):
        read_checkpoint(tmp_path / "absent.pth.tar")


def test_hyperparameters_in_the_file_must_agree_with_the_config():
    config = tiny_config() | {"heads": 4}  # 4 heads fit every shape, but the file was trained with 2
    with pytest.raises(CheckpointError, match="heads=2 \\(config: 4\\)"):
        JukeboxEncoder(vqvae=VQVAE, prior=PRIOR, layer=3, device="cpu", config=config)


# --- the loader: zip and legacy files, restricted unpickling -------------------------------------------


class Payload:
    """A pickled object that is not a tensor: a stand-in for code a hostile file could run."""


def test_loader_reads_legacy_and_zip_files_alike(tmp_path):
    legacy, _ = read_checkpoint(PRIOR)  # the fixture is a legacy (non-zip) torch.save
    container = torch.load(PRIOR, weights_only=True)
    torch.save(container, tmp_path / "zip.pt")
    zipped, hps = read_checkpoint(tmp_path / "zip.pt")
    assert hps["heads"] == 2 and legacy.keys() == zipped.keys()
    assert all(torch.equal(legacy[k], zipped[k]) for k in legacy)
    torch.save({"module." + k: v for k, v in container["model"].items()}, tmp_path / "ddp.pt")
    assert read_checkpoint(tmp_path / "ddp.pt")[0].keys() == legacy.keys()  # a DDP prefix is stripped


def test_restricted_loader_reads_the_official_hps_object_as_data(tmp_path, monkeypatch):
    # The official container pickles `hps` as jukebox.hparams.Hyperparams, a dict subclass, which
    # weights_only refuses; the restricted loader rebuilds it as a plain dict without importing it.
    module = types.ModuleType("jukebox.hparams")

    class Hyperparams(dict):
        pass

    Hyperparams.__module__, Hyperparams.__qualname__ = "jukebox.hparams", "Hyperparams"
    module.Hyperparams = Hyperparams
    monkeypatch.setitem(sys.modules, "jukebox", types.ModuleType("jukebox"))
    monkeypatch.setitem(sys.modules, "jukebox.hparams", module)
    state, _ = read_checkpoint(VQVAE)
    for zip_format in (False, True):
        path = tmp_path / f"hps-{zip_format}.pt"
        torch.save({"hps": Hyperparams(width=8), "model": state}, path, _use_new_zipfile_serialization=zip_format)
        with pytest.raises(pickle.UnpicklingError):
            torch.load(path, weights_only=True)
        monkeypatch.delitem(sys.modules, "jukebox.hparams")  # the loader must not need the real class
        tensors, hps = read_checkpoint(path)
        monkeypatch.setitem(sys.modules, "jukebox.hparams", module)
        assert dict(hps) == {"width": 8} and type(hps).__module__ == "llark.encoders.jukebox_weights"
        assert tensors.keys() == state.keys()


@pytest.mark.parametrize("zip_format", [False, True])
def test_unexpected_pickled_globals_are_refused_unless_trusted(tmp_path, zip_format):
    state, _ = read_checkpoint(VQVAE)
    path = tmp_path / "payload.pt"
    torch.save({"model": state, "extra": Payload()}, path, _use_new_zipfile_serialization=zip_format)
    with pytest.raises(UntrustedGlobalError, match="payload.pt: pickled global tests.test_jukebox.Payload.*trusted"):
        read_checkpoint(path)
    tensors, _ = read_checkpoint(path, trusted=True)
    assert tensors.keys() == state.keys()


# --- conversion to safetensors ---------------------------------------------------------------------------


def test_converted_file_gives_the_same_features_and_reads_only_needed_blocks(tmp_path, audio):
    out = tmp_path / "jukebox-tiny-L4.safetensors"
    summary = convert(VQVAE, PRIOR, layers=4, out=out, overrides=tiny_config())
    vqvae, prior = build_modules(JukeboxConfig.from_dict(tiny_config()), layer=4)
    assert summary["tensors"] == len(vqvae.state_dict()) + len(prior.state_dict())
    from_file = JukeboxEncoder(weights=str(out), layer=3, device="cpu")
    assert from_file.model.config == JukeboxConfig.from_dict(tiny_config())
    assert len(from_file.model.prior.prior.transformer._attn_mods) == 3
    assert np.array_equal(from_file.encode(audio), tiny_encoder(layer=3).encode(audio))
    with pytest.raises(CheckpointError, match="holds 4 prior blocks, so it cannot give block 5"):
        JukeboxEncoder(weights=str(out), layer=5, device="cpu")
    with pytest.raises(CheckpointError, match="not a safetensors file"):
        JukeboxEncoder(weights=VQVAE, layer=3, device="cpu")
    assert not list(tmp_path.glob(".*tmp*"))  # written atomically


# --- windows and stitching -----------------------------------------------------------------------------------


def test_token_windows_cover_every_row_once():
    assert token_windows(1033, 8192, 4096) == [(0, 0, 1033)]
    assert token_windows(8613, 8192, 4096) == [(0, 0, 8192), (421, 8192, 8613)]  # a 25 s clip
    for tokens in (8193, 20000, 50001):
        spans = token_windows(tokens, 8192, 4096)
        kept = [row for start, keep, end in spans for row in range(keep, end)]
        assert kept == list(range(tokens))
        assert all(end - start == 8192 for start, _, end in spans)
        assert all(keep - start >= 8192 - 4096 for start, keep, _ in spans[1:])  # enough left context


@pytest.mark.slow
def test_a_25_second_clip_is_stitched_from_two_windows(audio):
    rng = np.random.default_rng(0)
    wave = np.tile(audio, 9)[:25 * 44100] * rng.uniform(0.5, 1.0, 25 * 44100).astype(np.float32)
    encoder = tiny_encoder(layer=3)
    rows = encoder.model.token_activations([wave])[0]
    assert rows.shape == (8613, 64)
    first_window = encoder.model.token_activations([wave[:8192 * 128]])[0]
    assert torch.equal(rows[:8192], first_window)  # the first window's span is a single-window run
    features = encoder.encode(wave)
    assert features.shape == (625, 64) and np.isfinite(features).all()
    # The tail comes from the second window, whose rows over the shared span are context-shifted.
    second = encoder.model.token_activations([wave[421 * 128:]])[0]
    assert torch.equal(rows[8192:], second[8192 - 421:])


# --- the encoder interface ---------------------------------------------------------------------------------


def test_registered_encoder_encodes_any_audio_file(tmp_path, audio):
    settings = {"vqvae": VQVAE, "prior": PRIOR, "layer": 3, "config": tiny_config()}
    encoder = build_encoder(EncoderConfig(name="jukebox", settings=settings))
    assert (encoder.name, encoder.sample_rate, encoder.dim) == ("jukebox", 44100, 64)
    stereo = np.stack([audio[:66150], audio[:66150] * 0.5], axis=1)  # 1.5 s at 44.1 kHz
    sf.write(tmp_path / "stereo.flac", stereo, 44100)
    sf.write(tmp_path / "mono22k.wav", audio[::2][:22050 * 2], 22050)
    assert encode_file(encoder, tmp_path / "stereo.flac").shape == (38, 64)
    assert encode_file(encoder, tmp_path / "mono22k.wav").shape == (50, 64)
    rebuilt = build_encoder(EncoderConfig(name="jukebox", settings=encoder.settings()))
    assert rebuilt.settings() == encoder.settings()  # a checkpoint's record rebuilds the same encoder
    assert set(encoder.settings()) == {"vqvae", "prior", "layer", "dtype", "config"}  # defaults left out
    assert encoder.settings()["config"] == {k: v for k, v in tiny_config().items() if JukeboxConfig().to_dict()[k] != v}


def test_the_7b_config_names_valid_jukebox_settings():
    from dataclasses import fields

    from llark.config import load_config

    config = load_config(Path(__file__).resolve().parents[1] / "configs" / "llark-7b.yaml")
    assert config.encoder.name == "jukebox" and config.model.audio_dim == JukeboxConfig().width
    assert set(config.encoder.settings) <= {f.name for f in fields(JukeboxEncoder)}


def test_batches_of_clips_equal_one_by_one(audio):
    encoder = tiny_encoder(layer=3, batch_size=2)
    waves = [audio, audio[:44100], audio[::-1].copy(), audio[:30000]]
    batched = encoder.encode_batch(waves)
    for wave, features in zip(waves, batched):
        np.testing.assert_allclose(features, encoder.encode(wave), rtol=0, atol=1e-5)


def test_bfloat16_option_runs_close_to_float32(audio):
    reference = tiny_encoder(layer=3).encode(audio)
    half = tiny_encoder(layer=3, dtype="bfloat16")
    assert half.model.prior.prior.transformer._attn_mods[0].mlp.c_fc.w.dtype == torch.bfloat16
    assert half.model.prior.prior.pos_emb.pos_emb.dtype == torch.float32  # only matmul weights are cast
    features = half.encode(audio)
    assert np.abs(features - reference).max() < 0.05 * np.abs(reference).max()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")
def test_parity_on_gpu(audio):
    features = tiny_encoder(layer=3, device="cuda").encode(audio)
    assert_close(features, np.load(TINY / "pooled25.npy"))
