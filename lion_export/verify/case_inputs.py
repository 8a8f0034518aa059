"""Inputs for a parity run: the graph's input signature, generated example feeds, and user feeds from inputs.npz.

Generated feeds follow the model's interface: images (B, C, H, W) for vision models, where the token count is
L = (H/p)(W/p) + 1 with the class token; `input_ids` + `attention_mask` (B, L) for text encoders, with rows of
unequal length (padding) in every batch of two or more. A user's inputs.npz is checked against the graph's
signature before anything runs, so a wrong file gives one clear error instead of a backend's stack trace.
"""
from __future__ import annotations

import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..models.vision import patch_grid_for_tokens


class InputsError(ValueError):
    """An inputs.npz that cannot feed the graph (unreadable, wrong names, wrong ranks / shapes / dtypes)."""


@dataclass(frozen=True)
class InputSpec:
    """One graph input: name, numpy dtype, shape (an int per static axis, a name or None per dynamic one)."""

    name: str
    dtype: np.dtype
    shape: tuple[int | str | None, ...]

    def describe(self) -> str:
        dims = ", ".join("?" if d is None else str(d) for d in self.shape)
        return f"{self.name}: {self.dtype.name}[{dims}]"


def graph_input_specs(model) -> list[InputSpec]:
    """The input signature of an onnx.ModelProto (initialisers listed as inputs by old exporters are skipped)."""
    from onnx.helper import tensor_dtype_to_np_dtype

    initialisers = {i.name for i in model.graph.initializer}
    specs = []
    for value in model.graph.input:
        if value.name in initialisers:
            continue
        tensor = value.type.tensor_type
        dims = tuple(d.dim_value if d.HasField("dim_value") else (d.dim_param or None) for d in tensor.shape.dim)
        specs.append(InputSpec(value.name, np.dtype(tensor_dtype_to_np_dtype(tensor.elem_type)), dims))
    return specs


def image_size_for_tokens(tokens: int, patch: int) -> tuple[int, int]:
    """(H, W) with (H/p)(W/p) + 1 == tokens, as square as possible (every L >= 2 is reachable with W >= H)."""
    rows, cols = patch_grid_for_tokens(tokens)
    return rows * patch, cols * patch


