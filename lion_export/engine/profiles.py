"""Optimization profiles (min / opt / max shape per graph input) from `build`'s options and from the file itself.

A LION export's dynamic axes are named (lion_export/export/signature.py): `batch` and `seq_len` for text encoders
(input_ids and attention_mask share them), `batch` plus image height / width (multiples of the patch size) for
vision models without a position embedding, and `batch` only for those with one. Each axis gets one range, so
inputs sharing an axis always agree. Defaults come from the file's metadata: batch 1 .. trace batch .. max(8, trace
batch); tokens 1 .. trace length .. max_len; images one patch .. the traced image .. twice the model's image size.
A range the model cannot take (beyond max_len, an image that is not a multiple of the patch, a length fixed by a
position embedding or by a static export) is a ProfileError naming the limit, before anything is built.
"""
from __future__ import annotations

from dataclasses import dataclass

DEFAULT_MAX_BATCH = 8


class ProfileError(ValueError):
    """A --batch / --seq-len / --image-size the option syntax or the model does not allow."""


@dataclass(frozen=True)
class AxisRange:
    """min <= opt <= max of one axis."""

    min: int
    opt: int
    max: int

    @classmethod
    def fixed(cls, size: int) -> "AxisRange":
        return cls(size, size, size)

    def values(self) -> tuple[int, int, int]:
        return self.min, self.opt, self.max

    def text(self) -> str:
        return str(self.min) if self.min == self.max else f"{self.min},{self.opt},{self.max}"


@dataclass(frozen=True)
class InputProfile:
    """The shapes one graph input is built for."""

    name: str
    min: tuple[int, ...]
    opt: tuple[int, ...]
    max: tuple[int, ...]

    def to_dict(self) -> dict:
        return {"min": list(self.min), "opt": list(self.opt), "max": list(self.max)}


def _ints(option: str, text: str, parts: list[str]) -> list[int]:
    try:
        values = [int(part) for part in parts]
    except ValueError:
        values = []
    if len(values) not in (1, 3):
        raise ProfileError(f"{option} takes N or MIN,OPT,MAX (integers), got {text!r}")
    return values


def _ordered(option: str, text: str, values: list[int]) -> AxisRange:
    low, opt, high = values if len(values) == 3 else values * 3
    if low < 1:
        raise ProfileError(f"{option} sizes must be >= 1, got {text!r}")
    if not low <= opt <= high:
        raise ProfileError(f"{option} MIN,OPT,MAX needs min <= opt <= max, got {text!r}")
    return AxisRange(low, opt, high)


def parse_range(option: str, text: str | None) -> AxisRange | None:
    """`N` (min = opt = max) or `MIN,OPT,MAX`, as given to --batch / --seq-len; None when the option is absent."""
    if text is None:
        return None
    return _ordered(option, text, _ints(option, text, text.split(",")))


def parse_image_sizes(text: str | None) -> tuple[AxisRange, AxisRange] | None:
    """--image-size `HxW` or `HxW,HxW,HxW` (min, opt, max) -> (height range, width range)."""
    if text is None:
        return None
    usage = f"--image-size takes HxW or MINHxMINW,OPTHxOPTW,MAXHxMAXW, got {text!r}"
    sizes = []
    for part in text.split(","):
        try:
            height, width = (int(side) for side in part.lower().split("x"))
        except ValueError:
            raise ProfileError(usage) from None
        sizes.append((height, width))
    if len(sizes) not in (1, 3):
        raise ProfileError(usage)
    return (_ordered("--image-size (height)", text, [s[0] for s in sizes]),
            _ordered("--image-size (width)", text, [s[1] for s in sizes]))


@dataclass(frozen=True)
class ProfileOptions:
    """What the user asked for; None = the default read from the file."""

    batch: AxisRange | None = None
    seq_len: AxisRange | None = None
    image_size: tuple[AxisRange, AxisRange] | None = None


def _axis(asked: AxisRange | None, default: AxisRange, dim: int | str | None, what: str) -> AxisRange:
    """The range of one axis: a static axis in the file admits only its own size."""
    if isinstance(dim, int):
        if asked is not None and asked != AxisRange.fixed(dim):
            raise ProfileError(f"this file's {what} is fixed at {dim} (a static export), got {asked.text()}")
        return AxisRange.fixed(dim)
    return default if asked is None else asked


