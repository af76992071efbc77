"""BART-style denoising on top of BERT masking: configs/mlm_pydoc.py with method.corruption on.

The training input is masked as in mlm_pydoc, then noised on device with per-example keys:
text infilling (spans covering 10% of the bytes, each span becomes one [MASK]) and sentence
permutation; the targets stay the clean bytes, predicted wherever masking selected a position
or the noisy input differs from the clean text (jaxssl/methods/mlm.py). Held-out evaluation is
mlm_pydoc's, on uncorrupted inputs. Stages: method.corruption.token_noise / infill / deletion
(rates), permute ("none" | "sentence" | "span"), num_segments, mean_span.

Command (2-core CPU):
  python -m jaxssl.main --config configs/mlm_denoise_pydoc.py --workdir runs/mlm_denoise
"""

from jaxssl.config import base_config
from jaxssl.methods.lm_common import corruption_block


def get_config():
    c = base_config()
    c.batch_size = 32
    c.total_steps = 1500
    c.log_every = 100
    c.checkpoint_every = 500

    c.dataset.name = "pydoc"
    c.dataset.test_split = "validation"
    c.dataset.tokenizer = "byte"
    c.dataset.seq_len = 128
    c.dataset.train_stride = 16
    c.dataset.eval_stride = 128

    c.model.name = "transformer_tiny"
    c.model.vocab_size = 262
    c.model.max_len = 128
    c.model.causal = False
    c.model.dropout = 0.0
    c.model.tie_embeddings = True
    c.model.pooling = "mean"

    c.method.name = "mlm"
    c.method.masking = "token"
    c.method.mask_rate = 0.15
    c.method.mask_token_frac = 0.8
    c.method.random_token_frac = 0.1
    c.method.corruption = corruption_block()
    c.method.corruption.infill = 0.1
    c.method.corruption.permute = "sentence"

    c.optimizer.name = "adamw"
    c.optimizer.learning_rate = 1e-3
    c.optimizer.b2 = 0.98
    c.optimizer.weight_decay = 0.01
    c.optimizer.warmup_steps = 100
    c.optimizer.grad_clip_norm = 1.0

    c.eval.batch_size = 128
    return c
