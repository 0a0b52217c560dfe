"""Encoders: each maps aligned face crops (B, 3, H, W) to per-AU embeddings (B, K, D).

>>> from aunce.encoders import create_encoder, list_encoders
>>> enc = create_encoder("megraph", num_aus=12, size="tiny")
"""

from aunce.encoders.registry import create_encoder, list_encoders, register_encoder

# importing the architecture modules registers them
from aunce.encoders import megraph  # noqa: E402,F401  isort: skip

__all__ = ["create_encoder", "list_encoders", "register_encoder"]
