"""The pieces of `make check-paper` that can run fast: data of the real shapes and the report."""

from __future__ import annotations

import numpy as np

from skelrecall.bench.paper_check import SHAPES, synthetic_dataset, write_report
from skelrecall.configs import compose
from skelrecall.data.layout import DatasetLayout
from skelrecall.io import read_image


def test_synthetic_cases_have_the_real_shape_layout_and_labels(tmp_path):
    for experiment in ("nnunet_drive", "nnunet_topcow_multiclass"):
        dataset = compose([f"experiment={experiment}", "profile=paper"]).dataset
        layout = DatasetLayout.open(synthetic_dataset(dataset, tmp_path))
        assert layout.root.name == dataset.folder and len(layout.labels) == dataset.num_classes
        image, _ = read_image(layout.image_files(layout.cases("Tr")[0])[0])
        label, _ = read_image(layout.label_file(layout.cases("Ts")[0], "Ts"))
        shape = SHAPES[dataset.name]
        assert label.shape == shape and image.shape[: len(shape)] == shape
        assert image.ndim == len(shape) + (1 if dataset.in_channels == 3 else 0)
        assert set(np.unique(label)) <= set(range(dataset.num_classes)) and label.max() > 0


def test_report_lists_every_experiment_with_its_numbers(tmp_path):
    rows = [
        {
            "experiment": "nnunet_drive",
            "data": "synthetic 584x565",
            "ok": True,
            "step_s": 12.34,
            "predict_evaluate_s": 40.0,
            "peak_rss_gb": 3.21,
        },
        {
            "experiment": "nnunet_toothfairy",
            "data": "converted",
            "ok": False,
            "step_s": None,
            "predict_evaluate_s": None,
            "peak_rss_gb": 20.5,
        },
    ]
    text = write_report(rows, tmp_path).read_text()
    assert "| nnunet_drive | synthetic 584x565 | ok | 12.3 | 40 | 3.2 |" in text
    assert "| nnunet_toothfairy | converted | FAILED |  |  | 20.5 |" in text
