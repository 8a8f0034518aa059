"""Checkpoints: round trips for every preset and variant, safetensors, and one clear error per bad file."""
from __future__ import annotations

import argparse
import hashlib
import json
import os

import pytest
import torch
from torch import nn

from lion_export import (PRESETS, VARIANTS, CheckpointError, checkpoint_sha256, create_model, load_checkpoint,
                         load_state_dict_file, save_checkpoint, save_safetensors, set_form)

SMALL = {"vision": {"depth": 1, "img_size": 32, "num_classes": 5},
         "text": {"depth": 1, "vocab_size": 40, "max_len": 16}}


def _small(preset: str, mask: str) -> nn.Module:
    kind = "vision" if preset.startswith("vit") else "text"
    return create_model(preset, mask=mask, **SMALL[kind])


def _inputs(model: nn.Module) -> tuple[torch.Tensor, ...]:
    gen = torch.Generator().manual_seed(0)
    if model.config.kind == "vision":
        return (torch.randn(2, 3, 32, 32, generator=gen),)
    return torch.randint(0, 40, (2, 7), generator=gen), torch.tensor([[1] * 7, [1] * 4 + [0] * 3])


def _assert_same_model(loaded: nn.Module, original: nn.Module) -> None:
    assert type(loaded) is type(original) and loaded.config == original.config and not loaded.training
    loaded_tensors = loaded.state_dict()
    for name, tensor in original.state_dict().items():
        assert torch.equal(loaded_tensors[name], tensor), name
    inputs = _inputs(original)
    with torch.no_grad():
        assert torch.equal(loaded(*inputs), original.eval()(*inputs))


@pytest.mark.parametrize("mask", list(VARIANTS))
@pytest.mark.parametrize("preset", list(PRESETS))
def test_round_trip_every_preset_and_variant(tmp_path, preset, mask):
    torch.manual_seed(0)
    model = _small(preset, mask)
    path = save_checkpoint(model, tmp_path / "model.pt")
    raw = torch.load(path, weights_only=True)                    # a plain dict, no code needed to open it
    assert raw["format"] == "lion-export" and raw["format_version"] == 1
    assert raw["config"] == model.config.to_dict() and set(raw["state_dict"]) == set(model.state_dict())
    _assert_same_model(load_checkpoint(path), model)
    assert os.listdir(tmp_path) == ["model.pt"]                  # the temp file was renamed, nothing left over


@pytest.mark.parametrize("preset", ["vit-tiny", "encoder-tiny"])
def test_safetensors_round_trip(tmp_path, preset):
    torch.manual_seed(0)
    model = _small(preset, "selective")
    tensors, config = save_safetensors(model, tmp_path / "model.safetensors")
    assert config == tmp_path / "model.json" and json.loads(config.read_text())["config"] == model.config.to_dict()
    _assert_same_model(load_checkpoint(tensors), model)
    # an explicit config path, and a bare config dict in it, work too
    bare = tmp_path / "elsewhere.json"
    bare.write_text(json.dumps(model.config.to_dict()))
    os.remove(config)
    _assert_same_model(load_checkpoint(tensors, config_path=bare), model)
    with pytest.raises(CheckpointError, match="needs its model config JSON"):
        load_checkpoint(tensors)


def test_saved_form_is_restored(tmp_path):
    model = set_form(_small("vit-tiny", "decay"), "chunked", chunk_size=4)
    loaded = load_checkpoint(save_checkpoint(model, tmp_path / "m.pt"))
    assert loaded.config.form == "chunked" and loaded.blocks[0].attn.chunk_size == 4


def test_sha256_and_atomic_save(tmp_path, monkeypatch):
    model = _small("vit-tiny", "lit")
    path = save_checkpoint(model, tmp_path / "m.pt")
    assert checkpoint_sha256(path) == hashlib.sha256(path.read_bytes()).hexdigest()
    before = path.read_bytes()

    def broken_save(obj, target):
        with open(target, "wb") as handle:
            handle.write(b"half a checkpoint")
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", broken_save)
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint(model, path)
    assert path.read_bytes() == before and os.listdir(tmp_path) == ["m.pt"]


def _expect_error(path, pattern, **kwargs):
    with pytest.raises(CheckpointError, match=pattern) as info:
        load_checkpoint(path, **kwargs)
    message = str(info.value)
    assert "\n" not in message and str(path) in message and len(message) - len(str(path)) < 250, message


def _good_checkpoint(tmp_path):
    model = _small("vit-tiny", "selective")
    return model, save_checkpoint(model, tmp_path / "good.pt")