def _text_axes(config: dict, meta: dict, options: ProfileOptions, batch: AxisRange) -> dict[int, AxisRange]:
    if options.image_size is not None:
        raise ProfileError("--image-size is for vision models; this file is a text encoder (use --seq-len)")
    max_len = int(config["max_len"])
    default = AxisRange(1, min(int(meta.get("trace_seq_len", max_len)), max_len), max_len)
    seq = default if options.seq_len is None else options.seq_len
    if seq.max > max_len:
        raise ProfileError(f"--seq-len {seq.text()}: this model takes at most max_len={max_len} tokens")
    return {0: batch, 1: seq}


def _vision_axes(config: dict, meta: dict, options: ProfileOptions, batch: AxisRange,
                 dims: tuple) -> dict[int, AxisRange]:
    from ..verify.case_inputs import image_size_for_tokens

    patch, size = int(config["patch_size"]), int(config["img_size"])
    if options.seq_len is not None and options.image_size is not None:
        raise ProfileError("give --seq-len (tokens) or --image-size, not both")
    static = isinstance(dims[2], int) and isinstance(dims[3], int)
    if static:
        height, width = dims[2], dims[3]
        tokens = (height // patch) * (width // patch) + 1
        why = "its learnt position embedding" if config.get("pos_embed") else "a static export"
        if options.seq_len is not None and options.seq_len != AxisRange.fixed(tokens):
            raise ProfileError(f"--seq-len {options.seq_len.text()}: this model's length is fixed at {tokens} tokens "
                               f"({height}x{width} images) by {why}")
        if options.image_size is not None and options.image_size != (AxisRange.fixed(height), AxisRange.fixed(width)):
            raise ProfileError(f"--image-size: this model takes only {height}x{width} images ({why})")
        return {0: batch, 2: AxisRange.fixed(height), 3: AxisRange.fixed(width)}
    if options.image_size is not None:
        rows, cols = options.image_size
    elif options.seq_len is not None:
        if options.seq_len.min < 2:
            raise ProfileError(f"--seq-len {options.seq_len.text()}: a vision model needs at least 2 tokens "
                               "(one patch and the class token)")
        shapes = [image_size_for_tokens(n, patch) for n in options.seq_len.values()]
        rows, cols = (AxisRange(*(s[i] for s in shapes)) for i in (0, 1))
        if not (rows.min <= rows.opt <= rows.max and cols.min <= cols.opt <= cols.max):
            raise ProfileError(f"--seq-len {options.seq_len.text()} gives images {shapes} whose sides do not grow "
                               "from min to max; give --image-size HxW,HxW,HxW instead")
    else:
        traced = image_size_for_tokens(int(meta.get("trace_seq_len", config.get("num_patches", 1) + 1)), patch)
        rows = AxisRange(patch, traced[0], 2 * max(size, traced[0]))
        cols = AxisRange(patch, traced[1], 2 * max(size, traced[1]))
    for side in (rows, cols):
        if any(v % patch for v in side.values()):
            raise ProfileError(f"image sides must be multiples of the patch size {patch}, got "
                               f"{rows.text()} x {cols.text()}")
    return {0: batch, 2: rows, 3: cols}


def input_profiles(model, options: ProfileOptions) -> list[InputProfile]:
    """One InputProfile per graph input of a lion-export ONNX model (an onnx.ModelProto), from `options` and the
    file's metadata (`LionFile` checks that it has some)."""
    from ..graph_summary import metadata
    from ..runners.feeds import graph_input_specs

    meta = metadata(model)
    config = meta["model_config"]
    specs = graph_input_specs(model)
    first = specs[0].shape
    trace_batch = int(meta.get("trace_batch", 1))
    batch = _axis(options.batch, AxisRange(1, trace_batch, max(DEFAULT_MAX_BATCH, trace_batch)), first[0], "batch")
    if config["model"] == "text":
        axes = _text_axes(config, meta, options, batch)
        axes[1] = _axis(None if options.seq_len is None else axes[1], axes[1], first[1], "sequence length")
    else:
        axes = _vision_axes(config, meta, options, batch, first)
    profiles = []
    for spec in specs:
        shapes = []
        for which in range(3):
            shapes.append(tuple(axes[axis].values()[which] if axis in axes else int(dim)
                                for axis, dim in enumerate(spec.shape)))
        profiles.append(InputProfile(spec.name, *shapes))
    return profiles


__all__ = ["AxisRange", "InputProfile", "ProfileError", "ProfileOptions", "DEFAULT_MAX_BATCH", "parse_range",
           "parse_image_sizes", "input_profiles"]
