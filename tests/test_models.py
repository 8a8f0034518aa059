"""LION layers and models: the public conventions, form equivalence, padding, gradients, names, presets.

The mixers are checked against float64 re-statements of the public code's forward pass written here from
the LION paper's definitions (explicit products of lambdas, no log space), not against the package's own maths.
"""
from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from lion_export import PRESETS, VARIANTS, LionAttention, create_model, get_variant, set_form
from lion_export.models import TextConfig, VisionConfig, model_from_config
from lion_export.models.vision import patch_grid_for_tokens

FORMS = ("parallel", "chunked", "recurrent")
MASKS = tuple(VARIANTS)


def _explicit_mask(lam: torch.Tensor) -> torch.Tensor:
    """(B, H, L) lambdas -> (B, H, L, L): M_ij = prod of lambda_t for t between i and j, key counted, query not."""
    batch, heads, length = lam.shape
    mask = torch.ones(batch, heads, length, length, dtype=lam.dtype)
    for i in range(length):
        for j in range(length):
            if j < i:
                mask[:, :, i, j] = lam[:, :, j:i].prod(-1)
            elif j > i:
                mask[:, :, i, j] = lam[:, :, i + 1:j + 1].prod(-1)
    return mask


def _lambdas(attn: LionAttention, x: torch.Tensor) -> torch.Tensor:
    """Per-token lambdas (B, H, L) in float64 from the public definitions."""
    batch, length, _ = x.shape
    heads = attn.num_heads
    key = attn.variant.key
    if key == "lit":
        return torch.ones(batch, heads, length, dtype=torch.float64)
    if key == "decay":
        param = attn.a_i if attn.convention == "vision" else attn.ai
        return torch.sigmoid(param.double()).view(1, heads, 1).expand(batch, heads, length)
    linear = attn.a_i if attn.convention == "vision" else attn.Wa_i
    lam = (1 - torch.sigmoid(F.linear(x, linear.weight.double(), linear.bias.double()))).transpose(1, 2)
    if attn.convention == "vision":
        lam = torch.cat([torch.ones_like(lam[..., :1]), lam[..., 1:]], dim=-1)   # class token: lambda_0 = 1
    return lam


def public_vision_mixer(attn: LionAttention, x: torch.Tensor) -> torch.Tensor:
    """The public vision mixer's forward, float64: qkv -> (B, N, 3, H, D/H), phi, scale, mask, row-normalise."""
    x = x.double()
    batch, length, dim = x.shape
    heads, hd = attn.num_heads, dim // attn.num_heads
    qkv = F.linear(x, attn.qkv.weight.double(), attn.qkv.bias.double()).reshape(batch, length, 3, heads, hd)
    q, k, v = qkv.permute(2, 0, 3, 1, 4)
    if attn.variant.key == "lit":
        q, k = F.elu(q) + 1, F.elu(k) + 1
    else:
        q, k = ((F.silu(t) + 0.5) / (F.silu(t) + 0.5).norm(dim=-1, keepdim=True) for t in (q, k))
    scores = (q @ k.transpose(-1, -2)) * hd ** -0.5 * _explicit_mask(_lambdas(attn, x))
    scores = scores / (scores.sum(-1, keepdim=True) + 1e-6)
    out = (scores @ v).transpose(1, 2).reshape(batch, length, dim)
    return F.linear(out, attn.proj.weight.double(), attn.proj.bias.double())


def public_mlm_mixer(attn: LionAttention, x: torch.Tensor, keep: torch.Tensor | None) -> torch.Tensor:
    """The public MLM mixer's forward, float64: identity phi, 1/sqrt(d), no normaliser, padded keys' scores zeroed."""
    x = x.double()
    batch, length, dim = x.shape
    heads, hd = attn.num_heads, dim // attn.num_heads

    def split(linear):
        return F.linear(x, linear.weight.double(), linear.bias.double()).view(batch, length, heads, hd).transpose(1, 2)

    q, k, v = split(attn.query), split(attn.key), split(attn.value)
    scores = (q @ k.transpose(-1, -2)) / math.sqrt(hd) * _explicit_mask(_lambdas(attn, x))
    if keep is not None:
        scores = scores * keep.double()[:, None, None, :]
    out = (scores @ v).transpose(1, 2).reshape(batch, length, dim)
    if attn.layer_norm is not None:
        out = F.layer_norm(out, (dim,), attn.layer_norm.weight.double(), attn.layer_norm.bias.double())
    return out


