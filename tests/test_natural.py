"""LION-D♮ / LION-S♮ (natural order): the two-walk forms, the mixer and the model against the float64 definition
(masks averaged before the normalisation, reference.reference_natural_attention), and their ONNX exports."""
from __future__ import annotations

import onnx
import pytest
import torch
import torch.nn.functional as F
from reference import reference_natural_attention

from lion_export import LionAttention, create_model, set_form
from lion_export.export import export_onnx
from lion_export.scan_op import DOMAIN, OP_TYPE
from lion_export.models.natural_order import natural_attention, snake_walks
from lion_export.verify import verify_onnx

FORMS = ("parallel", "chunked", "recurrent")
VISION = {"depth": 1, "dim": 16, "num_heads": 2, "img_size": 32, "patch_size": 8, "num_classes": 5}


def _inputs(rows: int, cols: int, per_token: bool, seed: int = 0, heads: int = 2, dim: int = 4):
    gen = torch.Generator().manual_seed(seed)
    length = rows * cols + 1
    q, k = (torch.rand(2, heads, length, dim, generator=gen, dtype=torch.float64) for _ in range(2))
    v = torch.randn(2, heads, length, dim + 1, generator=gen, dtype=torch.float64)
    shape = (2, heads, length) if per_token else (heads,)
    decays = tuple(-torch.rand(shape, generator=gen, dtype=torch.float64) * 2 for _ in range(2))
    return q, k, v, decays


def test_snake_walks_are_permutations_and_their_places_invert_them():
    for rows, cols in [(3, 5), (4, 4), (1, 3), (5, 2)]:
        for walk, place in snake_walks(rows, cols):
            assert walk[0] == 0 and sorted(walk.tolist()) == list(range(rows * cols + 1))
            assert torch.equal(walk[place], torch.arange(rows * cols + 1))
    (walk_1, _), (walk_2, _) = snake_walks(2, 3)
    assert walk_1.tolist() == [0, 1, 2, 3, 6, 5, 4]                 # row 1 runs right to left
    assert walk_2.tolist() == [0, 1, 4, 5, 2, 3, 6]                 # column 1 runs bottom-up


@pytest.mark.parametrize("form", FORMS)
@pytest.mark.parametrize("grid", [(3, 5), (5, 5), (1, 7)])
@pytest.mark.parametrize("per_token", [False, True], ids=["D", "S"])
def test_natural_attention_matches_the_averaged_mask_definition(form, grid, per_token):
    q, k, v, decays = _inputs(*grid, per_token)
    expected = reference_natural_attention(q, k, v, *decays, *grid)
    for chunk in (4, 3):                                            # 16 tokens: 16 mod 3 == 1
        out = natural_attention(q, k, v, decays, grid, form=form, chunk_size=chunk)
        torch.testing.assert_close(out, expected, rtol=1e-12, atol=1e-12)
    q32, k32, v32 = q.float(), k.float(), v.float()
    out32 = natural_attention(q32, k32, v32, tuple(d.float() for d in decays), grid, form=form, chunk_size=4)
    assert out32.dtype == torch.float32
    torch.testing.assert_close(out32.double(), expected, rtol=1e-5, atol=1e-5)


def test_the_two_walks_really_differ_from_one_plain_pass():
    """Guards the test above: with different decays per walk, neither walk's plain LION mask is the answer."""
    from reference import reference_attention

    q, k, v, decays = _inputs(3, 5, True)
    natural = reference_natural_attention(q, k, v, *decays, 3, 5)
    for decay in decays:
        assert (reference_attention(q, k, v, decay) - natural).abs().max() > 1e-3


def _public_natural_mixer(attn: LionAttention, x: torch.Tensor, grid: tuple[int, int]) -> torch.Tensor:
    """The public `order='S'` vision mixer in float64: qkv, shifted-SiLU features, head_dim^-0.5 scale, one decay
    per walk (LION-S: lambda = 1 - sigmoid(a(x)), the class token's set to 1), averaged masks, normalised."""
    x = x.double()
    batch, length, dim = x.shape
    heads, hd = attn.num_heads, dim // attn.num_heads
    qkv = F.linear(x, attn.qkv.weight.double(), attn.qkv.bias.double()).reshape(batch, length, 3, heads, hd)
    q, k, v = qkv.permute(2, 0, 3, 1, 4)
    q, k = ((F.silu(t) + 0.5) / (F.silu(t) + 0.5).norm(dim=-1, keepdim=True) for t in (q, k))

    def log_lambda(param):
        if isinstance(param, torch.nn.Parameter):
            return torch.log(torch.sigmoid(param.double()))
        lam = 1 - torch.sigmoid(F.linear(x, param.weight.double(), param.bias.double())).transpose(1, 2)
        return torch.log(torch.cat([torch.ones_like(lam[..., :1]), lam[..., 1:]], dim=-1))

    out = reference_natural_attention(q * hd ** -0.5, k, v, log_lambda(attn.a_i), log_lambda(attn.a2_i), *grid)
    out = out.transpose(1, 2).reshape(batch, length, dim)
    return F.linear(out, attn.proj.weight.double(), attn.proj.bias.double())


