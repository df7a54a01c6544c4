"""Topology metrics: known answers, tiling, empty-tile rules, MONAI metric API, Ignite handlers, bad input."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import requires_cuda

from contextloss_monai.metrics import (
    AGSMetric,
    BettiErrorMetric,
    ClDiceMetric,
    E0GtMetric,
    betti_error_kinds,
    compute_ags,
    compute_betti_error,
    compute_cldice,
    compute_e0_gt,
)


def one_hot(fg: np.ndarray) -> torch.Tensor:
    """(H, W[, D]) bool → (1, 2, H, W[, D]) one-hot float tensor."""
    fg = torch.as_tensor(fg, dtype=torch.float32)
    return torch.stack([1 - fg, fg])[None]


def horizontal_lines(shape=(32, 48), rows=(8, 20)):
    y = np.zeros(shape, bool)
    for r in rows:
        y[r - 1 : r + 2, 2:-2] = True
    return y


def test_betti_error_counts_a_gap_and_a_false_loop():
    y = horizontal_lines()
    p = y.copy()
    p[7:10, 20:23] = False  # gap: line 1 splits in two
    p[26:31, 10:15] = True
    p[28, 12] = False  # a false blob with a hole
    values = compute_betti_error(one_hot(p), one_hot(y), include_background=False)
    assert values.shape == (1, 1, 3)
    np.testing.assert_allclose(values[0, 0].numpy(), [2.0, 1.0, 3.0])  # e0: 4 vs 2, e1: 1 vs 0


def test_betti_error_is_averaged_over_tiles_including_the_clipped_remainder():
    y = np.zeros((10, 10), bool)
    y[1:9, 8] = True  # a vertical line in the last, clipped column of tiles (columns 8-9)
    p = y.copy()
    p[5, 8] = False
    # 4x4 tiles: 3 x 3 tiles, the right ones 2 columns wide; the gap splits the line in tile (1, 2) only
    value = compute_betti_error(one_hot(p), one_hot(y), include_background=False, patch_size=4, error="e0")
    assert value.item() == pytest.approx(1 / 9)
    whole = compute_betti_error(one_hot(p), one_hot(y), include_background=False, error="e0")
    assert whole.item() == 1.0


def test_perfect_and_empty_predictions():
    y = horizontal_lines()
    for fn in (compute_betti_error, compute_e0_gt):
        assert (fn(one_hot(y), one_hot(y), include_background=False) == 0).all()
    empty = np.zeros_like(y)
    assert (compute_betti_error(one_hot(empty), one_hot(empty), include_background=False) == 0).all()
    assert compute_ags(one_hot(y), one_hot(y), include_background=False).item() == 100.0
    assert compute_cldice(one_hot(y), one_hot(y), include_background=False).item() == pytest.approx(1.0)


def test_slice_wise_betti_error_matches_the_mean_over_2d_slices():
    rng = np.random.default_rng(0)
    y = rng.random((6, 12, 12)) < 0.4
    p = rng.random((6, 12, 12)) < 0.4
    slice_wise = compute_betti_error(one_hot(p), one_hot(y), include_background=False, slice_axis=0)
    per_slice = torch.stack([compute_betti_error(one_hot(a), one_hot(b), include_background=False) for a, b in zip(p, y)])
    torch.testing.assert_close(slice_wise[0, 0], per_slice.mean(0)[0, 0])
    moved = compute_betti_error(
        one_hot(np.moveaxis(p, 0, 2)), one_hot(np.moveaxis(y, 0, 2)), include_background=False, slice_axis=2
    )
    torch.testing.assert_close(moved, slice_wise)
    true_3d = compute_betti_error(one_hot(p), one_hot(y), include_background=False)
    assert true_3d.shape[-1] == 4 and betti_error_kinds(True) == ("e0", "e1", "e2", "e")


def test_e0_gt_counts_a_gap_as_one_and_ignores_a_false_positive_blob():
    y = horizontal_lines()
    p = y.copy()
    p[7:10, 20:23] = False
    assert compute_e0_gt(one_hot(p), one_hot(y), include_background=False).item() == 1.0
    p[26:30, 5:9] = True  # a false-positive blob: e0 grows to 2, e0-Gt stays 1
    assert compute_betti_error(one_hot(p), one_hot(y), include_background=False, error="e0").item() == 2.0
    assert compute_e0_gt(one_hot(p), one_hot(y), include_background=False).item() == 1.0
    p[26:30, 5:9] = False
    p[10:19, 40:43] = True  # a false bridge joins the two lines: it cancels the split in e0, not in e0-Gt
    assert compute_betti_error(one_hot(p), one_hot(y), include_background=False, error="e0").item() == 0.0
    assert compute_e0_gt(one_hot(p), one_hot(y), include_background=False).item() == 1.0
    p[10:19, 40:43] = False
    p[19:22, 30:34] = False  # a second gap, in the other line
    assert compute_e0_gt(one_hot(p), one_hot(y), include_background=False).item() == 2.0


def test_ags_falls_by_the_gaps_share_of_the_skeleton():
    y = horizontal_lines(rows=(8,))
    p = y.copy()
    p[:, 10:14] = False  # a 4-pixel-long gap
    from contextloss_monai.topology import skeletonize_exact

    skel = skeletonize_exact(y)
    expected = 100.0 * (skel & p).sum() / skel.sum()
    assert 100.0 - expected == pytest.approx(100.0 * 4 / skel.sum())
    assert compute_ags(one_hot(p), one_hot(y), include_background=False).item() == pytest.approx(expected)
    p[25:30, 25:30] = True  # false positives do not change AGS
    assert compute_ags(one_hot(p), one_hot(y), include_background=False).item() == pytest.approx(expected)


def test_ags_skips_tiles_without_label_and_is_nan_for_an_empty_label():
    y = np.zeros((16, 16), bool)
    y[2, 1:7] = True  # only in the top-left 8x8 tile
    p = y.copy()
    assert compute_ags(one_hot(p), one_hot(y), include_background=False, patch_size=8).item() == 100.0
    empty = np.zeros_like(y)
    assert torch.isnan(compute_ags(one_hot(p), one_hot(empty), include_background=False))


def test_cldice_skips_tiles_where_both_are_empty():
    y = np.zeros((16, 16), bool)
    y[2, 1:7] = True
    p = y.copy()
    tiled = compute_cldice(one_hot(p), one_hot(y), include_background=False, patch_size=8)
    assert tiled.item() == pytest.approx(1.0)  # 3 empty tiles neither count as 0 nor as NaN
    p[12, 10:14] = True  # a false positive in an otherwise empty tile: that tile scores 0
    tiled = compute_cldice(one_hot(p), one_hot(y), include_background=False, patch_size=8)
    assert tiled.item() == pytest.approx(0.5)
    both_empty = np.zeros_like(y)
    assert torch.isnan(compute_cldice(one_hot(both_empty), one_hot(both_empty), include_background=False))


def test_cldice_of_a_broken_line_matches_the_definition():
    y = horizontal_lines(rows=(8,))
    p = y.copy()
    p[:, 10:14] = False
    from contextloss_monai.topology import skeletonize_exact

    sp, sy = skeletonize_exact(p), skeletonize_exact(y)
    tprec, tsens = (sp & y).sum() / sp.sum(), (sy & p).sum() / sy.sum()
    expected = 2 * tprec * tsens / (tprec + tsens)
    assert compute_cldice(one_hot(p), one_hot(y), include_background=False).item() == pytest.approx(expected, rel=1e-6)
    assert expected < 1.0


def test_3d_metrics_on_a_tube_with_a_gap():
    y = np.zeros((12, 12, 30), bool)
    y[5:8, 5:8, 2:28] = True
    p = y.copy()
    p[..., 14:17] = False
    assert compute_e0_gt(one_hot(p), one_hot(y), include_background=False).item() == 1.0
    assert compute_betti_error(one_hot(p), one_hot(y), include_background=False, error="e0").item() == 1.0
    assert 80 < compute_ags(one_hot(p), one_hot(y), include_background=False).item() < 100


#: each metric class with its compute function and a tiling
METRIC_CASES = [
    (BettiErrorMetric, compute_betti_error, {"patch_size": 8}),
    (E0GtMetric, compute_e0_gt, {"patch_size": 8}),
    (AGSMetric, compute_ags, {}),
    (ClDiceMetric, compute_cldice, {"patch_size": 8}),
]


@pytest.mark.parametrize("metric, fn, kwargs", METRIC_CASES)
def test_cumulative_metric_buffers_batches_and_reduces_like_monai(metric, fn, kwargs):
    rng = np.random.default_rng(1)
    batches = []
    for _ in range(2):
        y = torch.cat([one_hot(horizontal_lines((16, 24), rows=(5,)))] * 2)
        p = y.clone()
        p[:, 1] = torch.as_tensor(rng.random((2, 16, 24)) < 0.3).float() + p[:, 1]
        p[:, 1] = (p[:, 1] > 0).float()
        p[:, 0] = 1 - p[:, 1]
        batches.append((p, y))
    m = metric(include_background=False, reduction="mean", get_not_nans=True, **kwargs)
    for p, y in batches:
        m(y_pred=p, y=y)
    value, not_nans = m.aggregate()
    expected = torch.cat([fn(p, y, include_background=False, **kwargs) for p, y in batches])
    torch.testing.assert_close(value.reshape(-1), expected.nanmean(dim=(0, 1)).reshape(-1))
    assert (not_nans == 4).all()
    none = m.aggregate(reduction="none")[0]
    assert none.shape[:2] == (4, 1)
    m.reset()
    with pytest.raises(ValueError, match="aggregate"):
        m.aggregate()


def test_ignite_handlers_attach_and_report():
    from ignite.engine import Engine

    from contextloss_monai.handlers import AGS, BettiError, ClDice, E0Gt

    y = one_hot(horizontal_lines((16, 24), rows=(5,)))
    p = y.clone()
    p[0, 1, 4:7, 10:12] = 0
    p[0, 0] = 1 - p[0, 1]
    engine = Engine(lambda e, b: {"pred": [p[0]], "label": [y[0]]})
    handlers = {
        "e": BettiError(error="e", include_background=False, output_transform=lambda o: (o["pred"], o["label"])),
        "e0_gt": E0Gt(include_background=False, output_transform=lambda o: (o["pred"], o["label"])),
        "ags": AGS(include_background=False, output_transform=lambda o: (o["pred"], o["label"])),
        "cldice": ClDice(include_background=False, output_transform=lambda o: (o["pred"], o["label"])),
    }
    for name, handler in handlers.items():
        handler.attach(engine, name)
    engine.run([0, 1], max_epochs=1)
    metrics = engine.state.metrics
    assert metrics["e"] == pytest.approx(1.0) and metrics["e0_gt"] == pytest.approx(1.0)
    assert 0 < metrics["ags"] < 100 and 0 < metrics["cldice"] < 1


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda: compute_betti_error(torch.zeros(1, 2, 8, 8), torch.zeros(1, 2, 8, 9)), "y_pred and y"),
        (lambda: compute_betti_error(torch.zeros(2, 8, 8), torch.zeros(2, 8, 8)), "y_pred"),
        (lambda: compute_e0_gt(torch.full((1, 2, 8, 8), 0.5), torch.zeros(1, 2, 8, 8)), "y_pred"),
        (lambda: compute_ags(torch.zeros(1, 2, 8, 8), torch.full((1, 2, 8, 8), 2.0)), "y"),
        (lambda: compute_cldice(torch.zeros(1, 2, 8, 8), torch.zeros(1, 2, 8, 8), patch_size=9), "patch_size"),
        (lambda: compute_cldice(torch.zeros(1, 2, 8, 8), torch.zeros(1, 2, 8, 8), patch_size=0), "patch_size"),
        (lambda: compute_e0_gt(torch.zeros(1, 2, 8, 8), torch.zeros(1, 2, 8, 8), connectivity=6), "connectivity"),
        (lambda: compute_betti_error(torch.zeros(1, 2, 8, 8), torch.zeros(1, 2, 8, 8), slice_axis=0), "slice_axis"),
        (lambda: compute_betti_error(torch.zeros(1, 2, 8, 8, 4), torch.zeros(1, 2, 8, 8, 4), slice_axis=3), "slice_axis"),
        (lambda: compute_betti_error(torch.zeros(1, 2, 8, 8), torch.zeros(1, 2, 8, 8), error="e2"), "error"),
        (lambda: BettiErrorMetric(error="e5"), "error"),
    ],
)
def test_bad_input_raises_value_error(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_betti_numbers_are_computed_once_for_all_error_kinds(monkeypatch):
    """A bundle evaluation lists BettiError handlers for e, e0 and e1: the Betti numbers of an image are
    computed once for all three (and again when the image changes)."""
    import contextloss_monai.metrics.betti_error as module

    calls = []
    real = module._betti_errors
    monkeypatch.setattr(module, "_betti_errors", lambda *a: calls.append(1) or real(*a))
    module._ERRORS_CACHE.clear()
    y = torch.zeros(2, 1, 16, 16)
    y[..., 4, 2:14] = 1
    p = y.clone()
    p[0, 0, 4, 5] = 0  # a gap inside the first 8x8 tile
    values = {kind: compute_betti_error(p, y, patch_size=8, error=kind) for kind in ("e", "e0", "e1")}
    assert len(calls) == 2  # two images, once each
    assert values["e"][0, 0] == values["e0"][0, 0] + values["e1"][0, 0] and values["e0"][0, 0] > 0
    p[1, 0, 10, 10] = 1
    compute_betti_error(p, y, patch_size=8, error="e0")
    assert len(calls) == 3  # only the changed image again
    compute_betti_error(p, y, patch_size=4, error="e0")
    assert len(calls) == 5  # other tiles: new values


def _sheets(seed: int, shape=(48, 40, 36)) -> tuple[np.ndarray, np.ndarray]:
    from scipy import ndimage

    rng = np.random.default_rng(seed)
    label = ndimage.binary_dilation(rng.random(shape) < 0.004, iterations=2)
    pred = label & (rng.random(shape) > 0.1)
    pred |= rng.random(shape) > 0.999
    return pred, label


def test_label_skeletons_are_cached_across_evaluations(monkeypatch, tmp_path):
    """clDice and AGS of a second method reuse the label skeletons on disk; a changed label is recomputed."""
    import contextloss_monai.topology.skeleton as skeleton_module
    from contextloss_monai.metrics import compute_ags, compute_cldice

    thinned = []
    real = skeleton_module._thin
    monkeypatch.setattr(skeleton_module, "_thin", lambda mask: thinned.append(mask.sum()) or real(mask))
    pred, label = _sheets(0)
    p, y = torch.from_numpy(pred)[None, None], torch.from_numpy(label)[None, None]
    options = dict(patch_size=[48, 40, 12], num_workers=1, cache_dir=tmp_path / "skeletons")
    reference = {f.__name__: f(p, y, patch_size=[48, 40, 12], num_workers=1) for f in (compute_cldice, compute_ags)}
    skeleton_module._EXACT_CACHE.clear()
    thinned.clear()
    cold = {f.__name__: f(p, y, **options) for f in (compute_cldice, compute_ags)}
    assert cold == reference and len(thinned) == 6 and len(list((tmp_path / "skeletons").iterdir())) == 3
    skeleton_module._EXACT_CACHE.clear()  # a new process: only the disk cache is left
    thinned.clear()
    other = p & torch.from_numpy(np.random.default_rng(1).random(pred.shape) > 0.2)[None, None]
    compute_cldice(other, y, **options)
    compute_ags(other, y, **options)
    assert len(thinned) == 3  # the second method's own skeletons only: one per tile of its prediction
    label2 = label.copy()
    label2[10:20, 10:20, 4:7] = True  # the label changed in the first tile only
    skeleton_module._EXACT_CACHE.clear()
    thinned.clear()
    changed = compute_ags(p, torch.from_numpy(label2)[None, None], **options)
    assert len(thinned) == 1  # the changed tile is thinned again, the others come from the disk cache
    skeleton_module._EXACT_CACHE.clear()
    assert changed == compute_ags(p, torch.from_numpy(label2)[None, None], patch_size=[48, 40, 12], num_workers=1)
    assert changed != cold["compute_ags"]


def test_worker_processes_give_identical_numbers():
    from contextloss_monai.metrics import compute_ags, compute_cldice
    import contextloss_monai.topology.skeleton as skeleton_module

    pred, label = _sheets(3)
    p, y = torch.from_numpy(pred)[None, None], torch.from_numpy(label)[None, None]
    for compute in (compute_cldice, compute_ags):
        skeleton_module._EXACT_CACHE.clear()
        one = compute(p, y, patch_size=[24, 40, 12], num_workers=1)
        skeleton_module._EXACT_CACHE.clear()
        two = compute(p, y, patch_size=[24, 40, 12], num_workers=2)
        assert torch.equal(one, two)


@requires_cuda
@pytest.mark.parametrize("metric, fn, kwargs", METRIC_CASES)
def test_metrics_take_cuda_tensors(metric, fn, kwargs):
    """The metrics read CUDA predictions and labels (moved to the host by one helper) and give the CPU numbers."""
    y = horizontal_lines()
    p = y.copy()
    p[7:10, 20:23] = False
    p[26:31, 10:15] = True
    y_pred, y_true = one_hot(p), one_hot(y)
    expected = fn(y_pred, y_true, include_background=False, **kwargs)
    torch.testing.assert_close(fn(y_pred.cuda(), y_true.cuda(), include_background=False, **kwargs).cpu(), expected)
    m = metric(include_background=False, reduction="mean", **kwargs)
    m(y_pred=y_pred.cuda(), y=y_true.cuda())
    torch.testing.assert_close(m.aggregate().cpu().reshape(-1), expected.nanmean(dim=(0, 1)).reshape(-1).cpu())
