"""Models whose decays span a wide range: the stress case for parity checks.

Freshly initialised LION models have decays bunched near one value (sigmoid of small weights), so every token
weighs about the same and an error in the decay path hardly shows. Trained models do not look like that: some
heads forget within a token (lambda ~ 0.01), others keep context for hundreds (lambda ~ 0.99). `spread_decays`
redraws the decay parameters so the decays of every mixer span [low, high]: LION-D gets one decay per head spread
evenly over the range; LION-S gets per-head biases spread over it and input weights large enough that the
per-token decays spread too. LION-LIT has no decay and is left as it is.
"""
from __future__ import annotations

import math

import torch
from torch import nn

from ..models import LionAttention


def _logit(p: torch.Tensor) -> torch.Tensor:
    return torch.log(p) - torch.log1p(-p)


def spread_decays(model: nn.Module, low: float = 0.01, high: float = 0.99, seed: int = 0) -> nn.Module:
    """Redraw every mixer's decay parameters in place so its decays lambda span [low, high]; returns `model`."""
    if not 0.0 < low < high < 1.0:
        raise ValueError(f"need 0 < low < high < 1, got low={low}, high={high}")
    generator = torch.Generator().manual_seed(seed)
    for mixer in (m for m in model.modules() if isinstance(m, LionAttention)):
        decay, heads = mixer.variant.decay, mixer.num_heads
        targets = torch.linspace(low, high, heads) if heads > 1 else torch.tensor([math.sqrt(low * high)])
        with torch.no_grad():
            if decay == "per_head":           # lambda = sigmoid(a)
                param = mixer.a_i if mixer.convention == "vision" else mixer.ai
                param.copy_(_logit(targets).to(param.dtype))
            elif decay == "per_token":        # lambda = 1 - sigmoid(W x + b)
                linear = mixer.a_i if mixer.convention == "vision" else mixer.Wa_i
                linear.bias.copy_(_logit(1.0 - targets).to(linear.bias.dtype))
                # inputs are ~unit-scale (LayerNorm'd): weights of norm ~2 per head move each token's logit by
                # a few units around its head's centre, so the decays reach both ends of the range
                weight = torch.randn(linear.weight.shape, generator=generator)
                linear.weight.copy_((2.0 * weight / weight.norm(dim=1, keepdim=True)).to(linear.weight.dtype))
    return model


__all__ = ["spread_decays"]