def _randomise(module: torch.nn.Module, seed: int) -> None:
    """Non-trivial values for every parameter (incl. LayerNorm affine and decays), so no term can hide."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.randn(p.shape, generator=gen) * (0.3 if p.dim() > 1 else 0.5))


@pytest.mark.parametrize("mask", MASKS)
@pytest.mark.parametrize("form", FORMS)
def test_vision_mixer_matches_public_forward(mask, form):
    torch.manual_seed(0)
    attn = LionAttention(24, 3, mask, convention="vision", form=form, chunk_size=4)
    _randomise(attn, 1)
    x = torch.randn(2, 11, 24)
    torch.testing.assert_close(attn(x).double(), public_vision_mixer(attn, x), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("mask", MASKS)
@pytest.mark.parametrize("form", FORMS)
@pytest.mark.parametrize("layer_norm_after", [False, True])
def test_mlm_mixer_matches_public_forward_with_padding(mask, form, layer_norm_after):
    torch.manual_seed(0)
    attn = LionAttention(16, 2, mask, convention="mlm", form=form, chunk_size=3, layer_norm_after=layer_norm_after)
    _randomise(attn, 2)
    x = torch.randn(3, 10, 16)
    keep = torch.ones(3, 10)
    keep[1, 7:] = 0
    keep[2, 4:] = 0
    torch.testing.assert_close(attn(x, keep).double(), public_mlm_mixer(attn, x, keep), rtol=1e-5, atol=1e-5)


def test_parameter_names_follow_the_public_conventions():
    names = {(conv, mask): sorted(n for n, _ in LionAttention(8, 2, mask, convention=conv).named_parameters())
             for conv in ("vision", "mlm") for mask in MASKS}
    assert names["vision", "lit"] == ["proj.bias", "proj.weight", "qkv.bias", "qkv.weight"]
    assert names["vision", "decay"] == ["a_i", "proj.bias", "proj.weight", "qkv.bias", "qkv.weight"]
    assert names["vision", "selective"] == ["a_i.bias", "a_i.weight", "proj.bias", "proj.weight", "qkv.bias",
                                            "qkv.weight"]
    base = ["key.bias", "key.weight", "query.bias", "query.weight", "value.bias", "value.weight"]
    assert names["mlm", "lit"] == base
    assert names["mlm", "decay"] == sorted(base + ["ai"])
    assert names["mlm", "selective"] == sorted(base + ["Wa_i.bias", "Wa_i.weight"])
    with_norm = LionAttention(8, 2, "lit", convention="mlm", layer_norm_after=True)
    assert {"layer_norm.weight", "layer_norm.bias"} <= set(with_norm.state_dict())


def _forms_agree(model, *inputs, chunk_size):
    outs = {}
    for form in FORMS:
        set_form(model, form, chunk_size=chunk_size)
        outs[form] = model(*inputs)
    for form in ("chunked", "recurrent"):
        torch.testing.assert_close(outs[form], outs["parallel"], rtol=1e-5, atol=1e-5, msg=lambda m: f"{form}: {m}")
    return outs["parallel"]


@pytest.mark.parametrize("mask", MASKS)
@pytest.mark.parametrize("cls_pooling,pos_embed", [(False, True), (True, False)])
def test_vision_model_forms_agree(mask, cls_pooling, pos_embed):
    torch.manual_seed(0)
    model = create_model("vit-tiny", mask=mask, depth=2, dim=32, num_heads=2, img_size=32, patch_size=8,
                         num_classes=7, cls_pooling=cls_pooling, pos_embed=pos_embed).eval()
    _randomise(model, 3)
    images = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        logits = _forms_agree(model, images, chunk_size=5)                   # 17 tokens: chunks 5, 5, 5, 2
    assert logits.shape == (2, 7) and torch.isfinite(logits).all()


def test_vision_model_pooling_and_class_token():
    """Class-token pooling reads token 0; mean pooling averages all N+1 tokens (class token included)."""
    torch.manual_seed(0)
    model = create_model("vit-tiny", mask="selective", depth=1, dim=16, num_heads=2, img_size=16, patch_size=8,
                         num_classes=3).eval()
    images = torch.randn(2, 3, 16, 16)
    with torch.no_grad():
        tokens = model.patch_embed(images)
        x = torch.cat([model.cls_token.expand(2, -1, -1), tokens], 1) + model.pos_embed
        x = model.norm(model.blocks[0](x))
        torch.testing.assert_close(model(images), model.head(x.mean(1)))
        model.config = VisionConfig.from_dict({**model.config.to_dict(), "cls_pooling": True})
        torch.testing.assert_close(model(images), model.head(x[:, 0]))
    with pytest.raises(ValueError, match=r"\(B, 3, 16, 16\)"):
        model(torch.randn(2, 3, 32, 32))


@pytest.mark.parametrize("mask", MASKS)
def test_vision_model_without_position_embedding_takes_any_multiple_of_the_patch(mask):
    """No learnt positions: any H, W that are multiples of the patch run, square or not, with (H/p)(W/p) + 1 tokens
    in row-major patch order after the class token, the same in every form."""
    torch.manual_seed(0)
    model = create_model("vit-tiny", mask=mask, depth=1, dim=16, num_heads=2, img_size=32, patch_size=8,
                         num_classes=4, pos_embed=False).eval()
    _randomise(model, 1)
    for height, width in [(32, 32), (16, 40), (8, 8)]:                   # 17, 11 and 2 tokens
        images = torch.randn(2, 3, height, width)
        with torch.no_grad():
            logits = _forms_agree(model, images, chunk_size=4)
            # the same model composed by hand from an explicit patch unfold (row-major, as Conv2d's flatten is)
            weight = model.patch_embed.proj.weight.flatten(1)
            patches = F.unfold(images, kernel_size=8, stride=8).transpose(1, 2)
            tokens = patches @ weight.T + model.patch_embed.proj.bias
            assert tokens.shape[1] == (height // 8) * (width // 8)
            x = torch.cat([model.cls_token.expand(2, -1, -1), tokens], 1)
            set_form(model, "parallel")
            x = model.norm(model.blocks[0](x))
            torch.testing.assert_close(logits, model.head(x.mean(1)), rtol=1e-5, atol=1e-5)


def test_vision_model_rejects_image_sizes_it_cannot_take():
    torch.manual_seed(0)
    free = create_model("vit-tiny", mask="lit", depth=1, dim=16, num_heads=2, img_size=32, patch_size=8,
                        num_classes=3, pos_embed=False).eval()
    for bad in [(30, 32), (32, 4), (0, 16)]:
        with pytest.raises(ValueError, match=rf"multiples of patch_size \(8\), got {bad[0]}x{bad[1]}"):
            free(torch.randn(1, 3, *bad))
    with pytest.raises(ValueError, match=r"\(B, 3, H, W\), got \(1, 1, 32, 32\)"):
        free(torch.randn(1, 1, 32, 32))
    fixed = create_model("vit-tiny", mask="lit", depth=1, dim=16, num_heads=2, img_size=32, patch_size=8,
                         num_classes=3, pos_embed=True).eval()
    for bad in [(16, 16), (32, 40)]:
        with pytest.raises(ValueError, match=r"\(B, 3, 32, 32\) \(the learnt position embedding"):
            fixed(torch.randn(1, 3, *bad))


def test_patch_grid_for_tokens_is_the_most_square_grid():
    for tokens in range(2, 80):
        rows, cols = patch_grid_for_tokens(tokens)
        assert rows * cols + 1 == tokens and rows <= cols
        # brute force over every factor pair: none is closer to square
        pairs = [(r, (tokens - 1) // r) for r in range(1, tokens) if (tokens - 1) % r == 0]
        assert cols - rows == min(abs(c - r) for r, c in pairs)
    assert patch_grid_for_tokens(17) == (4, 4) and patch_grid_for_tokens(129) == (8, 16)
    for bad in (1, 0, 2.5, True):
        with pytest.raises(ValueError, match="at least 2 tokens"):
            patch_grid_for_tokens(bad)


@pytest.mark.parametrize("mask", MASKS)
def test_text_model_forms_agree_and_padding_is_exact(mask):
    torch.manual_seed(0)
    model = create_model("encoder-tiny", mask=mask, depth=2, dim=16, num_heads=2, vocab_size=50, max_len=32,
                         layer_norm_after=mask == "decay").eval()
    _randomise(model, 4)
    lengths = [13, 9, 4]
    ids = torch.randint(0, 50, (3, 13))
    keep = torch.zeros(3, 13, dtype=torch.long)
    for row, n in enumerate(lengths):
        keep[row, :n] = 1
    with torch.no_grad():
        batched = _forms_agree(model, ids, keep, chunk_size=4)
        for form in FORMS:
            set_form(model, form, chunk_size=4)
            for row, n in enumerate(lengths):
                alone = model(ids[row:row + 1, :n])
                torch.testing.assert_close(batched[row:row + 1, :n], alone, rtol=1e-5, atol=1e-5,
                                           msg=lambda m: f"{form}, row {row}: {m}")
    assert batched.shape == (3, 13, 50)


def test_text_model_errors():
    model = create_model("encoder-tiny", depth=1, vocab_size=20, max_len=8, mlm_head=False)
    assert model(torch.zeros(2, 5, dtype=torch.long)).shape == (2, 5, 128)
    with pytest.raises(ValueError, match="max_len=8"):
        model(torch.zeros(1, 9, dtype=torch.long))
    with pytest.raises(ValueError, match=r"\(B, L\)"):
        model(torch.zeros(5, dtype=torch.long))


@pytest.mark.parametrize("convention", ["vision", "mlm"])
@pytest.mark.parametrize("mask", ["decay", "selective"])
def test_decay_parameters_get_gradients_equal_in_every_form(convention, mask):
    torch.manual_seed(0)
    attn = LionAttention(16, 2, mask, convention=convention, chunk_size=3)
    x = torch.randn(2, 9, 16)
    grads = {}
    for form in FORMS:
        set_form(attn, form)
        attn.zero_grad()
        attn(x).square().sum().backward()
        decay = attn.a_i if convention == "vision" else (attn.ai if mask == "decay" else attn.Wa_i)
        grad = decay.grad if mask == "decay" else decay.weight.grad
        assert grad is not None and grad.abs().max() > 0, f"{form}: no gradient reaches the decay parameters"
        grads[form] = grad.clone()
    for form in ("chunked", "recurrent"):
        torch.testing.assert_close(grads[form], grads["parallel"], rtol=1e-4, atol=1e-6)


def test_vision_state_dict_keys_match_the_public_model():
    """Keys and shapes of the public LION image code's model: tiny, depth 1, 10 classes."""
    d, p, n, c, h = 192, 16, 196, 10, 3
    common = {
        "cls_token": (1, 1, d), "pos_embed": (1, n + 1, d),
        "patch_embed.proj.weight": (d, 3, p, p), "patch_embed.proj.bias": (d,),
        "blocks.0.norm1.weight": (d,), "blocks.0.norm1.bias": (d,),
        "blocks.0.attn.qkv.weight": (3 * d, d), "blocks.0.attn.qkv.bias": (3 * d,),
        "blocks.0.attn.proj.weight": (d, d), "blocks.0.attn.proj.bias": (d,),
        "blocks.0.norm2.weight": (d,), "blocks.0.norm2.bias": (d,),
        "blocks.0.mlp.fc1.weight": (4 * d, d), "blocks.0.mlp.fc1.bias": (4 * d,),
        "blocks.0.mlp.fc2.weight": (d, 4 * d), "blocks.0.mlp.fc2.bias": (d,),
        "norm.weight": (d,), "norm.bias": (d,), "head.weight": (c, d), "head.bias": (c,),
    }
    extra = {"lit": {}, "decay": {"blocks.0.attn.a_i": (h,)},
             "selective": {"blocks.0.attn.a_i.weight": (h, d), "blocks.0.attn.a_i.bias": (h,)}}
    for mask in MASKS:
        with torch.device("meta"):
            sd = create_model("vit-tiny", mask=mask, depth=1, num_classes=c).state_dict()
        assert {k: tuple(v.shape) for k, v in sd.items()} == {**common, **extra[mask]}, mask
        with torch.device("meta"):
            sd = create_model("vit-tiny", mask=mask, depth=1, num_classes=c, pos_embed=False).state_dict()
        assert set(sd) == set(common) - {"pos_embed"} | set(extra[mask])


