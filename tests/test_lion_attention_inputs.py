"""lion_attention refuses inputs that would silently give NaN (eager mode only; tracing pays nothing)."""
from __future__ import annotations

import pytest
import torch

from lion_export import lion_attention


@pytest.mark.parametrize("shape", [(2,), (1, 2, 5)])
def test_a_positive_log_decay_is_refused_with_a_hint(shape):
    torch.manual_seed(0)
    q, k, v = (torch.rand(1, 2, 5, 4) for _ in range(3))
    decay = torch.rand(shape) * 0.9 + 0.05                      # lambda itself, the easy mistake
    with pytest.raises(ValueError, match=r"log_decay must be <= 0 .* pass log\(lambda\), not lambda"):
        lion_attention(q, k, v, decay)
    out = lion_attention(q, k, v, decay.log())                  # what was meant
    assert torch.isfinite(out).all()


def test_zero_log_decay_is_allowed():
    q = torch.rand(1, 2, 5, 4)
    assert torch.allclose(lion_attention(q, q, q, torch.zeros(2)), lion_attention(q, q, q, None), atol=1e-6)


def test_the_check_is_skipped_while_tracing():
    """A traced graph must not bake in a data-dependent check (torch.jit.trace would warn or fail on it)."""
    q = torch.rand(1, 2, 5, 4)
    traced = torch.jit.trace(lambda a: lion_attention(q, q, q, a), (torch.full((2,), -0.1),), check_trace=False)
    assert torch.allclose(traced(torch.full((2,), -0.2)), lion_attention(q, q, q, torch.full((2,), -0.2)))
