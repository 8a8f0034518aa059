"""LION-D♮ / LION-S♮ ("natural" order): two snake walks over the patch grid, one decay each, masks averaged.

The paper's best vision variants (docs/maths.md, "The natural-order variants" section): the patches are put in two
snake orders of the rows x cols grid, the class token first in both:
  walk 1: rows in turn, even rows left to right, odd rows right to left;
  walk 2: the same on the transposed grid: columns in turn, even columns top-down, odd columns bottom-up.
Each walk has its own decay (a_i for walk 1, a2_i for walk 2), the LION mask M_o is built in walk o's order and
mapped back, and the two are averaged BEFORE the row normalisation: M = (M_1 + M_2) / 2, so

    y = (num_1 + num_2) / (den_1 + den_2 + 2 eps)

with num_o, den_o the unnormalised numerator and row sum of one LION pass over the tokens in walk o's order. Each
pass is an ordinary `lion_attention` call, so every form (and backend, and the exporter's `lion.SelectiveScan`
node) serves it unchanged: the denominator comes out of the same call as the numerator by giving v one more
column of ones (the unnormalised output of that column is exactly the row sum). The walks and their inverses are
index tensors computed from the grid with arithmetic only, so under torch.export they follow symbolic image sizes
and become Gather nodes in the graph.
"""
from __future__ import annotations

from collections.abc import Sequence

import torch

from ..forms import lion_attention


def snake_walks(rows: int, cols: int, device: torch.device | None = None
                ) -> tuple[tuple[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]:
    """((walk_1, place_1), (walk_2, place_2)) for a rows x cols patch grid plus the class token, each (L,) int64.

    walk_o[p] is the token at position p of walk o (gather a natural-order sequence by it to get walk order);
    place_o[t] is the position of token t in walk o (gather a walk-order sequence by it to get natural order).
    Token 0 is the class token (position 0 in both); patch (r, c) is token 1 + r * cols + c.
    """
    # built by broadcasting (rows x cols index grids, flattened) rather than by dividing a flat index: under
    # torch.export the sides are symbolic, and ONNX exporters cannot take the remainder by a symbolic scalar
    row = torch.arange(rows, device=device)[:, None]
    col = torch.arange(cols, device=device)[None, :]
    row_of_col, col_of_col = row.transpose(0, 1), col.transpose(0, 1)    # (1, rows) and (cols, 1)
    # walk 1 (by rows) is its own inverse: position r*cols + c holds patch (r, c or cols-1-c), and vice versa
    by_rows = (row * cols + torch.where(row % 2 == 0, col, cols - 1 - col)).reshape(-1)
    # walk 2 (by columns): position c*rows + s holds patch (s or rows-1-s, c) ...
    walk_cols = (torch.where(col_of_col % 2 == 0, row_of_col, rows - 1 - row_of_col) * cols + col_of_col).reshape(-1)
    # ... so patch (r, c) sits at position c*rows + (r or rows-1-r)
    place_cols = (col * rows + torch.where(col % 2 == 0, row, rows - 1 - row)).reshape(-1)
    zero = by_rows.new_zeros(1)

    def with_class_token(order: torch.Tensor) -> torch.Tensor:
        return torch.cat([zero, order + 1])

    rows_walk = with_class_token(by_rows)
    return (rows_walk, rows_walk), (with_class_token(walk_cols), with_class_token(place_cols))


def natural_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
                      log_decays: Sequence[torch.Tensor], grid: tuple[int, int], *, form: str = "parallel",
                      chunk_size: int = 64, eps: float = 1e-6, backend: str = "auto") -> torch.Tensor:
    """Normalised LION attention with the averaged two-walk mask; q, k (B, H, L, dk), v (B, H, L, dv) in natural
    token order (class token first, then the grid row-major), L = rows * cols + 1.

    log_decays: one per walk, (H,) (LION-D) or (B, H, L) in natural token order (LION-S). Returns (B, H, L, dv)
    in q's dtype; the two passes compute in fp32 (fp64 for fp64 inputs).
    """
    rows, cols = grid
    if len(log_decays) != 2:
        raise ValueError(f"natural order needs one log decay per walk (2), got {len(log_decays)}")
    if q.dim() != 4 or q.shape[2] != rows * cols + 1:
        raise ValueError(f"natural order over a {rows}x{cols} patch grid needs {rows * cols + 1} tokens "
                         f"(B, H, L, d), got {tuple(q.shape)}")
    compute = torch.float64 if q.dtype == torch.float64 else torch.float32
    qf, kf = q.to(compute), k.to(compute)
    v_ones = torch.cat([v.to(compute), torch.ones_like(v[..., :1], dtype=compute)], dim=-1)
    total = None
    for (walk, place), log_decay in zip(snake_walks(rows, cols, q.device), log_decays):
        a = log_decay if log_decay.dim() == 1 else log_decay.index_select(-1, walk)
        out = lion_attention(qf.index_select(2, walk), kf.index_select(2, walk), v_ones.index_select(2, walk), a,
                             form=form, chunk_size=chunk_size, normalize=False, backend=backend)
        out = out.index_select(2, place)
        total = out if total is None else total + out
    return (total[..., :-1] / (total[..., -1:] + 2 * eps)).to(q.dtype)


__all__ = ["snake_walks", "natural_attention"]
