"""The `finetune` config block with its defaults; experiment configs override what they need."""

import ml_collections


def finetune_block() -> ml_collections.ConfigDict:
    """Mode, head, labels, regularisation and LoRA / adapter settings of a fine-tune run."""
    f = ml_collections.ConfigDict()
    f.mode = "full"  # linear | partial | full | lora | adalora | adapter
    f.task = "classification"  # or "regression" (MSE on batch "target", else "label")
    f.num_outputs = 1  # regression outputs; classification uses the dataset's classes
    f.feature = "pooled"  # encoder feature the head reads
    f.head_hidden_dims = ()  # () = linear head; else an MLP head
    f.label_fraction = 1.0  # e.g. 0.01 / 0.1: deterministic, class-balanced subset
    f.label_seed = 0
    f.label_smoothing = 0.0
    f.l1 = 0.0  # l1 * sum |w| over trainable kernels, added to the loss
    f.l2 = 0.0  # l2 / 2 * sum w^2 (decoupled decay is optimizer.weight_decay)
    f.train_augment = True  # one augmented view per example (config.augment) while training
    f.update_batch_stats = True  # False: BatchNorm keeps its pre-trained running statistics
    f.trainable_blocks = 1  # partial: the last N blocks (+ post-block norms + head) train
    f.layer_decay = 1.0  # < 1: lr * decay^(L + 1 - depth) (BEiT / MAE fine-tuning)
    f.rules = ()  # ((regex on "encoder/...", "frozen" | lr multiplier), ...): first match wins
    f.lora = ml_collections.ConfigDict()
    f.lora.rank = 4
    f.lora.alpha = 8.0  # updates are scaled by alpha / rank
    f.lora.target_patterns = (r"kernel$",)  # regexes on encoder kernel paths
    # AdaLoRA (Zhang et al. 2023; jaxssl/finetune/adalora.py): W + alpha/init_rank P diag(lam) Q.
    f.adalora = ml_collections.ConfigDict()
    f.adalora.init_rank = 6  # r per matrix at the start: budget b0 = init_rank * matrices
    f.adalora.target_rank = 4  # average final rank: budget b_T = target_rank * matrices
    f.adalora.alpha = 8.0  # updates are scaled by alpha / init_rank
    f.adalora.target_patterns = ()  # () = finetune.lora.target_patterns
    f.adalora.warmup_fraction = 0.1  # t_i / total_steps: no pruning before
    f.adalora.final_fraction = 0.3  # t_f / total_steps: the last steps run at b_T, mask frozen
    f.adalora.delta_t = 10  # prune every delta_t steps in between (cubic budget)
    f.adalora.beta1 = 0.85  # EMA of the sensitivity |theta * grad| (paper)
    f.adalora.beta2 = 0.85  # EMA of its uncertainty (paper)
    f.adalora.orth_weight = 0.1  # gamma of the orthogonality regulariser
    f.adapter = ml_collections.ConfigDict()
    f.adapter.bottleneck = 16
    f.adapter.target_patterns = (r"stage\d+_block\d+", r"transformer/block\d+")  # module paths
    return f
