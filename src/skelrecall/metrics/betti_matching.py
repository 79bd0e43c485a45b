"""Betti matching error of binary masks (optional: ``pip install 'skelrecall[topology]'``).

Computed by Betti-Matching-3D (Stucki et al., "Topologically faithful image segmentation via
induced matching of persistence barcodes", ICML 2023; "Efficient Betti matching enables topology-
aware 3D segmentation via persistent homology", 2024), the compiled extension that the
``topolosses`` wheel bundles. Only that extension module is loaded (by file path), so neither
torch nor torchvision nor OpenCV is imported and ``topolosses`` can be installed ``--no-deps``.

Construction and conventions:

* Each mask becomes a filtration image, padded by two background voxels: foreground 0.5,
  background 1, and one *anchor* voxel of value 0 in a corner of the padding, separated from
  everything else. Betti-Matching-3D filters by sublevel sets, so at level 0.5 the complex is the
  foreground. The anchor carries the one infinite (essential) bar, which Betti-Matching-3D leaves
  out of its output; thus every foreground component is a finite bar and can be matched or not
  (without the anchor, an empty mask against a one-component mask would score 0).
* Betti-Matching-3D uses the *V-construction* of cubical complexes (voxels are vertices):
  foreground is 4-connected in 2D and 6-connected in 3D, background 8-/26-connected. This is the
  dual of the convention of :func:`skelrecall.metrics.betti_numbers` (foreground 8/26-connected),
  so e.g. two pixels touching at a corner are one component for the Betti numbers but two here.
  The Betti matching error is reported in the implementation's own convention, unchanged.
* ``betti_matching{k}_error`` = unmatched dimension-``k`` bars of the prediction + unmatched
  dimension-``k`` bars of the ground truth; ``betti_matching_error`` = their sum over ``k``.
  Identical masks give 0; both empty give 0.
* Cost: Betti-Matching-3D builds the persistence of both images and of their comparison image in
  memory (measured here: 9 s / 2.8 GB for two 132^3 images, 73 s / 20 GB for 260^3). Masks are
  cropped to the box of both masks; a crop above ``MAX_VOXELS`` (env
  ``SKELRECALL_BETTI_MATCHING_MAX_VOXELS``, default 2^22) is refused with an error rather than
  exhausting memory.
"""

from __future__ import annotations

import functools
import importlib.util
import os
from pathlib import Path

import numpy as np

from skelrecall.metrics._util import as_binary_pair, bbox_slices, box_volume, union_box

MAX_VOXELS = int(os.environ.get("SKELRECALL_BETTI_MATCHING_MAX_VOXELS", 2**22))
PAD = 2


class BettiMatchingUnavailable(ImportError):
    """topolosses (which bundles Betti-Matching-3D) is not installed."""


@functools.cache
def compiled_extension():
    """The compiled ``betti_matching`` module inside the installed ``topolosses`` package."""
    spec = importlib.util.find_spec("topolosses")
    if spec is None or not spec.submodule_search_locations:
        raise BettiMatchingUnavailable(
            "betti_matching needs topolosses: pip install 'skelrecall[topology]' (or: pip install --no-deps topolosses)"
        )
    src = Path(next(iter(spec.submodule_search_locations))) / "losses" / "betti_matching" / "src"
    found = sorted(src.glob("betti_matching*.so")) + sorted(src.glob("betti_matching*.pyd"))
    if not found:
        raise BettiMatchingUnavailable(f"{src}: topolosses is installed but holds no compiled betti_matching module")
    ext_spec = importlib.util.spec_from_file_location("betti_matching", found[0])
    module = importlib.util.module_from_spec(ext_spec)
    ext_spec.loader.exec_module(module)
    return module


def filtration_image(mask: np.ndarray) -> np.ndarray:
    """The float64 image Betti-Matching-3D gets: padded by 2, foreground 0.5, background 1, anchor 0."""
    image = np.ones(tuple(n + 2 * PAD for n in mask.shape), dtype=np.float64)
    image[(slice(PAD, -PAD),) * mask.ndim][mask] = 0.5
    image[(0,) * mask.ndim] = 0.0
    return image


def betti_matching_errors(pred, gt) -> tuple[int, ...]:
    """Per-dimension Betti matching errors ``(e0, e1[, e2])`` of two binary 2D/3D masks."""
    pred, gt = as_binary_pair(pred, gt)
    ndim = pred.ndim
    box = union_box(bbox_slices(pred), bbox_slices(gt))
    if box is None:
        return (0,) * ndim
    if box_volume(box, PAD) > MAX_VOXELS:
        raise ValueError(
            f"betti_matching: the masks span {box_volume(box, PAD)} voxels (box {[s.stop - s.start for s in box]} "
            f"+ padding), above the limit of {MAX_VOXELS} (SKELRECALL_BETTI_MATCHING_MAX_VOXELS); "
            "Betti-Matching-3D needs about 1 KB of memory per voxel. Leave betti_matching out of --metrics "
            "or raise the limit"
        )
    result = compiled_extension().compute_matching(filtration_image(pred[box]), filtration_image(gt[box]))
    unmatched = np.asarray(result.num_unmatched_input1) + np.asarray(result.num_unmatched_input2)
    return tuple(int(u) for u in unmatched[:ndim])


def betti_matching_error(pred, gt) -> int:
    """Total Betti matching error: unmatched bars of both masks, summed over dimensions."""
    return sum(betti_matching_errors(pred, gt))
