"""Write the bundled example checkpoints (small, randomly initialised LION models) into examples/.

They exist so that the README's first command exports and verifies a real model on any machine with no download:
    lion_s_vit.pt      LION-S vision transformer, 64 px images, patch 16 (17 tokens), no position embedding (so any
                       image size works: 64x80 px gives 21 tokens), dim 64, 2 blocks, 4 heads
    lion_d_encoder.pt  LION-D text encoder (MLM convention), vocab 1000, dim 64, 2 blocks, 4 heads

Regenerate with `python examples/make_examples.py` (seeded: the files come out the same each time).
"""
from __future__ import annotations

from pathlib import Path

import torch

from lion_export import create_model, save_checkpoint

HERE = Path(__file__).parent
EXAMPLES = {
    "lion_s_vit.pt": ("vit-tiny", {"mask": "selective", "img_size": 64, "pos_embed": False, "dim": 64, "depth": 2, "num_heads": 4,
                                   "num_classes": 10}),
    "lion_d_encoder.pt": ("encoder-tiny", {"mask": "decay", "vocab_size": 1000, "max_len": 512, "dim": 64,
                                           "num_heads": 4}),
}


def main() -> None:
    for name, (preset, overrides) in EXAMPLES.items():
        torch.manual_seed(0)
        model = create_model(preset, **overrides)
        save_checkpoint(model, HERE / name)
        count = sum(p.numel() for p in model.parameters())
        print(f"wrote {HERE / name} ({preset}, {count:,} parameters)")


if __name__ == "__main__":
    main()
