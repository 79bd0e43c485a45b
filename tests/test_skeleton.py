import numpy as np
import pytest
from scipy import ndimage
from skimage import morphology

from skelrecall.skeleton import tubed_skeleton


def reference_tubed_skeleton(label: np.ndarray) -> np.ndarray:
    """The three steps written out independently: skeletonize, dilate with the L1 ball of radius 2, mask."""
    skel = morphology.skeletonize(label > 0)
    ball = morphology.diamond(2) if label.ndim == 2 else morphology.octahedron(2)
    tube = ndimage.binary_dilation(skel, structure=ball)
    return np.where(tube, label, 0)


def random_label(rng, shape, classes, smooth):
    field = ndimage.gaussian_filter(rng.standard_normal(shape), smooth)
    label = np.zeros(shape, np.uint8)
    cuts = np.quantile(field, np.linspace(0.55, 0.95, classes + 1))
    for c in range(classes):
        label[(field > cuts[c]) & (field <= cuts[c + 1])] = c + 1
    return label


@pytest.mark.parametrize("shape,smooth", [((64, 64), 2.0), ((96, 80), 3.0), ((24, 32, 28), 1.5), ((20, 20, 20), 2.5)])
@pytest.mark.parametrize("classes", [1, 3])
def test_equals_independent_composition(shape, smooth, classes):
    rng = np.random.default_rng(len(shape) * 10 + classes)
    for _ in range(5):
        label = random_label(rng, shape, classes, smooth)
        out = tubed_skeleton(label)
        np.testing.assert_array_equal(out, reference_tubed_skeleton(label))
        assert out.dtype == label.dtype and out.shape == label.shape
        inside = out > 0
        assert inside.any()
        np.testing.assert_array_equal(out[inside], label[inside])  # subset of the label, label's values


def test_bar_tube_is_five_pixels_wide_and_keeps_the_class():
    label = np.zeros((15, 40), np.uint8)
    label[3:12, :] = 2  # a bar 9 px high: skeleton = its middle row 7, tube = rows 5..9 (L1 radius 2)
    out = tubed_skeleton(label)
    middle = out[:, 10:30]
    assert set(np.unique(out)) == {0, 2}
    assert (middle[5:10] == 2).all()
    assert not middle[:5].any() and not middle[10:].any()


def test_empty_and_bad_input():
    assert not tubed_skeleton(np.zeros((8, 8), np.uint8)).any()
    with pytest.raises(ValueError, match="2D or 3D"):
        tubed_skeleton(np.zeros((2, 2, 2, 2), np.uint8))
    with pytest.raises(ValueError, match="integer"):
        tubed_skeleton(np.zeros((8, 8), np.float32))
