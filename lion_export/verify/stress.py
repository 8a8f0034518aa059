"""Models whose decays span a wide range, or whose gates saturate: the stress cases for parity checks.

Freshly initialised LION models have decays bunched near one value (sigmoid of small weights), so every token
weighs about the same and an error in the decay path hardly shows. Trained models do not look like that: some
heads forget within a token (lambda ~ 0.01), others keep context for hundreds (lambda ~ 0.99). `spread_decays`
redraws the decay parameters so the decays of every mixer span [low, high]: LION-D gets one decay per head spread
evenly over the range; LION-S gets per-head biases spread over it and input weights large enough that the
per-token decays spread too. LION-LIT has no decay and is left as it is.

`saturate_gates` goes further, to what trained LION-S models also hold: gate pre-activations of |z| = 30 and
more, where fp32's sigmoid is exactly 0 or 1 and only a log-sigmoid formed with care stays finite (docs/maths.md,
"Why the numbers stay exact").
"""
from __future__ import annotations

import math

import torch
from torch import nn

from ..models import LionAttention


def _logit(p: torch.Tensor) -> torch.Tensor:
    return torch.log(p) - torch.log1p(-p)


def _gates(mixer: LionAttention) -> list[nn.Module | nn.Parameter]:
    """The decay parameters of one mixer: a_i / ai (a per-head Parameter) or a_i / Wa_i (a Linear), and a2_i."""
    first = mixer.a_i if mixer.convention == "vision" else (mixer.ai if mixer.variant.decay == "per_head"
                                                            else mixer.Wa_i)
    return [first, mixer.a2_i] if mixer.natural else [first]


def _mixers_with_decay(model: nn.Module) -> list[LionAttention]:
    return [m for m in model.modules() if isinstance(m, LionAttention) and m.variant.decay != "none"]


def spread_decays(model: nn.Module, low: float = 0.01, high: float = 0.99, seed: int = 0) -> nn.Module:
    """Redraw every mixer's decay parameters in place so its decays lambda span [low, high]; returns `model`."""
    if not 0.0 < low < high < 1.0:
        raise ValueError(f"need 0 < low < high < 1, got low={low}, high={high}")
    generator = torch.Generator().manual_seed(seed)
    for mixer in _mixers_with_decay(model):
        heads = mixer.num_heads
        targets = torch.linspace(low, high, heads) if heads > 1 else torch.tensor([math.sqrt(low * high)])
        with torch.no_grad():
            for gate in _gates(mixer):
                if isinstance(gate, nn.Parameter):        # LION-D: lambda = sigmoid(a)
                    gate.copy_(_logit(targets).to(gate.dtype))
                    continue
                # LION-S: lambda = 1 - sigmoid(W x + b). Inputs are ~unit-scale (LayerNorm'd): weights of norm ~2
                # per head move each token's logit by a few units around its head's centre, so the decays reach
                # both ends of the range
                gate.bias.copy_(_logit(1.0 - targets).to(gate.bias.dtype))
                weight = torch.randn(gate.weight.shape, generator=generator)
                gate.weight.copy_((2.0 * weight / weight.norm(dim=1, keepdim=True)).to(gate.weight.dtype))
    return model


def saturate_gates(model: nn.Module, bound: float = 60.0, seed: int = 0) -> nn.Module:
    """Redraw every mixer's gate parameters in place so the gate pre-activations reach about +-`bound`; returns
    `model`. LION-D: the per-head gates spread evenly over [-bound, bound]. LION-S: per-head biases spread over
    [-bound/2, bound/2] and input weights of norm bound/4 per head, so on LayerNorm'd inputs each token's gate
    moves by tens around its head's centre and both tails saturate (lambda from e^-bound to 1 - e^-bound)."""
    if not bound > 0.0:
        raise ValueError(f"need bound > 0, got {bound}")
    generator = torch.Generator().manual_seed(seed)
    for mixer in _mixers_with_decay(model):
        with torch.no_grad():
            for gate in _gates(mixer):
                if isinstance(gate, nn.Parameter):
                    gate.copy_(torch.linspace(-bound, bound, mixer.num_heads).to(gate.dtype))
                    continue
                gate.bias.copy_(torch.linspace(-bound / 2, bound / 2, mixer.num_heads).to(gate.bias.dtype))
                weight = torch.randn(gate.weight.shape, generator=generator)
                gate.weight.copy_((bound / 4 * weight / weight.norm(dim=1, keepdim=True)).to(gate.weight.dtype))
    return model


__all__ = ["spread_decays", "saturate_gates"]
