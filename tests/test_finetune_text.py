"""Sequence classification from the Transformer's pooled output, on tfds mock data (imdb)."""

import json

import numpy as np
import tensorflow_datasets as tfds
from sklearn.metrics import accuracy_score

from jaxssl.data import sources
from jaxssl.finetune import job, predict

from .helpers import load_config
from .text_helpers import tiny_text_config


def test_lora_finetune_on_mock_imdb_reviews(tmp_path):
    with tfds.testing.mock_data(num_examples=12, policy=tfds.testing.MockPolicy.USE_CODE):
        c = tiny_text_config("mlm", "imdb_reviews")
        c.dataset.data_dir = str(tmp_path / "data")
        c.dataset.test_split = "test"
        c.job = "finetune"
        c.init_from = ""
        c.finetune = load_config("finetune_digits").finetune
        c.finetune.mode = "lora"
        c.finetune.label_fraction = 1.0
        c.finetune.lora.target_patterns = (r"qkv/kernel$",)
        c.batch_size, c.eval.batch_size = 8, 8
        c.total_steps, c.log_every, c.checkpoint_every = 2, 2, 2
        summary = job.run(c, str(tmp_path / "ft"))
        pred = load_config("predict_digits")
        pred.dataset = c.dataset
        pred.init_from = str(tmp_path / "ft")
        pred.predict.batch_size = 8
        predict.run(pred, str(tmp_path / "pred"))
        test = sources.get_source(c.dataset, "test")
        labels = np.array([test[i]["label"] for i in range(len(test))])
    written = json.loads((tmp_path / "ft" / "summary.json").read_text())
    assert written["test_examples"] == 12
    with np.load(tmp_path / "pred" / "predictions_test.npz") as f:
        np.testing.assert_array_equal(f["labels"], labels)  # every review, in order
        # The summary's top1 is the accuracy of the model's own predictions (sklearn).
        np.testing.assert_allclose(written["top1"], accuracy_score(labels, f["predictions"]))
    # Only the rank-4 qkv updates of each of the `depth` blocks and the 2-class head train.
    width, depth = c.model.width, c.model.depth
    lora_params = depth * (width * 4 + 4 * 3 * width)  # a [D, 4] + b [4, 3 * heads * hd]
    assert summary["params_trainable"] == lora_params + width * 2 + 2
    assert summary["params_total"] > 10 * summary["params_trainable"]
    assert np.isfinite(written["final_loss"])
