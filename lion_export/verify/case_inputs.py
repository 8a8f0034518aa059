"""Inputs for a parity run: the graph's input signature, generated example feeds, and user feeds from inputs.npz.

Generated feeds follow the model's interface: images (B, C, H, W) for vision models, where the token count is
L = (H/p)(W/p) + 1 with the class token; `input_ids` + `attention_mask` (B, L) for text encoders, with rows of
unequal length (padding) in every batch of two or more. A user's inputs.npz is checked against the graph's
signature before anything runs, so a wrong file gives one clear error instead of a backend's stack trace.
"""
from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np

from ..models.vision import patch_grid_for_tokens
from ..runners.feeds import InputSpec, InputsError, check_feed, graph_input_specs


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
