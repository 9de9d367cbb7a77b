"""Build a SAM of a given type and load its checkpoint: one code path for every model type.

``vit_h``, ``vit_l`` and ``vit_b`` are segment-anything's own builders. ``vit_tiny`` is a
test-only type (ViT encoder with embed_dim 64 and depth 2, same prompt encoder and mask decoder)
built with segment-anything's own ``_build_sam``, so tests and the demo run the real SAM code
without multi-gigabyte checkpoints. It is no pretrained model: its masks are not meaningful.
"""

from __future__ import annotations

from pathlib import Path


def build_sam_vit_tiny(checkpoint=None):
    from segment_anything.build_sam import _build_sam

    return _build_sam(encoder_embed_dim=64, encoder_depth=2, encoder_num_heads=2,
                      encoder_global_attn_indexes=[1], checkpoint=checkpoint)


def model_types() -> dict:
    from segment_anything import sam_model_registry

    return {**{k: v for k, v in sam_model_registry.items() if k != "default"},
            "vit_tiny": build_sam_vit_tiny}


def load_sam(model_type: str, checkpoint: Path | None, device: str):
    """The model in eval mode on ``device``; the checkpoint is read onto the CPU first, so a file
    saved from a GPU loads anywhere.
    """
    import torch

    builders = model_types()
    if model_type not in builders:
        raise ValueError(f"unknown SAM model_type {model_type!r} (known: {', '.join(sorted(builders))})")
    sam = builders[model_type]()
    if checkpoint is not None:
        state = torch.load(checkpoint, map_location="cpu", weights_only=True)
        sam.load_state_dict(state)
    return sam.to(device).eval()
