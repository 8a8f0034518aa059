"""`LionAttention`, the LION token mixer as an nn.Module, in both public parameter conventions.

The public LION code has two mixers (its image and its MLM code) that differ in everything but the mask:
- "vision": one fused `qkv` Linear, phi = elu+1 (LIT) or shifted SiLU + L2 norm (D, S), q scaled by
  head_dim^-0.5, rows normalised (C_i + 1e-6), decay parameter `a_i`, output Linear `proj`;
  LION-S forces the class token's own decay to 1 (its log decay to 0).
- "mlm": separate `query` / `key` / `value` Linears, phi = identity, q scaled by 1/sqrt(head_dim), no row
  normalisation, decay parameter `ai` (LION-D) or Linear `Wa_i` (LION-S), optional `layer_norm` on the output,
  no output Linear (the surrounding block owns it).
Parameter names are the public ones so their state_dicts load with strict=True. The maths itself is
`lion_export.lion_attention`; this module only builds q, k, v and the log decays, and owns the current form.

Unlike the public vision code, the LION-S decay is never detached: gradients reach `a_i` / `Wa_i`.

natural=True (vision only, LION-D / LION-S): the natural-order variants LION-D♮ / LION-S♮ with a second decay
`a2_i` of the same kind as `a_i` (the public name), computed as two passes (natural_order.py).
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from ..forms import FORMS, lion_attention
from ..forms.decay import log_sigmoid
from ..variants import get_variant
from .natural_order import natural_attention

CONVENTIONS = ("vision", "mlm")


def _check_form(form: str, chunk_size: int) -> None:
    if form not in FORMS:
        raise ValueError(f"form must be one of {FORMS}, got {form!r}")
    if isinstance(chunk_size, bool) or not isinstance(chunk_size, int) or chunk_size <= 0:
        raise ValueError(f"chunk_size must be a positive integer, got {chunk_size!r}")


def _elu_plus_one(x: torch.Tensor) -> torch.Tensor:
    return F.elu(x) + 1.0


def _shifted_silu(x: torch.Tensor) -> torch.Tensor:
    # silu(x) + 0.5 >= 0.5 - 0.2785 > 0, so the L2 norm is never zero and needs no eps
    y = F.silu(x) + 0.5
    return y / y.norm(dim=-1, keepdim=True)


_VISION_FEATURE_MAPS = {"elu_plus_one": _elu_plus_one, "shifted_silu": _shifted_silu}


class LionAttention(nn.Module):
    """Multi-head LION attention on (B, L, dim) tokens, computed in the current `form`.

    mask: a variant key of lion_export.variants ("lit", "decay", "selective").
    convention: "vision" or "mlm" (see the module docstring); layer_norm_after applies to "mlm" only.
    natural: the two-walk natural-order variant (vision, LION-D / LION-S); forward then needs the patch grid.
    """

    def __init__(self, dim: int, num_heads: int, mask: str = "lit", *, convention: str = "vision",
                 form: str = "parallel", chunk_size: int = 64, layer_norm_after: bool = False,
                 natural: bool = False) -> None:
        super().__init__()
        if dim <= 0 or num_heads <= 0 or dim % num_heads:
            raise ValueError(f"dim ({dim}) must be a positive multiple of num_heads ({num_heads})")
        if convention not in CONVENTIONS:
            raise ValueError(f"convention must be one of {CONVENTIONS}, got {convention!r}")
        if layer_norm_after and convention != "mlm":
            raise ValueError("layer_norm_after belongs to the 'mlm' convention only")
        _check_form(form, chunk_size)
        self.variant = get_variant(mask)
        if natural and (convention != "vision" or self.variant.decay == "none"):
            raise ValueError("natural order needs the 'vision' convention and a decay (LION-D or LION-S), got "
                             f"{self.variant.display_name} in the {convention!r} convention")
        self.natural = natural
        self.dim, self.num_heads, self.head_dim = dim, num_heads, dim // num_heads
        self.convention = convention
        self.form, self.chunk_size = form, chunk_size
        self.scale = self.head_dim ** -0.5 if convention == "vision" else 1.0 / math.sqrt(self.head_dim)
        decay = self.variant.decay

        if convention == "vision":
            self.qkv = nn.Linear(dim, 3 * dim)
            self.proj = nn.Linear(dim, dim)
            self.feature_map = _VISION_FEATURE_MAPS[self.variant.vision_feature_map]
            if decay == "per_head":
                self.a_i = nn.Parameter(torch.randn(num_heads))
            elif decay == "per_token":
                self.a_i = nn.Linear(dim, num_heads)
            if natural:
                self.a2_i = nn.Parameter(torch.randn(num_heads)) if decay == "per_head" else nn.Linear(dim, num_heads)
        else:
            self.query = nn.Linear(dim, dim)
            self.key = nn.Linear(dim, dim)
            self.value = nn.Linear(dim, dim)
            self.layer_norm = nn.LayerNorm(dim) if layer_norm_after else None
            if decay == "per_head":
                self.ai = nn.Parameter(torch.randn(num_heads))
            elif decay == "per_token":
                self.Wa_i = nn.Linear(dim, num_heads)

    @property
    def passes(self) -> int:
        """LION passes per forward call: 2 for the natural-order variants, else 1 (one `lion.SelectiveScan` each)."""
        return 2 if self.natural else 1

    @property
    def display_name(self) -> str:
        """"LION-S", or "LION-S natural" for LION-S♮."""
        return f"{self.variant.display_name} natural" if self.natural else self.variant.display_name

    def extra_repr(self) -> str:
        return (f"dim={self.dim}, num_heads={self.num_heads}, mask={self.variant.key!r}, "
                f"convention={self.convention!r}, form={self.form!r}, chunk_size={self.chunk_size}"
                + (", natural=True" if self.natural else ""))

    def log_decay(self, x: torch.Tensor, param: nn.Module | nn.Parameter | None = None) -> torch.Tensor | None:
        """log lambda: None (LIT), (H,) (D) or (B, H, L) (S), from the mixer input x (B, L, dim); param: the decay
        parameter to use (default: the first, a_i / ai / Wa_i; a2_i for the natural order's second walk).

        Computed in fp32, or fp64 in a fp64 model (so a fp64 model is exact to fp64, decays included).

        log(sigmoid(a)) and log(1 - sigmoid(z)) = logsigmoid(-z) are formed with `log_sigmoid` (forms/decay.py),
        which stays finite and accurate where lambda is tiny, in eager PyTorch and in exported graphs alike, for
        saturated gates too (|z| of 30 and more occur in trained models; there 1 - sigmoid(z) rounds to 0 in fp32,
        the public vision code's log gives -inf, and a graph's Log(Sigmoid) does too). The public MLM code's log(1 - sigmoid(z) + 1e-7) differs from it by
        log(1 + 1e-7 / lambda): below 1e-6 in log space unless lambda < 0.1.
        """
        decay = self.variant.decay
        if decay == "none":
            return None
        if param is None and self.convention == "vision":
            param = self.a_i
        elif param is None:
            param = self.ai if decay == "per_head" else self.Wa_i
        dtype = torch.float64 if x.dtype == torch.float64 else torch.float32
        if decay == "per_head":
            return log_sigmoid(param.to(dtype))
        log_decay = log_sigmoid(-param(x).to(dtype)).transpose(1, 2)         # (B, H, L)
        if self.convention == "vision":
            # the class token's own decay is never used in the public vision code: lambda_0 := 1
            log_decay = torch.cat([torch.zeros_like(log_decay[..., :1]), log_decay[..., 1:]], dim=-1)
        return log_decay

    def _heads(self, t: torch.Tensor) -> torch.Tensor:
        """(B, L, dim) -> (B, H, L, head_dim)."""
        return t.unflatten(-1, (self.num_heads, self.head_dim)).transpose(1, 2)

    def forward(self, x: torch.Tensor, attention_mask: torch.Tensor | None = None,
                grid: tuple[int, int] | None = None) -> torch.Tensor:
        """x (B, L, dim) -> (B, L, dim). attention_mask (B, L): 1 = token, 0 = padding; padded tokens are
        removed as keys (their k and v are zeroed), which is exact in every form.
        grid: (rows, cols) of patches, L = rows * cols + 1 (natural order only; default: a square grid)."""
        if self.convention == "vision":
            # (B, L, 3*dim) -> (3, B, H, L, head_dim), the public layout of the fused qkv weight
            q, k, v = self.qkv(x).unflatten(-1, (3, self.num_heads, self.head_dim)).permute(2, 0, 3, 1, 4)
            q, k = self.feature_map(q), self.feature_map(k)
        else:
            q, k, v = self._heads(self.query(x)), self._heads(self.key(x)), self._heads(self.value(x))
        q = q * self.scale
        if attention_mask is not None:
            keep = attention_mask.to(k.dtype)[:, None, :, None]
            k, v = k * keep, v * keep
        if self.natural:
            out = natural_attention(q, k, v, (self.log_decay(x), self.log_decay(x, self.a2_i)),
                                    grid or _square_grid(x.shape[1]), form=self.form, chunk_size=self.chunk_size)
        else:
            out = lion_attention(q, k, v, self.log_decay(x), form=self.form, chunk_size=self.chunk_size,
                                 normalize=self.convention == "vision", eps=1e-6)
        out = out.transpose(1, 2).flatten(2)
        if self.convention == "vision":
            return self.proj(out)
        if self.layer_norm is not None:
            out = self.layer_norm(out)
        return out


def _square_grid(tokens: int) -> tuple[int, int]:
    side = math.isqrt(tokens - 1)
    if side * side != tokens - 1:
        raise ValueError(f"natural order over {tokens} tokens needs the patch grid: pass grid=(rows, cols) "
                         "(only a square grid, rows * rows + 1 tokens, is implied)")
    return side, side


def set_form(module: nn.Module, form: str, chunk_size: int | None = None) -> nn.Module:
    """Switch every LionAttention inside `module` to `form` (and `chunk_size`, if given); returns `module`.

    The forms are exactly equivalent, so this changes cost, not results. A model's config (if it has one) is
    updated too, so a checkpoint saved afterwards records the form it was used in.
    """
    _check_form(form, 1 if chunk_size is None else chunk_size)
    for sub in module.modules():
        if isinstance(sub, LionAttention):
            sub.form = form
            if chunk_size is not None:
                sub.chunk_size = chunk_size
        config = getattr(sub, "config", None)
        if hasattr(config, "with_form"):
            sub.config = config.with_form(form, chunk_size)
    return module


__all__ = ["CONVENTIONS", "LionAttention", "set_form"]
