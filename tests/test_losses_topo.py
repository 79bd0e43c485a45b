"""Topo-clDice: exact simple-point tests, skeletons of known shapes, loss = formula on our skeletons."""

import numpy as np
import pytest
import torch
from scipy import ndimage as ndi

from skelrecall.losses import TopoClDiceLoss, simple_points, topo_skeletonize

S26 = np.ones((3, 3, 3))
S6 = ndi.generate_binary_structure(3, 1)
_z, _y, _x = np.indices((3, 3, 3))
_D = (_z != 1).astype(int) + (_y != 1) + (_x != 1)
N18 = (_D == 1) | (_D == 2)
FACES = [(0, 1, 1), (2, 1, 1), (1, 0, 1), (1, 2, 1), (1, 1, 0), (1, 1, 2)]


def oracle_simple(n):
    """Textbook definition (26, 6): one 26-component in N26*, one 6-adjacent 6-component of bg in N18*."""
    if not n[1, 1, 1]:
        return False
    fg = n.copy()
    fg[1, 1, 1] = 0
    if ndi.label(fg, S26)[1] != 1:
        return False
    lab = ndi.label((1 - n) * N18, S6)[0]
    return len({lab[f] for f in FACES} - {0}) == 1


def encode(n):
    return sum(int(n[z, y, x]) << (9 * z + 3 * y + x) for z in range(3) for y in range(3) for x in range(3))


def test_simple_point_tests_are_exact():
    rng = np.random.default_rng(0)
    codes, want = [], []
    for dens in (0.15, 0.35, 0.5, 0.7, 0.9):
        for _ in range(600):
            n = (rng.random((3, 3, 3)) < dens).astype(np.uint8)
            n[1, 1, 1] = rng.random() < 0.95
            codes.append(encode(n))
            want.append(oracle_simple(n))
    codes, want = torch.tensor(codes), torch.tensor(want)
    assert 0.2 < want.float().mean() < 0.8
    for test in ("boolean", "euler"):
        assert torch.equal(simple_points(codes, test), want), test


def betti_2d(mask):
    b0 = ndi.label(mask, np.ones((3, 3)))[1]
    b1 = ndi.label(np.pad(1 - mask, 1))[1] - 1
    return b0, b1


def disk_grid(n=40):
    yy, xx = np.mgrid[:n, :n]
    return np.hypot(yy - n / 2 + 0.5, xx - n / 2 + 0.5)


def _fixpoint(skel, test):
    """No point of skel is a deletable (simple, non-endpoint) point."""
    again = topo_skeletonize(torch.tensor(skel, dtype=torch.float32)[None, None], 1, test, probabilistic=False)
    return np.array_equal(again[0, 0].numpy(), skel)


@pytest.mark.parametrize("test", ["boolean", "euler"])
def test_ring_gives_closed_one_pixel_loop(test):
    r = disk_grid()
    ring = ((r < 15) & (r > 9)).astype(np.float32)
    s = topo_skeletonize(torch.tensor(ring)[None, None], 10, test, probabilistic=False)[0, 0].numpy()
    assert betti_2d(s) == (1, 1)
    assert s.sum() < 0.4 * ring.sum() and np.all(s <= ring)
    # one pixel thin: no 2x2 block of skeleton, and thinning once more changes nothing
    assert not np.any(s[:-1, :-1] * s[1:, :-1] * s[:-1, 1:] * s[1:, 1:])
    assert _fixpoint(s, test)


@pytest.mark.parametrize("test", ["boolean", "euler"])
def test_filled_disk_is_connected_and_not_empty(test):
    disk = (disk_grid() < 12).astype(np.float32)
    s = topo_skeletonize(torch.tensor(disk)[None, None], 10, test, probabilistic=False)[0, 0].numpy()
    assert s.sum() >= 1 and betti_2d(s) == (1, 0)


