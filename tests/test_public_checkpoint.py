"""Files trained with the public LION code, read with no options: the state_dicts are built here from the public
names and shapes (the public image code's model; the BERT layout of the public MLM code), and the models
read from them are checked against float64 re-statements of the public forward passes written here."""
from __future__ import annotations

import argparse
import json
import math

import pytest
import torch
import torch.nn.functional as F
from click.testing import CliRunner
from reference import reference_attention, reference_natural_attention

from lion_export import create_model, load_checkpoint, set_form
from lion_export.checkpoints import CheckpointError
from lion_export.cli import main
from lion_export.checkpoints import ReadOptions, read_model

DIM, HEADS, PATCH, CLASSES = 16, 2, 8, 5


def _randn(gen: torch.Generator, *shape: int, scale: float = 0.3) -> torch.Tensor:
    return torch.randn(*shape, generator=gen) * scale


def public_vision_state_dict(mask: str, natural: bool = False, depth: int = 2, grid: int | None = 3,
                             dim: int = DIM, heads: int = HEADS, seed: int = 0) -> dict[str, torch.Tensor]:
    """The public image model's state_dict by name and shape; grid: pos_embed side (None: no position embedding)."""
    gen = torch.Generator().manual_seed(seed)
    sd = {"cls_token": _randn(gen, 1, 1, dim), "patch_embed.proj.weight": _randn(gen, dim, 3, PATCH, PATCH),
          "patch_embed.proj.bias": _randn(gen, dim)}
    if grid is not None:
        sd["pos_embed"] = _randn(gen, 1, grid * grid + 1, dim)
    for b in range(depth):
        p = f"blocks.{b}."
        sd.update({p + "norm1.weight": 1 + _randn(gen, dim), p + "norm1.bias": _randn(gen, dim),
                   p + "attn.qkv.weight": _randn(gen, 3 * dim, dim), p + "attn.qkv.bias": _randn(gen, 3 * dim),
                   p + "attn.proj.weight": _randn(gen, dim, dim), p + "attn.proj.bias": _randn(gen, dim),
                   p + "norm2.weight": 1 + _randn(gen, dim), p + "norm2.bias": _randn(gen, dim),
                   p + "mlp.fc1.weight": _randn(gen, 4 * dim, dim), p + "mlp.fc1.bias": _randn(gen, 4 * dim),
                   p + "mlp.fc2.weight": _randn(gen, dim, 4 * dim), p + "mlp.fc2.bias": _randn(gen, dim)})
        for name in ("a_i", "a2_i") if natural else ("a_i",):
            if mask == "decay":
                sd[p + f"attn.{name}"] = _randn(gen, heads, scale=1.0)
            elif mask == "selective":
                sd[p + f"attn.{name}.weight"] = _randn(gen, heads, dim)
                sd[p + f"attn.{name}.bias"] = _randn(gen, heads, scale=1.0)
    sd.update({"norm.weight": 1 + _randn(gen, dim), "norm.bias": _randn(gen, dim),
               "head.weight": _randn(gen, CLASSES, dim), "head.bias": _randn(gen, CLASSES)})
    return sd


