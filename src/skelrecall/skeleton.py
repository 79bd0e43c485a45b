"""The tubed skeleton of a label map (Kirchhoff et al., ECCV 2024, Sec. 3.1).

For a label map ``Y`` (0 = background, 1..K = classes), 2D or 3D:

1. ``B = Y > 0``                         (one skeleton of the union of all foreground classes)
2. ``S = skeletonize(B)``                 (scikit-image: Zhang-Suen in 2D, Lee et al. in 3D)
3. ``S = dilate(dilate(S))``              (twice with the cross footprint, i.e. once with the
                                           L1 diamond of radius 2: 13 pixels in 2D, 25 voxels in 3D)
4. ``S_mc = S * Y``                       (each tube voxel takes the ground-truth class there;
                                           outside the ground truth it is 0)

This matches the released Skeleton Recall code. The result is computed on CPU for every augmented
label patch in the data loader and is the target of :class:`skelrecall.losses.SkeletonRecallLoss`.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage
from skimage.morphology import skeletonize

DILATION_ITERATIONS = 2


def tubed_skeleton(label: np.ndarray) -> np.ndarray:
    """Tubed skeleton of ``label`` (2D or 3D integer label map); same shape and dtype as ``label``."""
    label = np.asarray(label)
    if label.ndim not in (2, 3):
        raise ValueError(f"tubed_skeleton expects a 2D or 3D label map, got shape {label.shape}")
    if label.dtype.kind not in "biu":
        raise ValueError(f"tubed_skeleton expects integer or boolean labels, got dtype {label.dtype}")
    foreground = label > 0
    if not foreground.any():
        return np.zeros_like(label)
    skeleton = skeletonize(foreground)
    cross = ndimage.generate_binary_structure(label.ndim, 1)
    tube = ndimage.binary_dilation(skeleton, structure=cross, iterations=DILATION_ITERATIONS)
    return np.where(tube, label, 0).astype(label.dtype, copy=False)