def tokens_for_image(height: int, width: int, patch: int) -> int:
    """L = (H/p)(W/p) + 1, the class token included."""
    return (height // patch) * (width // patch) + 1


def padded_attention_mask(batch: int, seq_len: int) -> np.ndarray:
    """(B, L) int64 mask: row 0 full, the other rows shorter by evenly spread amounts (each keeps >= 1 token)."""
    mask = np.zeros((batch, seq_len), dtype=np.int64)
    for row in range(batch):
        keep = seq_len - (row * (seq_len - 1)) // max(batch, 2)
        mask[row, :keep] = 1
    return mask


def make_image_feed(spec: InputSpec, batch: int, height: int, width: int,
                    rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Standard-normal images (B, C, H, W) in the input's dtype."""
    channels = spec.shape[1] if isinstance(spec.shape[1], int) else 3
    return {spec.name: rng.standard_normal((batch, channels, height, width)).astype(spec.dtype)}


def make_text_feed(ids: InputSpec, mask: InputSpec | None, batch: int, seq_len: int, vocab_size: int,
                   rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Random token ids, with a padded attention mask when the graph takes one (padded ids set to 0)."""
    feed = {ids.name: rng.integers(0, vocab_size, size=(batch, seq_len)).astype(ids.dtype)}
    if mask is not None:
        attention = padded_attention_mask(batch, seq_len)
        feed[ids.name] = feed[ids.name] * attention.astype(ids.dtype)
        feed[mask.name] = attention.astype(mask.dtype)
    return feed


def check_feed(feed: dict[str, np.ndarray], specs: list[InputSpec], source: str) -> dict[str, np.ndarray]:
    """Check names, ranks, static axes, shared dynamic axes and dtype kinds; return the feed in the graph's dtypes."""
    expected = {s.name for s in specs}
    missing, extra = sorted(expected - feed.keys()), sorted(feed.keys() - expected)
    if missing or extra:
        raise InputsError(f"{source}: input names {sorted(feed)} do not match the graph's {sorted(expected)}"
                          + (f" (missing {missing})" if missing else "") + (f" (unexpected {extra})" if extra else ""))
    sizes: dict[str, tuple[int, str]] = {}
    checked = {}
    for spec in specs:
        array = np.asarray(feed[spec.name])
        if array.ndim != len(spec.shape):
            raise InputsError(f"{source}: {spec.name!r} has shape {array.shape}, the graph expects rank "
                              f"{len(spec.shape)} ({spec.describe()})")
        for axis, (dim, size) in enumerate(zip(spec.shape, array.shape)):
            if isinstance(dim, int) and dim != size:
                raise InputsError(f"{source}: {spec.name!r} has shape {array.shape}, the graph expects "
                                  f"{spec.describe()} (axis {axis} must be {dim})")
            if isinstance(dim, str):
                seen = sizes.setdefault(dim, (size, spec.name))
                if seen[0] != size:
                    raise InputsError(f"{source}: axis {dim!r} is {seen[0]} in {seen[1]!r} but {size} in "
                                      f"{spec.name!r}")
        # floats to floats (the graph's own precision) and integers to integers only: integer images given to a
        # float model are a mistake (unscaled pixels, the wrong array), not something to cast silently
        if (array.dtype.kind == "f") != (spec.dtype.kind == "f") or array.dtype.kind not in "fiub":
            raise InputsError(f"{source}: {spec.name!r} is {array.dtype.name}, the graph expects {spec.dtype.name}"
                              + (" (integers are not cast to a float input)" if spec.dtype.kind == "f" else ""))
        checked[spec.name] = array.astype(spec.dtype, copy=False)
    return checked


CASE_SEPARATOR = "/"      # saved cases: "case0/input_ids", "case1/input_ids", ...
ZIP_MAGIC = b"PK"          # how every .npz (a zip archive) begins


def _read_npz(path: Path) -> dict[str, np.ndarray]:
    if not path.is_file():
        raise InputsError(f"inputs file {str(path)!r} does not exist")
    try:
        with open(path, "rb") as handle:
            magic = handle.read(6)
        if magic.startswith(ZIP_MAGIC):
            with np.load(path, allow_pickle=False) as npz:
                return {name: npz[name] for name in npz.files}
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as exc:
        raise InputsError(f"{path}: not a readable .npz file ({' '.join(str(exc).split())})") from None
    # np.load would take anything else for a pickle and blame "pickled (object) data"
    what = "a single .npy array" if magic == b"\x93NUMPY" else "not an .npz file (no zip archive, as np.savez writes)"
    raise InputsError(f"{path}: {what}; give one array per graph input, named like the input")


def split_cases(arrays: dict[str, np.ndarray]) -> dict[str, dict[str, np.ndarray]]:
    """{"case0/x": ..} -> {"case0": {"x": ..}}; names without a case prefix form one case named ""."""
    cases: dict[str, dict[str, np.ndarray]] = {}
    for key, array in arrays.items():
        case, _, name = key.rpartition(CASE_SEPARATOR)
        cases.setdefault(case, {})[name] = array
    return cases


def load_input_cases(path: str | Path, specs: list[InputSpec] | None) -> list[tuple[str, dict[str, np.ndarray]]]:
    """Read an .npz of inputs: one array per graph input (one case), or several cases saved by --save-inputs
    ("case0/input_ids", ...). Each case is checked against `specs` (None: an engine pair, nothing to check).
    Returns (label, feed) pairs labelled by the file's own name."""
    path = Path(path)
    cases = split_cases(_read_npz(path))
    labelled = []
    for case, feed in cases.items():
        label = path.name if not case else f"{path.name}[{case}]"
        labelled.append((label, feed if specs is None else check_feed(feed, specs, label)))
    return labelled


def load_inputs(path: str | Path, specs: list[InputSpec]) -> dict[str, np.ndarray]:
    """Read inputs.npz (one array per graph input, named like the input) and check it against `specs`."""
    path = Path(path)
    return check_feed(_read_npz(path), specs, str(path))


def save_arrays(path: str | Path, groups: dict[str, dict[str, np.ndarray]]) -> Path:
    """Write {"case0": {"input_ids": ..}, ..} as one .npz ("case0/input_ids", ...), atomically."""
    from ..atomic import atomic_output

    path = Path(path)
    flat = {f"{group}{CASE_SEPARATOR}{name}": array for group, arrays in groups.items()
            for name, array in arrays.items()}
    with atomic_output(path) as tmp:
        with open(tmp, "wb") as handle:
            np.savez(handle, **flat)
    return path


__all__ = ["InputSpec", "InputsError", "graph_input_specs", "image_size_for_tokens", "tokens_for_image",
           "padded_attention_mask", "make_image_feed", "make_text_feed", "check_feed", "load_inputs",
           "load_input_cases", "save_arrays", "split_cases"]
