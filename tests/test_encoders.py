import pytest
import torch

from aunce import AunceError
from aunce.encoders import create_encoder, list_encoders


def test_registry():
    assert "megraph" in list_encoders()
    with pytest.raises(ValueError, match="unknown encoder 'vit'.*known: .*megraph"):
        create_encoder("vit", 12)
    with pytest.raises(ValueError, match="unknown encoder size"):
        create_encoder("megraph", 12, size="huge")


@pytest.mark.parametrize("num_aus", [12, 8])
def test_megraph_tiny(num_aus):
    torch.manual_seed(0)
    enc = create_encoder("megraph", num_aus, size="tiny")
    torch.manual_seed(0)
    twin = create_encoder("megraph", num_aus, size="tiny").eval()
    assert sum(p.numel() for p in enc.parameters()) < 500_000
    x = torch.randn(4, 3, enc.input_size, enc.input_size)
    z = enc(x)
    assert z.shape == (4, num_aus, enc.feature_dim)
    z.sum().backward()
    first = next(enc.backbone.parameters())
    assert first.grad is not None and first.grad.abs().sum() > 0
    torch.manual_seed(0)
    again = create_encoder("megraph", num_aus, size="tiny").eval()
    assert torch.equal(again(x), twin(x))  # same seed, same weights, same output
    enc.eval()
    assert enc(x[:1]).shape == (1, num_aus, enc.feature_dim)
    with pytest.raises(ValueError, match="expects images"):
        enc(torch.randn(1, 3, 32, 32))


def test_feature_dim_override_and_missing_weights(tmp_path):
    assert create_encoder("megraph", 12, size="tiny", feature_dim=32).feature_dim == 32
    with pytest.raises(AunceError, match="not found.*never downloads"):
        create_encoder("megraph", 12, size="tiny", pretrained=str(tmp_path / "none.pth"))
