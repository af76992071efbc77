"""Text jobs end to end: pre-train + held-out evaluation, generate, train_tokenizer."""

import math

import jax
import numpy as np
import pytest
from etils import epath

from jaxssl import generate, jobs, methods, tokenize, validate
from jaxssl import sharding as mesh_lib
from jaxssl.data import sources, tokenizers

from .text_helpers import corpus_file, tiny_text_config


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    return corpus_file(tmp_path_factory.mktemp("corpus"))


def test_causal_lm_pretrain_eval_and_generate(tmp_path, corpus):
    config = tiny_text_config("causal_lm", f"text:{corpus}")
    config.eval.max_batches = None  # the whole validation split
    config.generate.num_tokens = 12
    validate.validate(config)  # jobs.prepare would also join a cluster: not in a test
    summary = jobs.run(config, str(tmp_path))
    for key in ("eval_loss", "perplexity", "bits_per_byte", "next_token_accuracy"):
        assert np.isfinite(summary[key]), key
    assert math.isclose(summary["perplexity"], math.exp(summary["eval_loss"]), rel_tol=1e-9)
    # Independent recomputation from the checkpoint: every validation target exactly once.
    method = methods.get_method(config)
    params, step = generate._restore_params(config, epath.Path(tmp_path), method)
    assert step == config.total_steps
    src = sources.get_source(config.dataset, "validation")
    rec = [src[i] for i in range(len(src))]
    toks = np.stack([r["tokens"] for r in rec])
    mask = np.stack([r["attention_mask"] for r in rec]) > 0
    logits = np.asarray(jax.jit(method.logits)(params, toks[:, :-1], mask[:, :-1]), np.float64)
    logp = logits - np.log(np.exp(logits - logits.max(-1, keepdims=True)).sum(-1, keepdims=True))
    logp -= logits.max(-1, keepdims=True)
    nll = -np.take_along_axis(logp, toks[:, 1:, None], -1)[..., 0][mask[:, 1:]]
    targets = toks[:, 1:][mask[:, 1:]]
    val_text = open(corpus, encoding="utf-8").read()[int(0.9 * len(open(corpus).read())) :]
    assert len(targets) == len(val_text.encode("utf-8"))  # [EOS] last, first byte not a target
    np.testing.assert_allclose(summary["eval_loss"], nll.mean(), rtol=1e-4)
    n_bytes = (targets >= tokenizers.NUM_SPECIAL).sum()
    np.testing.assert_allclose(
        summary["bits_per_byte"], nll.sum() / math.log(2) / n_bytes, rtol=1e-4
    )

    config.job = "generate"
    out = jobs.run(config, str(tmp_path))
    assert len(out["samples"]) == config.generate.num_samples
    assert (tmp_path / "samples.txt").read_text().startswith(config.generate.prompt)


def test_mlm_evaluate_reports_masked_metrics(corpus):
    config = tiny_text_config("mlm", f"text:{corpus}")
    config.eval.max_batches = None
    method = methods.get_method(config)
    src = sources.get_source(config.dataset, "train")
    batch = {k: np.stack([src[i][k] for i in range(2)]) for k in src[0]}
    params, state = jax.jit(method.init)(jax.random.PRNGKey(0), batch)
    out = method.evaluate(params, state, mesh_lib.make_mesh(jax.devices()[:1]))
    assert math.isclose(out["perplexity"], math.exp(out["eval_loss"]), rel_tol=1e-9)
    val = sources.get_source(config.dataset, "validation")
    eligible = [
        int((val[i]["tokens"][val[i]["attention_mask"] > 0] >= 6).sum()) for i in range(len(val))
    ]
    # BERT's count per sequence, max(1, round(15% of its maskable tokens)), over the whole split.
    assert out["eval_masked_tokens"] == sum(max(1, round(0.15 * n)) for n in eligible if n)
    # The majority baseline: the commonest training byte is the space in English prose.
    assert out["eval_protocol"]["majority_token"] == tokenizers.ByteTokenizer().encode(" ")[0]
    assert 0.05 < out["masked_accuracy_majority_baseline"] < 0.4
    assert 0 <= out["masked_accuracy"] <= 1


def test_train_tokenizer_job_writes_and_reloads(tmp_path, corpus):
    config = tiny_text_config("mlm", f"text:{corpus}")
    config.model.vocab_size = 320
    summary = tokenize.run(config, str(tmp_path))
    path = tmp_path / "tokenizer.json"
    assert summary["tokenizer"] == str(path) and summary["round_trip_ok"]
    assert summary["train_bytes_per_token"] > 1.2 and summary["vocab_size"] <= 320
    with pytest.raises(FileExistsError, match="new --workdir"):
        tokenize.run(config, str(tmp_path))  # never overwrites a tokenizer checkpoints use
    config.dataset.tokenizer = str(path)
    rec = sources.get_source(config.dataset, "train")[0]
    assert rec["tokens"].max() < summary["vocab_size"]
    decoded = tokenizers.get_tokenizer(str(path)).decode(rec["tokens"])
    assert len(decoded) > 17 and open(corpus, encoding="utf-8").read().startswith(decoded)