def _vit_param_count(dim, depth, heads, mask, classes=1000, patch=16, img=224):
    per_block = (2 * 2 * dim + 3 * dim * dim + 3 * dim + dim * dim + dim
                 + 4 * dim * dim + 4 * dim + 4 * dim * dim + dim)
    per_block += {"lit": 0, "decay": heads, "selective": heads * dim + heads}[mask]
    tokens = (img // patch) ** 2 + 1
    return (dim + tokens * dim + dim * 3 * patch * patch + dim + depth * per_block + 2 * dim
            + classes * dim + classes)


@pytest.mark.parametrize("preset", list(PRESETS))
def test_presets_at_full_size(preset):
    """Every preset built at its real size (on the meta device: shapes without memory or init cost)."""
    with torch.device("meta"):
        model = create_model(preset, mask="selective")
        rebuilt = model_from_config(model.config.to_dict())
    count = sum(p.numel() for p in model.parameters())
    cfg = model.config
    if preset.startswith("vit"):
        expected_dims = {"vit-tiny": (192, 3), "vit-small": (384, 6), "vit-base": (768, 12)}[preset]
        assert (cfg.dim, cfg.num_heads, cfg.depth, cfg.patch_size, cfg.img_size) == (*expected_dims, 12, 16, 224)
        assert count == _vit_param_count(cfg.dim, 12, cfg.num_heads, "selective")
    else:
        assert isinstance(cfg, TextConfig) and cfg.vocab_size == 30522 and cfg.max_len == 512
    assert rebuilt.config == cfg and type(rebuilt) is type(model)


def test_vit_tiny_parameter_count_matches_deit_tiny():
    """LION-LIT vit-tiny has exactly the ViT/DeiT-Tiny parameter layout: 5,717,416 parameters."""
    with torch.device("meta"):
        model = create_model("vit-tiny")
    assert sum(p.numel() for p in model.parameters()) == _vit_param_count(192, 12, 3, "lit") == 5_717_416


def test_create_model_rejects_unknown_presets_fields_and_values():
    with pytest.raises(ValueError, match="valid: vit-tiny, vit-small, vit-base, encoder-tiny, encoder-base"):
        create_model("vit-huge")
    with pytest.raises(ValueError, match=r"unknown field\(s\) \['vocab_size'\].*valid: .*img_size"):
        create_model("vit-tiny", vocab_size=10)
    with pytest.raises(ValueError, match="unknown LION variant 'causal'"):
        create_model("vit-tiny", mask="causal")
    with pytest.raises(ValueError, match="form"):
        create_model("encoder-tiny", form="rnn")
    with pytest.raises(ValueError, match="must be of type int"):
        create_model("vit-tiny", depth=2.5)
    with pytest.raises(ValueError, match="multiple of patch_size"):
        create_model("vit-tiny", img_size=30)
    with pytest.raises(ValueError, match="multiple of num_heads"):
        create_model("encoder-tiny", dim=100, num_heads=3)


def test_config_round_trip_and_overrides():
    model = create_model("vit-small", mask="LION-S", depth=1, img_size=32, num_classes=5, form="chunked",
                         chunk_size=8)
    cfg = model.config.to_dict()
    assert cfg["model"] == "vision" and cfg["mask"] == "selective" and cfg["dim"] == 384
    assert VisionConfig.from_dict(cfg) == model.config
    assert all(b.attn.form == "chunked" and b.attn.chunk_size == 8 for b in model.blocks)
    with pytest.raises(ValueError, match=r"unknown config field\(s\) \['colour'\]"):
        VisionConfig.from_dict({**cfg, "colour": 1})
    with pytest.raises(ValueError, match="not 'text'"):
        TextConfig.from_dict(cfg)


def test_set_form_switches_every_layer_and_validates():
    model = create_model("encoder-tiny", depth=2, vocab_size=10)
    assert set_form(model, "recurrent", chunk_size=7) is model
    layers = [m for m in model.modules() if isinstance(m, LionAttention)]
    assert len(layers) == 2 and all(m.form == "recurrent" and m.chunk_size == 7 for m in layers)
    assert model.config.form == "recurrent" and model.config.chunk_size == 7
    with pytest.raises(ValueError, match="form must be one of"):
        set_form(model, "attention")
    with pytest.raises(ValueError, match="chunk_size"):
        set_form(model, "chunked", chunk_size=0)
    assert all(m.form == "recurrent" for m in layers)
    assert get_variant("lion-d").key == "decay"


def test_models_export_with_dynamic_batch_and_sequence():
    """torch.export (what torch.onnx.export(dynamo=True) runs) traces the models with symbolic batch and length:
    no branches on tensor values, no .item(), and the max_len check does not pin the sequence length."""
    from torch.export import Dim, export

    torch.manual_seed(0)
    text = create_model("encoder-tiny", mask="selective", depth=1, dim=16, vocab_size=30, max_len=64).eval()
    batch, seq = Dim("batch"), Dim("seq")
    ids, keep = torch.randint(0, 30, (2, 9)), torch.ones(2, 9, dtype=torch.long)
    program = export(text, (ids, keep), dynamic_shapes=({0: batch, 1: seq}, {0: batch, 1: seq}))
    ids, keep = torch.randint(0, 30, (3, 14)), torch.ones(3, 14, dtype=torch.long)
    keep[0, 9:] = 0
    torch.testing.assert_close(program.module()(ids, keep), text(ids, keep))

    vision = create_model("vit-tiny", mask="decay", depth=1, dim=16, num_heads=2, img_size=16, num_classes=3).eval()
    program = export(vision, (torch.randn(2, 3, 16, 16),), dynamic_shapes=({0: Dim("batch")},))
    images = torch.randn(5, 3, 16, 16)
    torch.testing.assert_close(program.module()(images), vision(images))

    # without a position embedding H and W stay symbolic: the eager-only size check adds no guard
    free = create_model("vit-tiny", mask="selective", depth=1, dim=16, num_heads=2, img_size=16, patch_size=4,
                        num_classes=3, pos_embed=False, form="parallel").eval()
    sides = {2: 4 * Dim("rows", min=1), 3: 4 * Dim("cols", min=1)}
    program = export(free, (torch.randn(2, 3, 16, 16),), dynamic_shapes=({0: Dim("batch"), **sides},))
    for height, width in [(8, 20), (12, 8), (24, 12)]:         # torch.export assumes >= 2 patches a side
        images = torch.randn(3, 3, height, width)
        torch.testing.assert_close(program.module()(images), free(images))
