"""Optimization profiles from `build`'s options and from the file's own dynamic axes and metadata (no TensorRT:
profiles are decided before TensorRT is imported)."""
from __future__ import annotations

import onnx
import pytest

from engine_exports import MAX_LEN, TRACE_LEN, exported
from lion_export.engine.profiles import (AxisRange, ProfileError, ProfileOptions, input_profiles, parse_image_sizes,
                                         parse_range)


def _profiles(path, **options):
    return {p.name: (p.min, p.opt, p.max) for p in input_profiles(onnx.load(str(path)), ProfileOptions(**options))}


def test_option_syntax():
    assert parse_range("--batch", "1,4,16") == AxisRange(1, 4, 16)
    assert parse_range("--batch", "8") == AxisRange(8, 8, 8)
    assert parse_range("--batch", None) is None
    assert parse_image_sizes("16x32,32x32,64x96") == (AxisRange(16, 32, 64), AxisRange(32, 32, 96))
    assert parse_image_sizes("64X64") == (AxisRange.fixed(64), AxisRange.fixed(64))
    for bad in ("1,2", "a", "1,,2", "4,2,8", "0"):
        with pytest.raises(ProfileError):
            parse_range("--seq-len", bad)
    for bad in ("32", "32x", "16x16,32x32", "64x64,32x32,128x128"):
        with pytest.raises(ProfileError):
            parse_image_sizes(bad)


def test_text_defaults_come_from_the_file():
    path = exported("text", "lit", "chunked", "fp32")
    expected = ((1, 1), (2, TRACE_LEN), (8, MAX_LEN))          # batch 1 .. trace 2 .. 8; tokens 1 .. 24 .. max_len
    assert _profiles(path) == {"input_ids": expected, "attention_mask": expected}


def test_text_options_apply_to_every_input_sharing_the_axis():
    path = exported("text", "lit", "chunked", "fp32")
    got = _profiles(path, batch=AxisRange(2, 4, 6), seq_len=AxisRange(16, 32, 64))
    assert got["input_ids"] == got["attention_mask"] == ((2, 16), (4, 32), (6, 64))


def test_static_export_admits_only_its_own_sizes():
    path = exported("text", "lit", "recurrent", "fp32", static=True)
    assert _profiles(path)["input_ids"] == ((2, TRACE_LEN),) * 3
    with pytest.raises(ProfileError, match="batch is fixed at 2"):
        _profiles(path, batch=AxisRange(1, 2, 4))
    with pytest.raises(ProfileError, match="sequence length is fixed at 24"):
        _profiles(path, seq_len=AxisRange(1, 8, 24))


def test_vision_with_position_embedding_is_fixed_to_its_image():
    path = exported("vision", "lit", "chunked", "fp16", pos_embed=True)
    assert _profiles(path) == {"images": ((1, 3, 32, 32), (2, 3, 32, 32), (8, 3, 32, 32))}
    assert _profiles(path, seq_len=AxisRange.fixed(17))["images"][1] == (2, 3, 32, 32)


def test_vision_without_position_embedding_takes_image_ranges():
    path = exported("vision", "decay", "chunked", "fp16", pos_embed=False)
    assert _profiles(path)["images"] == ((1, 3, 8, 8), (2, 3, 32, 32), (8, 3, 64, 64))
    # tokens -> the near-square images of that many tokens: 5 = 2x2 patches + 1, 17 = 4x4 + 1, 65 = 8x8 + 1
    assert _profiles(path, seq_len=AxisRange(5, 17, 65))["images"] == ((1, 3, 16, 16), (2, 3, 32, 32),
                                                                      (8, 3, 64, 64))
    sizes = (AxisRange(16, 32, 48), AxisRange(8, 32, 128))
    assert _profiles(path, image_size=sizes)["images"] == ((1, 3, 16, 8), (2, 3, 32, 32), (8, 3, 48, 128))
    with pytest.raises(ProfileError, match="multiples of the patch size 8"):
        _profiles(path, image_size=(AxisRange(12, 32, 48), AxisRange(8, 32, 64)))
    with pytest.raises(ProfileError, match="do not grow"):          # 17 tokens = 4x4, 18 tokens = a 1x17 strip
        _profiles(path, seq_len=AxisRange(17, 17, 18))
    with pytest.raises(ProfileError, match="not both"):
        _profiles(path, seq_len=AxisRange.fixed(17), image_size=sizes)