def public_vision_forward(sd: dict[str, torch.Tensor], images: torch.Tensor, heads: int = HEADS,
                          cls_pooling: bool = False) -> torch.Tensor:
    """The public image model's forward in float64, straight from its state_dict."""
    t = {k: v.double() for k, v in sd.items()}
    x = F.conv2d(images.double(), t["patch_embed.proj.weight"], t["patch_embed.proj.bias"], stride=PATCH)
    rows, cols = x.shape[2], x.shape[3]
    x = x.flatten(2).transpose(1, 2)
    x = torch.cat([t["cls_token"].expand(x.shape[0], -1, -1), x], dim=1)
    if "pos_embed" in t:
        x = x + t["pos_embed"]
    batch, length, dim = x.shape
    hd = dim // heads
    depth = 1 + max(int(k.split(".")[1]) for k in t if k.startswith("blocks."))
    for b in range(depth):
        p = f"blocks.{b}."
        h = F.layer_norm(x, (dim,), t[p + "norm1.weight"], t[p + "norm1.bias"], eps=1e-6)
        q, k, v = F.linear(h, t[p + "attn.qkv.weight"], t[p + "attn.qkv.bias"]).reshape(
            batch, length, 3, heads, hd).permute(2, 0, 3, 1, 4)
        decays = []
        for name in ("a_i", "a2_i"):
            if p + f"attn.{name}" in t:
                decays.append(torch.log(torch.sigmoid(t[p + f"attn.{name}"])))
            elif p + f"attn.{name}.weight" in t:
                lam = 1 - torch.sigmoid(F.linear(h, t[p + f"attn.{name}.weight"], t[p + f"attn.{name}.bias"]))
                lam = lam.transpose(1, 2)
                decays.append(torch.log(torch.cat([torch.ones_like(lam[..., :1]), lam[..., 1:]], dim=-1)))
        if decays:
            q, k = ((F.silu(z) + 0.5) / (F.silu(z) + 0.5).norm(dim=-1, keepdim=True) for z in (q, k))
        else:
            q, k = F.elu(q) + 1, F.elu(k) + 1
        q = q * hd ** -0.5
        if len(decays) == 2:
            out = reference_natural_attention(q, k, v, *decays, rows, cols)
        else:
            out = reference_attention(q, k, v, decays[0] if decays else None)
        out = F.linear(out.transpose(1, 2).reshape(batch, length, dim), t[p + "attn.proj.weight"],
                       t[p + "attn.proj.bias"])
        x = x + out
        h = F.layer_norm(x, (dim,), t[p + "norm2.weight"], t[p + "norm2.bias"], eps=1e-6)
        x = x + F.linear(F.gelu(F.linear(h, t[p + "mlp.fc1.weight"], t[p + "mlp.fc1.bias"])),
                         t[p + "mlp.fc2.weight"], t[p + "mlp.fc2.bias"])
    x = F.layer_norm(x, (dim,), t["norm.weight"], t["norm.bias"], eps=1e-6)
    pooled = x[:, 0] if cls_pooling else x.mean(dim=1)
    return F.linear(pooled, t["head.weight"], t["head.bias"])


