import numpy as np
import pytest

from aunce.data.align import BOX_ENLARGE, align_face, alignment_matrix, apply_matrix, to_49
from aunce.data.synthetic import TEMPLATE


def similarity(points, angle_deg, scale, shift):
    t = np.radians(angle_deg)
    rot = scale * np.array([[np.cos(t), -np.sin(t)], [np.sin(t), np.cos(t)]])
    return points @ rot.T + shift


def test_68_and_66_point_layouts_map_to_49():
    pts68 = np.arange(136, dtype=float).reshape(68, 2)
    out = to_49(pts68)
    assert out.shape == (49, 2)
    assert out[0, 0] == pts68[17, 0] and out[42, 0] == pts68[59, 0]
    assert out[43, 0] == pts68[61, 0]  # 60 dropped
    assert out[46, 0] == pts68[65, 0]  # 64 dropped
    assert to_49(np.zeros((66, 2))).shape == (49, 2)
    with pytest.raises(ValueError, match="68, 66 or 49"):
        to_49(np.zeros((10, 2)))


@pytest.mark.parametrize("angle,scale", [(0, 40), (17, 55), (-30, 25), (90, 60)])
def test_known_rotation_and_scale_are_undone(angle, scale):
    size = 256
    canonical = to_49(TEMPLATE)
    face = similarity(canonical, angle, scale, np.array([300.0, 200.0]))
    m = alignment_matrix(face, size)
    aligned = apply_matrix(m, face)
    # eyes level after alignment
    left, right = aligned[19:25].mean(0), aligned[25:31].mean(0)
    assert abs(left[1] - right[1]) < 1e-9
    # the alignment of a rotated/scaled face equals the alignment of the canonical face
    expected = apply_matrix(alignment_matrix(canonical, size), canonical)
    assert np.allclose(aligned, expected, atol=1e-9)
    # the anchor box spans size / 2.9 pixels on its longer side, centred
    anchors = np.stack([left, right, aligned[13], aligned[31], aligned[37]])
    extent = (anchors.max(0) - anchors.min(0)).max()
    assert extent == pytest.approx((size - 1) / BOX_ENLARGE, rel=1e-9)
    assert np.allclose((anchors.max(0) + anchors.min(0)) / 2, (size - 1) / 2)


def test_align_face_warps_image_and_landmarks():
    img = np.zeros((120, 120, 3), np.uint8)
    # a face near the top-left corner: the aligned square reaches beyond the frame there
    face = similarity(to_49(TEMPLATE), 20, 30, np.array([26.0, 26.0]))
    for x, y in face.round().astype(int):
        img[y - 1 : y + 2, x - 1 : x + 2] = 255
    out, pts = align_face(img, face, 64)
    assert out.shape == (64, 64, 3) and pts.shape == (49, 2)
    # border is grey 128, landmarks land on bright pixels
    assert tuple(out[0, 0]) == (128, 128, 128)
    bright = [out[int(round(y)), int(round(x))].max() for x, y in pts[[13, 31, 37]]]
    assert min(bright) > 0
