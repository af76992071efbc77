"""BERT-base masked LM pre-training on English Wikipedia (Devlin et al. 2019, Sec. 3.1, A.2).

Shapes from the paper: 12 layers, width 768, 12 heads, MLP 3072 (110M params), GELU, learned
positions up to 512, tied output embedding; phase-1 sequences of 128 tokens, batch 256, Adam
lr 1e-4 (beta2 0.999), weight decay 0.01, 10k warmup steps, dropout 0.1, 1M steps, 15% masking
80/10/10. Differences here: a byte-level BPE of 30,522 ids trained by the train_tokenizer job
(the paper uses WordPiece on Wikipedia + BookCorpus), cosine instead of linear decay, no
next-sentence prediction, one [CLS] text [SEP] record per article (truncated to 128).

Needs tfds `wikipedia/20230601.en` prepared in ArrayRecord format under dataset.data_dir (no
download happens at run time). Commands:
  python -m jaxssl.main --config configs/bert_base_wikipedia.py --workdir W \
      --config.job=train_tokenizer
  python -m jaxssl.main --config configs/bert_base_wikipedia.py --workdir W \
      --config.dataset.tokenizer=W/tokenizer.json
Not run here (needs a TPU/GPU pod and the dataset); expected from the paper: MLM accuracy
of roughly 70% on held-out text after 1M steps.
"""

from jaxssl.config import base_config


def get_config():
    c = base_config()
    c.batch_size = 256
    c.total_steps = 1_000_000
    c.log_every = 500
    c.checkpoint_every = 10_000

    c.dataset.name = "wikipedia/20230601.en"
    c.dataset.train_split = "train[:99%]"
    c.dataset.test_split = "train[99%:]"  # Wikipedia has one split: hold out the last 1%
    c.dataset.text_key = "text"
    c.dataset.tokenizer = "byte"  # replace with W/tokenizer.json after job=train_tokenizer
    c.dataset.seq_len = 128

    c.model.name = "transformer_base"  # 768 wide, 12 layers, 12 heads, MLP 3072
    c.model.vocab_size = 30_522
    c.model.max_len = 512
    c.model.causal = False
    c.model.dropout = 0.1
    c.model.tie_embeddings = True
    c.model.pooling = "first"  # [CLS]
    c.model.dtype = "bfloat16"

    c.method.name = "mlm"
    c.method.masking = "token"
    c.method.mask_rate = 0.15

    c.optimizer.name = "adamw"
    c.optimizer.learning_rate = 1e-4
    c.optimizer.b2 = 0.999
    c.optimizer.weight_decay = 0.01
    c.optimizer.warmup_steps = 10_000
    c.optimizer.grad_clip_norm = 1.0

    c.eval.batch_size = 256
    c.eval.max_batches = 200
    return c