def test_line_keeps_endpoints():
    img = np.zeros((12, 30), np.float32)
    img[6, 3:27] = 1  # thin line: unchanged
    img2 = np.zeros((12, 30), np.float32)
    img2[4:9, 3:27] = 1  # thick bar: thinned to a connected line
    s = topo_skeletonize(torch.tensor(np.stack([img, img2]))[:, None], 10, probabilistic=False)[:, 0].numpy()
    assert np.array_equal(s[0], img)
    assert s[0][6, 3] == 1 and s[0][6, 26] == 1
    assert betti_2d(s[1]) == (1, 0) and s[1].sum() < img2.sum() / 3


def test_3d_torus_keeps_its_tunnel_and_matches_between_tests():
    z, y, x = np.mgrid[:11, :28, :28]
    r = np.hypot(y - 13.5, x - 13.5)
    torus = (np.hypot(r - 9, z - 5) < 3.2).astype(np.float32)
    out = {
        t: topo_skeletonize(torch.tensor(torus)[None, None], 10, t, probabilistic=False)[0, 0].numpy()
        for t in ("boolean", "euler")
    }
    assert np.array_equal(out["boolean"], out["euler"])
    s = out["boolean"]
    from skimage.measure import euler_number

    b0 = ndi.label(s, S26)[1]
    b2 = ndi.label(np.pad(1 - s, 1), S6)[1] - 1
    assert (b0, b2, euler_number(s, connectivity=3)) == (1, 0, 0)  # b1 = b0 + b2 - chi = 1
    assert s.sum() < 0.2 * torus.sum()


def test_binarize_and_gradient_reach_surviving_voxels():
    torch.manual_seed(0)
    p = torch.rand(2, 1, 20, 20, requires_grad=True)
    s = topo_skeletonize(p, 5)  # probabilistic
    assert set(torch.unique(s.detach()).tolist()) <= {0.0, 1.0}
    s.sum().backward()
    g = p.grad
    assert torch.isfinite(g).all()
    assert (g[s.detach() > 0] > 0).all() and (g[s.detach() == 0] == 0).all()
    with pytest.raises(ValueError, match="probabilities"):
        topo_skeletonize(torch.full((1, 1, 5, 5), 2.0))


@pytest.mark.parametrize("classes", [1, 3])
def test_loss_matches_formula_on_its_skeletons(classes):
    torch.manual_seed(classes)
    sigmoid = classes == 1
    logits = torch.randn(2, classes, 16, 16, dtype=torch.float64, requires_grad=True)
    target = torch.randint(0, max(classes, 2), (2, 1, 16, 16))
    loss = TopoClDiceLoss(iterations=4, probabilistic=False, softmax=not sigmoid, sigmoid=sigmoid)(logits, target)
    probs = torch.sigmoid(logits) if sigmoid else torch.softmax(logits, 1)[:, 1:]
    truth = (target == 1).double() if sigmoid else torch.cat([(target == c).double() for c in range(1, classes)], 1)
    vals = []
    for c in range(probs.shape[1]):
        p, t = probs[:, c : c + 1].detach(), truth[:, c : c + 1]
        sp = topo_skeletonize(p, 4, probabilistic=False)
        st = topo_skeletonize(t, 4, probabilistic=False)
        tprec = ((sp * t).sum() + 1) / (sp.sum() + 1)
        tsens = ((st * p).sum() + 1) / (st.sum() + 1)
        vals.append(1 - 2 * tprec * tsens / (tprec + tsens))
    assert loss.item() == pytest.approx(torch.stack(vals).mean().item(), abs=1e-10)
    loss.backward()
    assert torch.isfinite(logits.grad).all() and logits.grad.abs().sum() > 0


def test_loss_3d_runs_with_probabilistic_binarisation():
    torch.manual_seed(0)
    logits = torch.randn(1, 2, 8, 10, 10, requires_grad=True)
    target = torch.randint(0, 2, (1, 1, 8, 10, 10))
    loss = TopoClDiceLoss(iterations=3, simple_point_test="euler")(logits, target)
    loss.backward()
    assert 0 <= loss.item() <= 1 and torch.isfinite(logits.grad).all()