def _run(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


@pytest.mark.parametrize("mask, natural, grid", [("lit", False, 3), ("decay", True, 3), ("selective", True, None),
                                                 ("selective", False, 3)])
def test_public_vision_state_dicts_read_with_no_options_and_match_the_public_forward(tmp_path, mask, natural, grid):
    # LIT has no decay tensor to count heads by: at vit-tiny's width the public preset gives them (3)
    dim, heads = (192, 3) if mask == "lit" else (DIM, HEADS)
    sd = public_vision_state_dict(mask, natural, grid=grid, dim=dim, heads=heads)
    path = tmp_path / "public.pth"
    torch.save(sd, path)
    lines = []
    model = read_model(path, report=lines.append).double()
    size = (3 * PATCH, 3 * PATCH) if grid else (3 * PATCH, 5 * PATCH)          # an odd, non-square grid if free
    images = torch.randn(2, 3, *size, dtype=torch.float64)
    with torch.no_grad():
        torch.testing.assert_close(model(images), public_vision_forward(sd, images, heads), rtol=1e-10, atol=1e-10)
    cfg = model.config
    assert (cfg.mask, cfg.natural, cfg.depth, cfg.dim, cfg.num_heads, cfg.num_classes, cfg.pos_embed) == (
        mask, natural, 2, dim, heads, CLASSES, grid is not None)
    name = {"lit": "LION-LIT", "decay": "LION-D", "selective": "LION-S"}[mask] + (" natural" if natural else "")
    position = "pos-embed 3x3" if grid else "no pos-embed"
    assert len(lines) == 1 and f", {name}, {CLASSES} classes, {position}" in lines[0], lines


def test_lit_heads_are_ambiguous_unless_a_preset_or_heads_decides(tmp_path):
    path = tmp_path / "lit.pth"
    torch.save(public_vision_state_dict("lit"), path)                  # width 16: no preset has it
    with pytest.raises(CheckpointError, match="number of heads cannot be read .* pass --heads"):
        read_model(path)
    assert read_model(path, ReadOptions(heads=4)).config.num_heads == 4
    result = _run("convert", path, "-o", tmp_path / "out.pt")
    assert result.exit_code == 2 and "pass --heads" in result.stderr and not (tmp_path / "out.pt").exists()
    # the public tiny preset's width: heads from the preset, named in the line
    wide = tmp_path / "tiny.pth"
    torch.save(public_vision_state_dict("lit", dim=192, heads=3, depth=1, grid=1), wide)
    lines = []
    assert read_model(wide, report=lines.append).config.num_heads == 3
    assert lines[0].startswith("tiny.pth: read as custom (192 wide, 1 deep, 3 heads as vit-tiny), LION-LIT")


def test_training_checkpoints_pick_model_or_model_ema_and_use_their_args(tmp_path):
    plain, ema = (public_vision_state_dict("selective", True, seed=seed) for seed in (1, 2))
    path = tmp_path / "checkpoint.pth"
    torch.save({"model": plain, "model_ema": ema, "optimizer": {"state": {}, "param_groups": [{"lr": 1e-3}]},
                "epoch": 299, "args": argparse.Namespace(cls_tok=True, input_size=24, model="lion_tiny_patch16_224")},
               path)
    images = torch.randn(2, 3, 24, 24, dtype=torch.float64)
    lines = []
    for weights, sd in (("model", plain), ("model_ema", ema)):
        model = read_model(path, ReadOptions(weights=weights), report=lines.append).double()
        with torch.no_grad():
            torch.testing.assert_close(model(images), public_vision_forward(sd, images, cls_pooling=True),
                                       rtol=1e-10, atol=1e-10)
    assert lines[1].endswith("class-token pooling (weights: model_ema)")
    assert read_model(path, ReadOptions(cls_pooling=False)).config.cls_pooling is False   # the option wins
    for bad, message in ((ReadOptions(weights="ema"), "--weights must be one of"),):
        with pytest.raises(CheckpointError, match=message):
            read_model(path, bad)
    torch.save({"model": plain, "epoch": 3, "optimizer": {}}, tmp_path / "no_ema.pth")
    with pytest.raises(CheckpointError, match="no 'model_ema' state_dict; it has: model"):
        read_model(tmp_path / "no_ema.pth", ReadOptions(weights="model_ema"))
    torch.save(plain, tmp_path / "plain.pth")
    with pytest.raises(CheckpointError, match="plain state_dict; --weights picks from a training checkpoint"):
        read_model(tmp_path / "plain.pth", ReadOptions(weights="model"))


def test_cli_export_verify_convert_on_a_public_file_with_no_options(tmp_path):
    sd = public_vision_state_dict("selective", True, depth=1)
    path = tmp_path / "public.pth"
    torch.save(sd, path)
    result = _run("export", path, "--mode", "recurrent")
    assert result.exit_code == 0, result.output + result.stderr
    assert "public.pth: read as custom (16 wide, 1 deep, 2 heads), LION-S natural, 5 classes, pos-embed 3x3" \
        in result.stderr
    assert "PASSED" in result.output
    result = _run("verify", path, tmp_path / "public.onnx", "--quiet")
    assert result.exit_code == 0 and result.output.strip() == f"parity PASSED: {tmp_path / 'public.onnx'}"

    images = torch.randn(2, 3, 24, 24, dtype=torch.float64)
    expected = public_vision_forward(sd, images)
    for name in ("own.pt", "own.safetensors"):
        result = _run("convert", path, "-o", tmp_path / name)
        assert result.exit_code == 0, result.output + result.stderr
        converted = load_checkpoint(tmp_path / name).double()
        assert converted.config.natural and converted.config.mask == "selective"
        with torch.no_grad():
            torch.testing.assert_close(converted(images), expected, rtol=1e-10, atol=1e-10)
    assert json.loads((tmp_path / "own.json").read_text())["config"]["natural"] is True
    # the converted file needs no options, and refuses the public-only ones and --config
    for args, message in (((tmp_path / "own.pt", "--mask", "decay"), "drop --mask (for public state_dicts only)"),
                          ((tmp_path / "own.pt", "--config", tmp_path / "own.json"), "--config is for .safetensors"),
                          ((tmp_path / "own.pt", "-o", tmp_path / "own.pt"), "is the input file"),
                          ((path, "-o", tmp_path / "x.onnx"), ".pt or .safetensors")):
        result = _run("convert", *args) if "-o" in args else _run("convert", *args, "-o", tmp_path / "again.pt")
        assert result.exit_code == 2 and message in result.stderr, (args, result.stderr)
        assert len(result.stderr.strip().splitlines()) == 1


def test_config_json_is_used_for_a_public_file(tmp_path):
    sd = public_vision_state_dict("decay", depth=1)
    path = tmp_path / "public.pth"
    torch.save(sd, path)
    config = create_model("vit-tiny", mask="decay", dim=DIM, depth=1, num_heads=HEADS, img_size=24, patch_size=PATCH,
                          num_classes=CLASSES, cls_pooling=True).config
    (tmp_path / "arch.json").write_text(json.dumps(config.to_dict()))
    model = read_model(path, ReadOptions(config_path=tmp_path / "arch.json")).double()
    assert model.config.cls_pooling                                    # from the JSON, not inferred
    images = torch.randn(1, 3, 24, 24, dtype=torch.float64)
    with torch.no_grad():
        torch.testing.assert_close(model(images), public_vision_forward(sd, images, cls_pooling=True))
    with pytest.raises(CheckpointError, match="cannot be combined"):
        read_model(path, ReadOptions(config_path=tmp_path / "arch.json", heads=2))
    wrong = create_model("vit-tiny", mask="selective", dim=DIM, depth=1, num_heads=HEADS, img_size=24,
                         patch_size=PATCH, num_classes=CLASSES).config
    (tmp_path / "wrong.json").write_text(json.dumps(wrong.to_dict()))
    with pytest.raises(CheckpointError, match="do not match the model"):
        read_model(path, ReadOptions(config_path=tmp_path / "wrong.json"))


# ---------------------------------------------------------------------------------------------------------------
# the public MLM (BERT layout)

VOCAB, MAX_LEN, TYPES = 40, 32, 2


def public_mlm_state_dict(mask: str, pos_embed: bool, layer_norm_after: bool, depth: int = 2,
                          seed: int = 0) -> dict[str, torch.Tensor]:
    """BertForMaskedLM's state_dict with the LION mixer, by name and shape (tiny sizes)."""
    gen = torch.Generator().manual_seed(seed)
    e = "bert.embeddings."
    sd = {e + "word_embeddings.weight": _randn(gen, VOCAB, DIM), e + "token_type_embeddings.weight":
          _randn(gen, TYPES, DIM), e + "LayerNorm.weight": 1 + _randn(gen, DIM), e + "LayerNorm.bias": _randn(gen, DIM),
          e + "position_ids": torch.arange(MAX_LEN).view(1, -1)}
    if pos_embed:
        sd[e + "position_embeddings.weight"] = _randn(gen, MAX_LEN, DIM)
    for n in range(depth):
        p = f"bert.encoder.layer.{n}."
        for name in ("query", "key", "value"):
            sd[p + f"attention.self.{name}.weight"] = _randn(gen, DIM, DIM)
            sd[p + f"attention.self.{name}.bias"] = _randn(gen, DIM)
        if layer_norm_after:
            sd[p + "attention.self.layer_norm.weight"] = 1 + _randn(gen, DIM)
            sd[p + "attention.self.layer_norm.bias"] = _randn(gen, DIM)
        if mask == "decay":
            sd[p + "attention.self.ai"] = _randn(gen, HEADS, scale=1.0)
        elif mask == "selective":
            sd[p + "attention.self.Wa_i.weight"] = _randn(gen, HEADS, DIM)
            sd[p + "attention.self.Wa_i.bias"] = _randn(gen, HEADS, scale=1.0)
        for name, (rows, cols) in (("attention.output.dense", (DIM, DIM)), ("intermediate.dense", (4 * DIM, DIM)),
                                   ("output.dense", (DIM, 4 * DIM))):
            sd[p + name + ".weight"], sd[p + name + ".bias"] = _randn(gen, rows, cols), _randn(gen, rows)
        for name in ("attention.output.LayerNorm", "output.LayerNorm"):
            sd[p + name + ".weight"], sd[p + name + ".bias"] = 1 + _randn(gen, DIM), _randn(gen, DIM)
    c = "cls.predictions."
    sd.update({c + "transform.dense.weight": _randn(gen, DIM, DIM), c + "transform.dense.bias": _randn(gen, DIM),
               c + "transform.LayerNorm.weight": 1 + _randn(gen, DIM), c + "transform.LayerNorm.bias": _randn(gen, DIM),
               c + "decoder.weight": sd[e + "word_embeddings.weight"], c + "bias": _randn(gen, VOCAB)})
    sd[c + "decoder.bias"] = sd[c + "bias"]                               # tied, as in BERT
    return sd


def public_mlm_forward(sd: dict[str, torch.Tensor], ids: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
    """BertForMaskedLM with the public LION mixer, float64: word + type-0 (+ position) embeddings, post-norm
    layers (mixer: identity features, 1/sqrt(d), no normaliser, padded keys' scores zeroed), the MLM head."""
    t = {k: v.double() for k, v in sd.items() if v.is_floating_point()}
    e, c = "bert.embeddings.", "cls.predictions."
    length = ids.shape[1]
    x = t[e + "word_embeddings.weight"][ids] + t[e + "token_type_embeddings.weight"][0]
    if e + "position_embeddings.weight" in t:
        x = x + t[e + "position_embeddings.weight"][:length]
    x = F.layer_norm(x, (DIM,), t[e + "LayerNorm.weight"], t[e + "LayerNorm.bias"], eps=1e-12)
    batch, hd = ids.shape[0], DIM // HEADS
    depth = 1 + max(int(k.split(".")[3]) for k in t if k.startswith("bert.encoder.layer."))
    for n in range(depth):
        p = f"bert.encoder.layer.{n}."

        def lin(name, h):
            return F.linear(h, t[p + name + ".weight"], t[p + name + ".bias"])

        q, k, v = (lin(f"attention.self.{m}", x).view(batch, length, HEADS, hd).transpose(1, 2)
                   for m in ("query", "key", "value"))
        decay = None
        if p + "attention.self.ai" in t:
            decay = torch.log(torch.sigmoid(t[p + "attention.self.ai"]))
        elif p + "attention.self.Wa_i.weight" in t:
            decay = torch.log(1 - torch.sigmoid(lin("attention.self.Wa_i", x))).transpose(1, 2)
        kept = keep.double()[:, None, :, None]
        out = reference_attention(q / math.sqrt(hd), k * kept, v * kept, decay, normalize=False)
        out = out.transpose(1, 2).reshape(batch, length, DIM)
        if p + "attention.self.layer_norm.weight" in t:
            out = F.layer_norm(out, (DIM,), t[p + "attention.self.layer_norm.weight"],
                               t[p + "attention.self.layer_norm.bias"])
        x = F.layer_norm(lin("attention.output.dense", out) + x, (DIM,), t[p + "attention.output.LayerNorm.weight"],
                         t[p + "attention.output.LayerNorm.bias"], eps=1e-12)
        h = lin("output.dense", F.gelu(lin("intermediate.dense", x)))
        x = F.layer_norm(h + x, (DIM,), t[p + "output.LayerNorm.weight"], t[p + "output.LayerNorm.bias"], eps=1e-12)
    h = F.gelu(F.linear(x, t[c + "transform.dense.weight"], t[c + "transform.dense.bias"]))
    h = F.layer_norm(h, (DIM,), t[c + "transform.LayerNorm.weight"], t[c + "transform.LayerNorm.bias"], eps=1e-12)
    return F.linear(h, t[c + "decoder.weight"], t[c + "bias"])


@pytest.mark.parametrize("mask, pos_embed, layer_norm_after", [("lit", True, True), ("decay", False, True),
                                                               ("selective", False, False)])
def test_whole_public_mlm_models_load_strictly_and_match(tmp_path, mask, pos_embed, layer_norm_after):
    sd = public_mlm_state_dict(mask, pos_embed, layer_norm_after)
    path = tmp_path / "composer.pt"
    torch.save({"state": {"model": {f"model.{k}": v for k, v in sd.items()}, "optimizers": {}}}, path)
    lines = []
    options = ReadOptions(heads=HEADS) if mask == "lit" else ReadOptions()   # LIT at width 16: no preset has it
    model = read_model(path, options, report=lines.append).double()
    cfg = model.config
    assert (cfg.mask, cfg.pos_embed, cfg.layer_norm_after, cfg.type_vocab_size, cfg.max_len, cfg.num_heads) == (
        mask, pos_embed, layer_norm_after, TYPES, MAX_LEN, HEADS)
    assert ("pos-embed 32" if pos_embed else "no pos-embed (max_len 32)") in lines[0]
    ids = torch.randint(0, VOCAB, (2, 11))
    keep = torch.ones(2, 11, dtype=torch.int64)
    keep[1, 7:] = 0
    with torch.no_grad():
        for form in ("parallel", "chunked", "recurrent"):
            out = set_form(model, form, 4)(ids, keep)
            expected = public_mlm_forward(sd, ids, keep)
            torch.testing.assert_close(out[keep.bool()], expected[keep.bool()], rtol=1e-10, atol=1e-10)


def test_public_lit_mlm_needs_heads_at_an_unknown_width_and_matches_with_them(tmp_path):
    sd = public_mlm_state_dict("lit", True, False, depth=1)
    path = tmp_path / "lit.pt"
    torch.save(sd, path)
    with pytest.raises(CheckpointError, match="pass --heads"):
        read_model(path)
    model = read_model(path, ReadOptions(heads=HEADS)).double()
    ids = torch.randint(0, VOCAB, (2, 9))
    keep = torch.ones(2, 9, dtype=torch.int64)
    with torch.no_grad():
        torch.testing.assert_close(model(ids, keep), public_mlm_forward(sd, ids, keep), rtol=1e-10, atol=1e-10)
    sd["cls.predictions.decoder.bias"] = sd["cls.predictions.bias"] + 1
    torch.save(sd, path)
    with pytest.raises(CheckpointError, match="differ; they are one tied parameter"):
        read_model(path, ReadOptions(heads=HEADS))


def test_fp64_models_compute_their_decays_in_fp64():
    """D and S in float64 agree with the float64 reference to ~1e-15, not the ~1e-8 of fp32 decays."""
    for mask in ("decay", "selective"):
        torch.manual_seed(0)
        model = create_model("vit-tiny", mask=mask, natural=False, depth=1, dim=DIM, num_heads=HEADS, img_size=24,
                             patch_size=PATCH, num_classes=CLASSES).double().eval()
        with torch.no_grad():
            for p in model.parameters():
                p.add_(torch.randn_like(p) * 0.3)
        sd = model.state_dict()
        images = torch.randn(2, 3, 24, 24, dtype=torch.float64)
        with torch.no_grad():
            torch.testing.assert_close(model(images), public_vision_forward(sd, images), rtol=1e-13, atol=1e-13)


def test_cli_exports_a_public_mlm_with_no_options(tmp_path):
    """LION-S MLM without position embeddings, layer norm after the mixer, in a Composer checkpoint: the command
    reads, exports (recurrent) and verifies it with no architecture option; convert then needs none either."""
    sd = public_mlm_state_dict("selective", False, True, depth=1)
    path = tmp_path / "mlm.pt"
    torch.save({"state": {"model": {f"model.{k}": v for k, v in sd.items()}}}, path)
    result = _run(path, "--mode", "recurrent", "--seq-len", 12)
    assert result.exit_code == 0, result.output + result.stderr
    assert ("mlm.pt: read as custom (16 wide, 1 deep, 2 heads), LION-S MLM, vocabulary 40, no pos-embed "
            "(max_len 32), layer norm after the mixer") in result.stderr
    assert "PASSED" in result.output
    assert _run("convert", path, "-o", tmp_path / "own.pt").exit_code == 0
    model = load_checkpoint(tmp_path / "own.pt").double()
    ids = torch.randint(0, VOCAB, (1, 30))                             # longer than the traced 12
    keep = torch.ones(1, 30, dtype=torch.int64)
    with torch.no_grad():
        torch.testing.assert_close(model(ids, keep), public_mlm_forward(sd, ids, keep), rtol=1e-10, atol=1e-10)


def test_load_state_dict_file_takes_model_ema_when_asked(tmp_path):
    from lion_export import load_state_dict_file

    plain, ema = (public_vision_state_dict("decay", depth=1, seed=s) for s in (1, 2))
    torch.save({"model": plain, "model_ema": ema, "epoch": 1}, tmp_path / "c.pth")
    fields = {"mask": "decay", "depth": 1, "dim": DIM, "num_heads": HEADS, "img_size": 24, "patch_size": PATCH,
              "num_classes": CLASSES}
    images = torch.randn(1, 3, 24, 24, dtype=torch.float64)
    for weights, sd in (("model", plain), ("model_ema", ema)):
        model = load_state_dict_file(tmp_path / "c.pth", "vit-tiny", weights=weights, **fields).double()
        with torch.no_grad():
            torch.testing.assert_close(model(images), public_vision_forward(sd, images), rtol=1e-10, atol=1e-10)
    with pytest.raises(CheckpointError, match="no 'ema' state_dict"):
        load_state_dict_file(tmp_path / "c.pth", "vit-tiny", weights="ema", **fields)


def test_a_state_dict_with_lion_export_names_is_read_with_its_config(tmp_path):
    model = create_model("vit-tiny", mask="decay", depth=1, dim=DIM, num_heads=HEADS, img_size=24, patch_size=PATCH,
                         num_classes=CLASSES, natural=True)
    torch.save(model.state_dict(), tmp_path / "ours.pt")            # vision names are the public ones: inferred
    assert read_model(tmp_path / "ours.pt").config == model.config
    text = create_model("encoder-tiny", depth=1, dim=DIM, num_heads=HEADS, vocab_size=VOCAB, max_len=MAX_LEN)
    torch.save(text.state_dict(), tmp_path / "text.pt")
    with pytest.raises(CheckpointError, match="pass --config with its model config JSON"):
        read_model(tmp_path / "text.pt")
    (tmp_path / "text.json").write_text(json.dumps(text.config.to_dict()))
    assert read_model(tmp_path / "text.pt", ReadOptions(config_path=tmp_path / "text.json")).config == text.config