def test_bad_files_each_give_one_clear_error(tmp_path):
    model, good = _good_checkpoint(tmp_path)
    data = good.read_bytes()
    _expect_error(tmp_path / "absent.pt", "no such file")
    _expect_error(tmp_path, "is a directory")
    (tmp_path / "empty.pt").write_bytes(b"")
    _expect_error(tmp_path / "empty.pt", r"empty \(0 bytes\)")
    (tmp_path / "truncated.pt").write_bytes(data[: len(data) // 2])
    _expect_error(tmp_path / "truncated.pt", "corrupt, truncated")
    (tmp_path / "corrupt.pt").write_bytes(bytes(range(256)) * 8)
    _expect_error(tmp_path / "corrupt.pt", "corrupt, truncated")
    (tmp_path / "text.pt").write_text("hello, not a checkpoint")
    _expect_error(tmp_path / "text.pt", "corrupt, truncated")


def test_wrong_format_files_are_named_as_such(tmp_path):
    model, good = _good_checkpoint(tmp_path)
    raw = torch.load(good, weights_only=True)
    cases = {
        "plain_state_dict.pt": (model.state_dict(), "plain state_dict"),
        "random_dict.pt": ({"weights": [1, 2], "epoch": 3}, "not a lion-export checkpoint"),
        "a_list.pt": ([torch.zeros(2)], "holds a list"),
        "future.pt": ({**raw, "format_version": 2}, "unsupported format_version 2"),
        "unknown_key.pt": ({**raw, "config": {**raw["config"], "dropout": 0.1}},
                           r"bad model config: unknown config field\(s\) \['dropout'\]"),
        "bad_value.pt": ({**raw, "config": {**raw["config"], "mask": "causal"}}, "unknown LION variant"),
        "no_kind.pt": ({**raw, "config": {k: v for k, v in raw["config"].items() if k != "model"}},
                       "needs a 'model' entry"),
        "no_tensors.pt": ({**raw, "state_dict": {}}, "'state_dict' must be a non-empty dict of tensors"),
        "missing.pt": ({**raw, "state_dict": {k: v for k, v in raw["state_dict"].items() if k != "head.bias"}},
                       r"1 missing \(e.g. head.bias\)"),
        "shape.pt": ({**raw, "state_dict": {**raw["state_dict"], "head.bias": torch.zeros(3)}},
                     r"wrong shape.*head.bias \(3,\) vs \(5,\)"),
    }
    for name, (payload, pattern) in cases.items():
        torch.save(payload, tmp_path / name)
        _expect_error(tmp_path / name, pattern)


def test_pickled_module_is_refused_unless_allowed(tmp_path):
    torch.manual_seed(0)
    model = _small("vit-tiny", "decay").eval()
    path = tmp_path / "module.pt"
    torch.save(model, path)
    _expect_error(path, "pickled Python objects.*allow_pickle=True")
    loaded = load_checkpoint(path, allow_pickle=True)
    assert not loaded.training
    images = _inputs(model)[0]
    with torch.no_grad():
        assert torch.equal(loaded(images), model(images))


def test_bad_safetensors_files(tmp_path):
    model = _small("encoder-tiny", "lit")
    tensors, config = save_safetensors(model, tmp_path / "m.safetensors")
    data = tensors.read_bytes()
    tensors.write_bytes(data[: len(data) // 2])
    _expect_error(tensors, "not a readable safetensors file")
    tensors.write_bytes(data)
    config.write_text("{not json")
    with pytest.raises(CheckpointError, match="not a readable JSON config"):
        load_checkpoint(tensors)
    config.write_text(json.dumps({"format": "other", "config": {}}))
    with pytest.raises(CheckpointError, match="not a lion-export checkpoint"):
        load_checkpoint(tensors)
    with pytest.raises(ValueError, match=r"must end in \.safetensors"):
        save_safetensors(model, tmp_path / "m.bin")


def test_public_style_state_dicts_load_strictly(tmp_path):
    """A training script's file ({"model": state_dict, "args": Namespace, ...}, DataParallel prefixes) loads
    with strict=True into the matching preset and reproduces the outputs; a mismatched preset is refused."""
    torch.manual_seed(0)
    trained = create_model("vit-tiny", mask="selective", depth=1, img_size=32, num_classes=5, pos_embed=False).eval()
    payload = {"model": {f"module.{k}": v for k, v in trained.state_dict().items()},
               "args": argparse.Namespace(model="lion_tiny_patch16_224", epochs=300), "epoch": 299}
    path = tmp_path / "public.pth"
    torch.save(payload, path)
    loaded = load_state_dict_file(path, "vit-tiny", mask="selective", depth=1, img_size=32, num_classes=5,
                                  pos_embed=False)
    images = _inputs(trained)[0]
    with torch.no_grad():
        assert torch.equal(loaded(images), trained(images))
    with pytest.raises(CheckpointError, match=r"1 missing \(e.g. pos_embed\)"):
        load_state_dict_file(path, "vit-tiny", mask="selective", depth=1, img_size=32, num_classes=5)
    with pytest.raises(CheckpointError, match="unexpected .*blocks.0.attn.a_i.weight"):
        load_state_dict_file(path, "vit-tiny", mask="decay", depth=1, img_size=32, num_classes=5, pos_embed=False)
    with pytest.raises(CheckpointError, match="plain state_dict"):
        torch.save(trained.state_dict(), tmp_path / "bare.pt")
        load_checkpoint(tmp_path / "bare.pt")


def test_saving_a_foreign_module_is_refused(tmp_path):
    with pytest.raises(ValueError, match="create_model"):
        save_checkpoint(nn.Linear(2, 2), tmp_path / "x.pt")
    assert not list(tmp_path.iterdir())


def test_saving_a_module_that_is_not_a_lion_model_is_a_clear_error(tmp_path):
    with pytest.raises(ValueError, match="Linear is not a LION model with a vision or text config"):
        save_checkpoint(torch.nn.Linear(2, 2), tmp_path / "linear.pt")
    assert list(tmp_path.iterdir()) == []
