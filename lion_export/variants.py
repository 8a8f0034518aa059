"""The registry of supported LION variants: the one list the models, the CLI, the exporter and the tests read.

A variant is fixed by its decay (docs/maths.md, "The three variants"): none (LION-LIT), one learnt
scalar per head (LION-D) or one value per token and head (LION-S). Adding a variant means adding a row here and
teaching `LionAttention` its decay; nothing else may keep its own list. The natural-order models (LION-D♮,
LION-S♮) are LION-D / LION-S run over two token orders, so they are a model option (`natural=True`), not a row.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Variant:
    """Facts about one variant.

    decay: "none" (lambda = 1), "per_head" (log_decay of shape (H,)) or "per_token" (shape (B, H, L)).
    vision_feature_map: phi on q and k in the vision convention, "elu_plus_one" or "shifted_silu"
    (silu(x) + 0.5, then L2-normalised over the head dim); the MLM convention always uses the identity.
    """

    key: str
    display_name: str
    decay: str
    vision_feature_map: str


VARIANTS: dict[str, Variant] = {
    v.key: v for v in (
        Variant("lit", "LION-LIT", decay="none", vision_feature_map="elu_plus_one"),
        Variant("decay", "LION-D", decay="per_head", vision_feature_map="shifted_silu"),
        Variant("selective", "LION-S", decay="per_token", vision_feature_map="shifted_silu"),
    )
}


def get_variant(name: str) -> Variant:
    """Look a variant up by key ("selective") or display name ("LION-S", any case)."""
    if name in VARIANTS:
        return VARIANTS[name]
    for variant in VARIANTS.values():
        if isinstance(name, str) and name.lower() == variant.display_name.lower():
            return variant
    valid = ", ".join(f"{v.key!r} ({v.display_name})" for v in VARIANTS.values())
    raise ValueError(f"unknown LION variant {name!r}; valid: {valid}")


__all__ = ["Variant", "VARIANTS", "get_variant"]
