"""Model configs: the small, JSON-safe description a model is rebuilt from (checkpoints store exactly this).

A config is a frozen dataclass of plain ints / floats / bools / strings, validated on construction, so a bad
value (from an override, a JSON file or a checkpoint) fails here with one clear ValueError instead of deep
inside a layer.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, ClassVar

from ..forms import FORMS
from ..variants import get_variant

_TYPES = {"int": int, "float": (int, float), "bool": bool, "str": str}


@dataclass(frozen=True)
class ModelConfig:
    """Fields shared by every LION model; `kind` names the model class a config builds."""

    kind: ClassVar[str] = ""

    mask: str = "lit"
    dim: int = 192
    depth: int = 12
    num_heads: int = 3
    mlp_ratio: float = 4.0
    form: str = "parallel"
    chunk_size: int = 64

    def __post_init__(self) -> None:
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            type_name = getattr(field.type, "__name__", field.type)             # "int" with or without PEP 563
            expected = _TYPES[type_name]
            if not isinstance(value, expected) or (type_name != "bool" and isinstance(value, bool)):
                raise ValueError(f"config field {field.name!r} must be of type {type_name}, got {value!r}")
        object.__setattr__(self, "mask", get_variant(self.mask).key)
        if self.form not in FORMS:
            raise ValueError(f"config field 'form' must be one of {FORMS}, got {self.form!r}")
        for name in self._positive_fields():
            if getattr(self, name) <= 0:
                raise ValueError(f"config field {name!r} must be positive, got {getattr(self, name)!r}")
        if self.dim % self.num_heads:
            raise ValueError(f"dim ({self.dim}) must be a multiple of num_heads ({self.num_heads})")

    def _positive_fields(self) -> tuple[str, ...]:
        return ("dim", "depth", "num_heads", "mlp_ratio", "chunk_size")

    @classmethod
    def field_names(cls) -> list[str]:
        return [f.name for f in dataclasses.fields(cls)]

    def to_dict(self) -> dict[str, Any]:
        """{"model": kind, field: value, ...}: JSON-safe, and enough to rebuild the model."""
        return {"model": self.kind, **dataclasses.asdict(self)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelConfig:
        """The inverse of to_dict; an unknown key or a "model" of another kind is a ValueError."""
        fields = dict(data)
        kind = fields.pop("model", cls.kind)
        if kind != cls.kind:
            raise ValueError(f"config is for a {kind!r} model, not {cls.kind!r}")
        unknown = sorted(set(fields) - set(cls.field_names()))
        if unknown:
            raise ValueError(f"unknown config field(s) {unknown} for a {cls.kind} model; "
                             f"valid: {', '.join(cls.field_names())}")
        return cls(**fields)

    def with_form(self, form: str, chunk_size: int | None = None) -> ModelConfig:
        """A copy with another form (and chunk size); used by set_form so saved configs stay truthful."""
        return dataclasses.replace(self, form=form, chunk_size=self.chunk_size if chunk_size is None else chunk_size)


__all__ = ["ModelConfig"]
