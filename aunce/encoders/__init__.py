"""Encoders: each maps aligned face crops (B, 3, H, W) to per-AU embeddings (B, K, D).

>>> from aunce.encoders import create_encoder, list_encoders
>>> enc = create_encoder("megraph", num_aus=12, size="tiny")
>>> z = enc(images)                           # (B, K, D)
>>> roi = create_encoder("roi", num_aus=12, size="tiny")
>>> z = roi(images, landmarks)                # roi.needs_landmarks: (B, 49, 2) in crop pixels
"""

from aunce.encoders.registry import create_encoder, list_encoders, register_encoder

# importing the architecture modules registers them, in Table 8's order
from aunce.encoders import resnet50, roi, jaanet, megraph  # noqa: E402,F401  isort: skip

__all__ = ["create_encoder", "list_encoders", "register_encoder"]
