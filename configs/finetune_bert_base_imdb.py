"""Fine-tune a locally downloaded bert-base-uncased on IMDb sentiment (2 classes).

Needs the Hugging Face folder (config.json, model.safetensors, tokenizer.json, as
save_pretrained or `huggingface-cli download bert-base-uncased --local-dir DIR` writes) and
imdb_reviews prepared for tfds in ArrayRecord (`tfds build imdb_reviews
--file_format=array_record`), both on a machine with network:
  python -m jaxssl.main --config configs/finetune_bert_base_imdb.py --workdir runs/bert_imdb \
      --config.init_from=/path/to/bert-base-uncased \
      --config.dataset.tokenizer=/path/to/bert-base-uncased
The model block below is bert-base-uncased's own config.json in jaxssl's terms (post-LN, exact
GELU, LayerNorm eps 1e-12, 2 token types, 512 positions); a checkpoint of another shape is a
config error naming the flags to set. The head is a linear layer on the [CLS] hidden state
(BERT's tanh pooler is not used). Published: 94.6% test accuracy at 512 tokens (Sun et al.
2019, "How to Fine-Tune BERT for Text Classification", Table 2); at the 256 tokens here
expect a point or two less. Not run here (nothing can be downloaded); the interop tests load
tiny random BERTs with outputs equal to transformers'.
"""

from jaxssl.config import base_config
from jaxssl.finetune.defaults import finetune_block


def get_config():
    c = base_config()
    c.job = "finetune"
    c.init_from = ""  # the bert-base-uncased folder
    c.batch_size = 32
    c.total_steps = 2 * 25_000 // 32  # 2 epochs of the 25,000 training reviews
    c.log_every = 50
    c.checkpoint_every = 500

    c.dataset.name = "imdb_reviews"
    c.dataset.test_split = "test"
    c.dataset.tokenizer = ""  # the same folder: its WordPiece tokenizer.json and special ids
    c.dataset.seq_len = 256  # [CLS] + 254 tokens + [SEP], truncated
    c.dataset.text_key = "text"

    c.model.name = "transformer_base"
    c.model.vocab_size = 30522
    c.model.width = 768
    c.model.depth = 12
    c.model.num_heads = 12
    c.model.mlp_dim = 3072
    c.model.max_len = 512
    c.model.causal = False
    c.model.norm = "post"
    c.model.activation = "gelu"
    c.model.ln_eps = 1e-12
    c.model.type_vocab_size = 2
    c.model.tie_embeddings = True
    c.model.output_bias = True
    c.model.lm_transform = False  # the MLM head is not used by a classifier
    c.model.pooling = "first"  # the [CLS] position
    c.model.dropout = 0.1

    c.finetune = finetune_block()
    c.finetune.mode = "full"
    c.finetune.label_fraction = 1.0
    c.finetune.lora.target_patterns = (r"qkv/kernel$",)

    c.optimizer.name = "adamw"
    c.optimizer.learning_rate = 2e-5
    c.optimizer.weight_decay = 0.01
    c.optimizer.warmup_steps = 156  # 10% of the steps
    c.optimizer.grad_clip_norm = 1.0

    c.eval.batch_size = 256
    return c