@pytest.mark.parametrize("mask", ["decay", "selective"])
@pytest.mark.parametrize("form", FORMS)
def test_natural_mixer_matches_the_public_forward_on_an_odd_grid(mask, form):
    torch.manual_seed(0)
    attn = LionAttention(24, 3, mask, convention="vision", form=form, chunk_size=4, natural=True)
    gen = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for p in attn.parameters():
            p.copy_(torch.randn(p.shape, generator=gen) * 0.5)
    x = torch.randn(2, 3 * 5 + 1, 24)
    expected = _public_natural_mixer(attn, x, (3, 5))
    torch.testing.assert_close(attn(x, grid=(3, 5)).double(), expected, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(attn.double()(x.double(), grid=(3, 5)), expected, rtol=1e-12, atol=1e-12)


def test_natural_parameters_have_the_public_names_and_shapes_and_get_gradients():
    d = create_model("vit-tiny", mask="decay", natural=True, **VISION).state_dict()
    s = create_model("vit-tiny", mask="selective", natural=True, **VISION).state_dict()
    assert d["blocks.0.attn.a2_i"].shape == (2,)
    assert s["blocks.0.attn.a2_i.weight"].shape == (2, 16) and s["blocks.0.attn.a2_i.bias"].shape == (2,)
    model = create_model("vit-tiny", mask="selective", natural=True, **VISION)
    model(torch.randn(2, 3, 32, 32)).sum().backward()
    attn = model.blocks[0].attn
    assert attn.a_i.weight.grad.abs().sum() > 0 and attn.a2_i.weight.grad.abs().sum() > 0
    with pytest.raises(ValueError, match="natural order needs a decay"):
        create_model("vit-tiny", mask="lit", natural=True, **VISION)
    with pytest.raises(ValueError, match="grid"):
        attn(torch.randn(1, 7, 16))                                  # 6 patches: no square grid implied


def test_natural_model_runs_other_image_sizes_identically_in_every_form():
    """Without a position embedding the grid follows the image: 3 x 5 patches (24 x 40 px), not the 4 x 4 trained."""
    torch.manual_seed(0)
    model = create_model("vit-tiny", mask="selective", natural=True, pos_embed=False, **VISION).double().eval()
    images = torch.randn(2, 3, 24, 40, dtype=torch.float64)
    with torch.no_grad():
        outs = {form: set_form(model, form, 3)(images) for form in FORMS}
        grids = []
        model.blocks[0].attn.register_forward_pre_hook(lambda _m, args, kw: grids.append(kw["grid"]),
                                                       with_kwargs=True)
        model(images)
    assert grids == [(3, 5)]
    for form in ("chunked", "recurrent"):
        torch.testing.assert_close(outs[form], outs["parallel"], rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("mask, mode, pos_embed", [("selective", "chunked", False), ("selective", "recurrent", False),
                                                   ("decay", "recurrent", True)])
def test_natural_export_is_verified(tmp_path, mask, mode, pos_embed):
    torch.manual_seed(0)
    model = create_model("vit-tiny", mask=mask, natural=True, pos_embed=pos_embed, **VISION).eval()
    path = export_onnx(model, tmp_path / "m.onnx", form=mode, chunk_size=8)
    proto = onnx.load(path)
    scans = [n for n in proto.graph.node if (n.domain, n.op_type) == (DOMAIN, OP_TYPE)]
    assert len(scans) == (2 if mode == "recurrent" else 0)          # two passes per natural mixer
    assert sum(n.op_type == "Gather" for n in proto.graph.node) >= 2
    assert "LION-" in dict((p.key, p.value) for p in proto.metadata_props)["variants"]
    report = verify_onnx(model, path, progress=False)
    assert report.passed, report.to_dict()
    if not pos_embed:
        assert len({case.seq_len for case in report.cases}) >= 2     # several grids, not just the traced one


@pytest.mark.parametrize("form", ["chunked", "recurrent"])
@pytest.mark.parametrize("per_token", [False, True], ids=["D", "S"])
def test_natural_attention_runs_its_two_passes_in_the_triton_kernels(form, per_token):
    """backend="triton": each walk is one kernel launch (chunked or scan) on v with its column of ones; the
    interpreter on a CPU (tests/conftest.py), CUDA tensors where a GPU is present. Tiny: 3 x 5 grid, 16 tokens."""
    device = "cuda" if torch.cuda.is_available() else "cpu"
    q, k, v, decays = _inputs(3, 5, per_token, dim=16)
    expected = reference_natural_attention(q, k, v, *decays, 3, 5)
    out = natural_attention(q.float().to(device), k.float().to(device), v.float().to(device),
                            tuple(d.float().to(device) for d in decays), (3, 5), form=form, chunk_size=16,
                            backend="triton")
    torch.testing.assert_close(out.cpu().double(), expected, rtol=1e-4, atol=1e-5)
