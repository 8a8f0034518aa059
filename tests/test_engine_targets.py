"""TensorRT-RTX targets: the --arch names, and the header bit mask `inspect` decodes (no TensorRT needed)."""
from __future__ import annotations

import pytest

from lion_export.engine.rtx_targets import DEFAULT_TARGETS, TARGETS, TargetError, parse_targets, targets_from_mask


def test_arch_lists():
    assert [t.name for t in parse_targets("sm_86, 89,sm120,sm_86", graph_dtype="fp32")] == ["sm_86", "sm_89",
                                                                                           "sm_120"]
    assert [t.name for t in parse_targets(None, graph_dtype="fp32")] == list(DEFAULT_TARGETS)
    assert "sm_75" not in DEFAULT_TARGETS and [t.name for t in parse_targets("sm_75", graph_dtype="fp16")] == ["sm_75"]
    with pytest.raises(TargetError, match="builds only fp16 graphs"):
        parse_targets("sm_75", graph_dtype="fp32")
    with pytest.raises(TargetError, match="sm_75, sm_80, sm_86, sm_89, sm_120, sm_121"):
        parse_targets("sm_87", graph_dtype="fp16")
    with pytest.raises(TargetError, match="at least one target"):
        parse_targets(" , ", graph_dtype="fp32")


def test_header_bits_round_trip():
    """Bits as observed in real TensorRT-RTX 1.7 engines: SM80|SM89|SM121 = 0x2a; 0x40 is no known target."""
    known, rest = targets_from_mask(0x2A | 0x40)
    assert [t.name for t in known] == ["sm_80", "sm_89", "sm_121"] and rest == 0x40
    assert len({t.header_bit for t in TARGETS.values()}) == len(TARGETS)
