"""jaxssl vs PyTorch on the CPU: two reference workloads, both sides alternated in one run.

PyTorch is a benchmark-only extra (`pip install -e .[bench]`: torch==2.13.0 CPU build), never a
dependency of jaxssl. torch runs eagerly (no torch.compile), with torch.set_num_threads(--threads,
default: the core count); jax on one CPU device (XLA_FLAGS device count 1, plus --xla-flags).

Parts (--parts, comma-separated; default clm_step,simclr_step,clm_run):
  clm_step     the causal-LM train step at nanoGPT's small CPU shape (4 layers, 4 heads, width
               128, context 64, batch 12, AdamW lr 1e-3 with clipping, no dropout, tied output):
               jaxssl = configs/causal_lm_pydoc.py with dataset.name=text:tiny-shakespeare
               through the job's own parts and step (throughput.build_step) on a 1-device
               mesh; torch = the same pre-LN GPT (F.scaled_dot_product_attention, tanh GELU,
               LayerNorm eps 1e-6) started from jaxssl's initial weights, same optimizer, same
               token batches (so the first-step losses must agree; printed as a check).
  simclr_step  SimCLR with ResNet-18 (CIFAR stem), batch 128 uint8 32x32 images = 256 views,
               augmentation inside the step: jaxssl = configs/simclr_cifar10_resnet18.py (online
               probe off); torch = same network, projection head and NT-Xent, the SimCLR CIFAR
               augmentations written with batched tensor ops (affine_grid/grid_sample crop,
               flip, colour jitter in random order with an HSV round trip, grayscale).
               Optimizer on both sides: --simclr-optimizer sgd (default: SGD, momentum 0.9,
               Nesterov, weight decay on kernels; jaxssl --config.optimizer.name=sgd) or lars
               (optax.lars on jaxssl, the same update written by hand in torch).
               --simclr-ynn-convs adds a third side: the jaxssl step compiled with its
               convolutions on YNNPACK (XLA:CPU's own default in jax 0.10.2; jaxssl keeps them
               on Eigen, jaxssl/train/xla_cpu.py).
  clm_run      a whole N-step run (--run-steps, default 2000) as a subprocess, so start-up,
               compilation, data preparation, checkpoints (every 1000 steps and at the end)
               and the final held-out evaluation count: jaxssl = `python -m jaxssl.main
               --config configs/causal_lm_pydoc.py --config.dataset.name=text:...`; torch =
               this script's --torch-run mode (same model, optimizer, schedule, data split and
               held-out windows). Both print their held-out loss (nats/char). --run-cache
               cold (default): jaxssl compiles into an empty compilation-cache folder, as a
               new config's first run does; default: jaxssl's own cache folder, warm from the
               second time this part runs (what a rerun or resume of the same config pays).
  conv         (exploration, not in the default) fwd+bwd of one 3x3 conv per ResNet-18 stage at
               2 x --simclr-batch views: jax NHWC (YNNPACK and Eigen convolutions) and NCHW,
               torch NCHW and channels_last, and forward + weight gradient alone; the bare
               ResNet-18 encoder fwd+bwd on float views and the augmentation alone, both
               sides; and where XLA placed the encoder's convolutions (optimized HLO).

Allocators: by default (--malloc own) each side runs as its users run it, as in clm_run:
jaxssl in this process with the setting importing it applies on a CPU-only host
(jaxssl/train/xla_cpu.py: one arena, buffers kept in the heap), torch in a child process on the
system malloc, the rounds still alternating (the idle side waits on a pipe; the child times its
own rounds). --malloc system or heap runs both sides in this process on that one setting
(torch's convolutions gain from the heap setting too). JAXSSL_SYSTEM_MALLOC=1 in the
environment turns jaxssl's setting off.

Step timings: after a compile/warm-up step, rounds alternate jax, torch, jax, torch ...; a
round times --clm-block steps (one dispatch stream, one sync at the end) for the LM and one
step for SimCLR; medians over --steps rounds. Process CPU times are printed too (a hint on a
busy machine, where OpenMP threads stall: there compare one core each with `taskset -c 1 ...
--threads 1`). Last two lines (PyTorch time / jaxssl time; > 1: jaxssl faster):
  cpu_ratios: clm_step=X clm_run=Y simclr_step=Z
  ratios: clm_step=X clm_run=Y simclr_step=Z

  python benchmarks/vs_pytorch.py                               # full measurement (idle machine)
  python benchmarks/vs_pytorch.py --steps 2 --run-steps 20 --simclr-batch 16   # smoke test
  python benchmarks/vs_pytorch.py --parts conv --xla-flags="--xla_cpu_enable_fast_math=true"
"""

import argparse
import json
import math
import os
import pathlib
import re
import shutil
import subprocess
import sys
import tempfile
import time

import numpy as np

ROOT = pathlib.Path(__file__).resolve().parents[1]
SHAKESPEARE = ROOT.parent / "shared" / "data" / "tinyshakespeare" / "input.txt"
CIFAR = ROOT.parent / "shared" / "data" / "cifar10" / "cifar10_train_subset_10k.npz"
PARTS = ("clm_step", "simclr_step", "clm_run", "conv")
# jaxssl/train/xla_cpu.py's opt-out, as the user's environment had it (clm_run's jaxssl process
# gets it back; this process may set it for the step parts).
SYSTEM_MALLOC = "JAXSSL_SYSTEM_MALLOC"
USER_SYSTEM_MALLOC = os.environ.get(SYSTEM_MALLOC)

# Byte tokenizer of jaxssl/data/tokenizers.py: 6 special ids first, then the 256 bytes.
NUM_SPECIAL, EOS_ID, VOCAB = 6, 5, 262
# XLA:CPU in jax 0.10.2 sends convolutions (and reductions) to YNNPACK fusions by default;
# importing jaxssl sets XLA_FLAGS --xla_cpu_experimental_ynn_fusion_type=reduce (YNNPACK for
# reductions only, convolutions on Eigen: jaxssl/train/xla_cpu.py). This per-compile option
# (compiler_options want enum names) puts XLA's own default back for comparison.
YNN_CONV = {
    "xla_cpu_experimental_ynn_fusion_type": (
        "LIBRARY_FUSION_TYPE_INDIVIDUAL_CONVOLUTION,LIBRARY_FUSION_TYPE_REDUCE"
    )
}


# ------------------------------------------------------------------ shared helpers


def xla_env(extra_flags: str) -> str:
    """XLA_FLAGS for the jax side: the caller's flags, one CPU device, then --xla-flags."""
    flags = os.environ.get("XLA_FLAGS", "")
    flags = re.sub(r"--xla_force_host_platform_device_count=\S+", "", flags)
    return " ".join(f"{flags} --xla_force_host_platform_device_count=1 {extra_flags}".split())


def median(xs: list[float]) -> float:
    return float(np.median(xs)) if xs else float("nan")


def fmt_ms(xs: list[float], cpu: list[float]) -> str:
    all_ms = [round(x * 1e3, 1) for x in xs]
    return f"{median(xs) * 1e3:.1f} ms (all: {all_ms}; process CPU {median(cpu) * 1e3:.1f} ms)"


def timed(fn, *args) -> tuple[float, float, object]:
    """(wall seconds, process CPU seconds of all threads, result) of fn(*args)."""
    wall, cpu = time.perf_counter(), time.process_time()
    result = fn(*args)
    return time.perf_counter() - wall, time.process_time() - cpu, result


SIDE = "TORCH_SIDE "  # prefix of the child's report lines on its stdout


class TorchProcess:
    """A step part's torch side in a child process, as torch's users run it (the system malloc:
    the child sets jaxssl/train/xla_cpu.py's opt-out before anything imports jaxssl), while the
    jax side stays in this process on jaxssl's own setting. Rounds still alternate: each side
    waits on a pipe while the other runs. The child times its own rounds (wall and process CPU)."""

    def __init__(self, args, part: str, arrays: dict[str, np.ndarray]):
        """arrays: what the child builds its side from (an .npz it reads, removed after)."""
        tmp = pathlib.Path(tempfile.mkdtemp(prefix="vs_pytorch_"))
        spec = tmp / f"{part}.npz"
        np.savez(spec, **arrays)
        cmd = [sys.executable, str(pathlib.Path(__file__).resolve()), "--torch-side", part]
        cmd += ["--side-spec", str(spec), "--threads", str(args.threads), "--text", str(args.text)]
        cmd += ["--run-steps", str(args.run_steps), "--simclr-batch", str(args.simclr_batch)]
        cmd += ["--simclr-optimizer", args.simclr_optimizer, "--cifar", str(args.cifar)]
        cmd += ["--torch-channels-last"] if args.torch_channels_last else []
        env = dict(os.environ, **{SYSTEM_MALLOC: "1"})
        self.part = part
        self.proc = subprocess.Popen(
            cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env
        )
        try:
            self.first = self._report()  # {"seconds", "loss"} of set-up + the first step
        finally:
            shutil.rmtree(tmp)

    def _report(self) -> dict:
        for line in self.proc.stdout:
            if line.startswith(SIDE):
                return json.loads(line[len(SIDE) :])
            print(line, end="")  # anything else the child printed
        raise SystemExit(f"{self.part}: the torch process exited (rc {self.proc.wait()})")

    def round(self, steps: int) -> tuple[float, float, float]:
        """(wall, process CPU, loss) of `steps` torch steps, timed in the child."""
        self.proc.stdin.write(f"{steps}\n")
        self.proc.stdin.flush()
        r = self._report()
        return r["wall"], r["cpu"], r["loss"]

    def close(self) -> None:
        self.proc.stdin.close()
        self.proc.wait()


def torch_side(args) -> None:
    """--torch-side PART: build PART's torch side from --side-spec, report its first step, then
    run one round per line read from stdin (a step count) and report its times."""
    spec = np.load(args.side_spec)
    if args.torch_side == "clm_step":
        config = clm_config(args.text, args.run_steps)
        from flax import traverse_util

        flat = {k.removeprefix("params/"): spec[k] for k in spec.files if "/" in k}
        params = traverse_util.unflatten_dict(flat, sep="/")
        run = clm_torch_side(args, config, params, spec["tokens"])
    else:
        one_step = simclr_torch_side(args, simclr_config(args), spec["images"])

        def run(steps):
            return [one_step() for _ in range(steps)][-1]

    wall, _, loss = timed(run, 1)
    print(SIDE + json.dumps({"seconds": wall, "loss": loss}), flush=True)
    for line in sys.stdin:
        wall, cpu, loss = timed(run, int(line))
        print(SIDE + json.dumps({"wall": wall, "cpu": cpu, "loss": loss}), flush=True)


def warmup_cosine(step: int, peak: float, warmup: int, total: int, end_fraction: float) -> float:
    """optax.warmup_cosine_decay_schedule(0, peak, warmup, total, peak * end_fraction)(step)."""
    if warmup > 0 and step < warmup:
        return peak * step / warmup
    frac = min(max(step - warmup, 0) / max(total - warmup, 1), 1.0)
    end = peak * end_fraction
    return end + (peak - end) * 0.5 * (1 + math.cos(math.pi * frac))


def compiled(fn, args: tuple, options: dict | None):
    """fn (jitted) compiled for args, with XLA debug options for this executable only."""
    return fn.lower(*args).compile(compiler_options=options) if options else fn


def load_config(name: str, overrides: dict):
    """configs/NAME.py with dotted-key overrides, through jaxssl's checked loader (a key that
    does not exist is an error, not a silently ignored setting)."""
    from jaxssl import api

    return api.load_config(str(ROOT / "configs" / f"{name}.py"), overrides)


def byte_stream(text: str) -> np.ndarray:
    """jaxssl's packed stream of one document: its UTF-8 bytes + 6, then [EOS]."""
    ids = np.frombuffer(text.encode("utf-8"), np.uint8).astype(np.int64) + NUM_SPECIAL
    return np.concatenate([ids, [EOS_ID]])


def text_split(path: pathlib.Path) -> tuple[np.ndarray, np.ndarray]:
    """(train, validation) streams as jaxssl's text: dataset: first 90% of characters / rest."""
    text = path.read_text(encoding="utf-8")
    cut = int(len(text) * 0.9)
    return byte_stream(text[:cut]), byte_stream(text[cut:])


# ------------------------------------------------------------------ torch models


def torch_modules():
    """The torch classes, built on first use so --help works without torch installed."""
    import torch
    import torch.nn.functional as F
    from torch import nn

    class Block(nn.Module):
        """x + Attn(LN(x)); x + MLP(LN(x)), as jaxssl/models/transformer.py's Block."""

        def __init__(self, width: int, heads: int, mlp: int):
            super().__init__()
            self.heads = heads
            self.ln_attn = nn.LayerNorm(width, eps=1e-6)
            self.qkv = nn.Linear(width, 3 * width)
            self.out = nn.Linear(width, width)
            self.ln_mlp = nn.LayerNorm(width, eps=1e-6)
            self.mlp_in = nn.Linear(width, mlp)
            self.mlp_out = nn.Linear(mlp, width)

        def forward(self, x):
            b, t, d = x.shape
            qkv = self.qkv(self.ln_attn(x)).view(b, t, 3, self.heads, d // self.heads)
            q, k, v = qkv.permute(2, 0, 3, 1, 4)
            att = F.scaled_dot_product_attention(q, k, v, is_causal=True)
            x = x + self.out(att.transpose(1, 2).reshape(b, t, d))
            return x + self.mlp_out(F.gelu(self.mlp_in(self.ln_mlp(x)), approximate="tanh"))

    class GPT(nn.Module):
        """Token + learned position embeddings, pre-LN blocks, final LN, tied (or not) output."""

        def __init__(self, vocab, width, depth, heads, mlp, max_len, tie):
            super().__init__()
            self.embed = nn.Embedding(vocab, width)
            self.pos_embed = nn.Parameter(torch.zeros(max_len, width))
            self.blocks = nn.ModuleList(Block(width, heads, mlp) for _ in range(depth))
            self.ln_final = nn.LayerNorm(width, eps=1e-6)
            self.tie = tie
            if tie:
                self.out_bias = nn.Parameter(torch.zeros(vocab))
            else:
                self.out = nn.Linear(width, vocab)
            # jaxssl's initialisation: N(0, 0.02) embeddings, lecun-normal kernels, zero biases.
            for name, p in self.named_parameters():
                if name in ("embed.weight", "pos_embed", "out.weight"):
                    nn.init.normal_(p, std=0.02)
                elif name.endswith("weight") and p.ndim == 2:
                    std = (1 / p.shape[1]) ** 0.5 / 0.87962566103423978
                    nn.init.trunc_normal_(p, std=std, a=-2 * std, b=2 * std)
                elif name.endswith("bias") or name == "out_bias":
                    nn.init.zeros_(p)

        def forward(self, idx):
            h = self.embed(idx) + self.pos_embed[: idx.shape[1]]
            for blk in self.blocks:
                h = blk(h)
            h = self.ln_final(h)
            if self.tie:
                return h @ self.embed.weight.T + self.out_bias
            return self.out(h)

    def bn2d(c, zero=False):
        bn = nn.BatchNorm2d(c, eps=1e-5, momentum=0.1)  # = flax momentum 0.9
        if zero:
            nn.init.zeros_(bn.weight)
        return bn

    def conv(cin, cout, k, stride):
        c = nn.Conv2d(cin, cout, k, stride, padding=k // 2, bias=False)
        nn.init.kaiming_normal_(c.weight, mode="fan_out", nonlinearity="relu")
        return c

    class BasicBlock(nn.Module):
        def __init__(self, cin, cout, stride):
            super().__init__()
            self.conv1, self.bn1 = conv(cin, cout, 3, stride), bn2d(cout)
            self.conv2, self.bn2 = conv(cout, cout, 3, 1), bn2d(cout, zero=True)
            self.proj = None
            if cin != cout or stride != 1:
                self.proj = nn.Sequential(conv(cin, cout, 1, stride), bn2d(cout))

        def forward(self, x):
            y = F.relu(self.bn1(self.conv1(x)))
            y = self.bn2(self.conv2(y))
            return F.relu(y + (x if self.proj is None else self.proj(x)))

    class ResNet18Cifar(nn.Module):
        """3x3 stride-1 stem, no max-pool, [2, 2, 2, 2] basic blocks, global average pool."""

        def __init__(self):
            super().__init__()
            self.stem = nn.Sequential(conv(3, 64, 3, 1), bn2d(64), nn.ReLU())
            blocks, cin = [], 64
            for i, cout in enumerate((64, 128, 256, 512)):
                for j in range(2):
                    blocks.append(BasicBlock(cin, cout, 2 if i > 0 and j == 0 else 1))
                    cin = cout
            self.blocks = nn.Sequential(*blocks)

        def forward(self, x):
            return self.blocks(self.stem(x)).mean(dim=(2, 3))

    class ProjectionHead(nn.Module):
        """jaxssl's MLPHead(use_bn, last_bn): Dense-BN-ReLU per hidden, Dense, BN (no beta)."""

        def __init__(self, din, hidden, out):
            super().__init__()
            layers = []
            for h in hidden:
                layers += [nn.Linear(din, h, bias=False), nn.BatchNorm1d(h), nn.ReLU()]
                din = h
            self.mlp = nn.Sequential(*layers, nn.Linear(din, out, bias=False))
            self.out_bn = nn.BatchNorm1d(out)
            self.out_bn.bias.requires_grad_(False)  # center=False: beta stays 0

        def forward(self, x):
            return self.out_bn(self.mlp(x))

    return GPT, ResNet18Cifar, ProjectionHead


def torch_setup(threads: int):
    import torch

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    return torch


def torch_adamw(torch, model, opt_cfg):
    """AdamW as jaxssl's optimizer: decay on >= 2-D params, betas (b1, b2), eps 1e-8."""
    decay = [p for p in model.parameters() if p.requires_grad and p.ndim > 1]
    rest = [p for p in model.parameters() if p.requires_grad and p.ndim <= 1]
    groups = [
        {"params": decay, "weight_decay": opt_cfg.weight_decay},
        {"params": rest, "weight_decay": 0.0},
    ]
    betas = (opt_cfg.get("b1", 0.9), opt_cfg.get("b2", 0.999))
    try:  # the fused CPU kernel is the fastest torch AdamW
        return torch.optim.AdamW(groups, lr=opt_cfg.learning_rate, betas=betas, fused=True)
    except (RuntimeError, TypeError):
        return torch.optim.AdamW(groups, lr=opt_cfg.learning_rate, betas=betas, foreach=True)


def torch_lr_scheduler(torch, opt, opt_cfg, total_steps):
    peak = opt_cfg.learning_rate
    warmup = min(opt_cfg.warmup_steps, max(total_steps - 1, 0))
    end = opt_cfg.get("end_lr_fraction", 0.0)

    def factor(step):
        return warmup_cosine(step, peak, warmup, total_steps, end) / peak

    return torch.optim.lr_scheduler.LambdaLR(opt, factor)


def clm_torch_step_fn(torch, model, opt, sched, clip: float):
    import torch.nn.functional as F

    params = [p for p in model.parameters() if p.requires_grad]

    def step(x, y):
        logits = model(x)
        loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if clip:
            torch.nn.utils.clip_grad_norm_(params, clip, foreach=True)
        opt.step()
        sched.step()
        return loss

    return step


def build_gpt(torch, model_cfg):
    GPT, _, _ = torch_modules()
    width = model_cfg.get("width", 128)
    depth = model_cfg.get("depth", 4)
    heads = model_cfg.get("num_heads", 4)
    mlp = model_cfg.get("mlp_dim", 512)
    if model_cfg.name != "transformer_tiny" and "width" not in model_cfg:
        raise SystemExit(f"only transformer_tiny is mirrored in torch, got {model_cfg.name}")
    return GPT(
        model_cfg.vocab_size, width, depth, heads, mlp, model_cfg.max_len, model_cfg.tie_embeddings
    )


def load_flax_gpt(torch, model, params) -> None:
    """Copies jaxssl's Transformer params (numpy tree under "encoder") into the torch GPT."""
    enc = params["encoder"]
    sd = {"embed.weight": enc["embed"]["embedding"], "pos_embed": enc["pos_embed"]}
    sd["ln_final.weight"], sd["ln_final.bias"] = enc["ln_final"]["scale"], enc["ln_final"]["bias"]
    if "out_bias" in enc:
        sd["out_bias"] = enc["out_bias"]
    else:
        sd["out.weight"], sd["out.bias"] = enc["out"]["kernel"].T, enc["out"]["bias"]
    for i in range(len(model.blocks)):
        b, pre = enc[f"block{i}"], f"blocks.{i}."
        d = b["qkv"]["kernel"].shape[0]
        sd[pre + "qkv.weight"] = b["qkv"]["kernel"].reshape(d, -1).T
        sd[pre + "qkv.bias"] = b["qkv"]["bias"].reshape(-1)
        sd[pre + "out.weight"] = b["out"]["kernel"].reshape(-1, d).T
        sd[pre + "out.bias"] = b["out"]["bias"]
        for ln in ("ln_attn", "ln_mlp"):
            sd[pre + ln + ".weight"], sd[pre + ln + ".bias"] = b[ln]["scale"], b[ln]["bias"]
        for dense in ("mlp_in", "mlp_out"):
            sd[pre + dense + ".weight"] = b[dense]["kernel"].T
            sd[pre + dense + ".bias"] = b[dense]["bias"]
    state = {k: torch.from_numpy(np.array(v, np.float32)) for k, v in sd.items()}
    model.load_state_dict(state, strict=True)


# ------------------------------------------------------------------ torch augmentation


def torch_views(torch, images, cfg, gen, channels_last: bool):
    """SimCLR views of uint8 NHWC images: 2N normalized float NCHW, batched tensor ops.

    The same recipe and order as jaxssl/augment/views.py: Inception crop (10 tries, torchvision
    fallback) resized with bilinear sampling, flip, colour jitter (brightness, contrast,
    saturation, hue in a random order per view, each stage one HSV round trip), grayscale,
    per-channel normalization.
    """
    import torch.nn.functional as F

    def u(*shape):
        return torch.rand(*shape, generator=gen)

    def per(t):  # [n] -> [n, 1, 1, 1]
        return t[:, None, None, None]

    x = images.permute(0, 3, 1, 2).float().div(255.0).repeat(2, 1, 1, 1)
    n, c, h, w = x.shape
    size = cfg.image_size
    # Random resized crop.
    lo, hi = cfg.crop_scale
    r0, r1 = math.log(cfg.crop_ratio[0]), math.log(cfg.crop_ratio[1])
    area = (u(n, 10) * (hi - lo) + lo) * (h * w)
    aspect = torch.exp(u(n, 10) * (r1 - r0) + r0)
    bw, bh = torch.sqrt(area * aspect), torch.sqrt(area / aspect)
    fits = (bw <= w * (1 + 1e-5)) & (bh <= h * (1 + 1e-5))
    first = fits.float().argmax(1, keepdim=True)
    ok = fits.any(1)
    bh = torch.where(ok, bh.gather(1, first)[:, 0], torch.full((n,), float(h))).clamp(max=h)
    bw = torch.where(ok, bw.gather(1, first)[:, 0], torch.full((n,), float(w))).clamp(max=w)
    top, left = u(n) * (h - bh), u(n) * (w - bw)
    theta = torch.zeros(n, 2, 3)
    theta[:, 0, 0], theta[:, 0, 2] = bw / w, (2 * left + bw) / w - 1
    theta[:, 1, 1], theta[:, 1, 2] = bh / h, (2 * top + bh) / h - 1
    grid = F.affine_grid(theta, (n, c, size, size), align_corners=False)
    x = F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)
    x = x.clamp(0.0, 1.0)
    # Flip.
    if cfg.flip_prob > 0:
        x = torch.where(per(u(n) < cfg.flip_prob), x.flip(-1), x)
    # Colour jitter, random order per view.
    if cfg.jitter_prob > 0:
        b = (u(n) * 2 - 1) * cfg.brightness
        con = max(0.0, 1 - cfg.contrast) + u(n) * (1 + cfg.contrast - max(0.0, 1 - cfg.contrast))
        sat = max(0.0, 1 - cfg.saturation) + u(n) * (
            1 + cfg.saturation - max(0.0, 1 - cfg.saturation)
        )
        hue = (u(n) * 2 - 1) * cfg.hue
        order = torch.argsort(u(n, 4), dim=1)
        y = x
        for i in range(4):
            op = order[:, i]
            affine = torch.where(
                per(op == 0),
                y + per(b),
                (y - y.mean(dim=(2, 3), keepdim=True)) * per(con)
                + y.mean(dim=(2, 3), keepdim=True),
            )
            hh, ss, vv = rgb_to_hsv(torch, y)
            hh = torch.where(per(op == 3)[:, 0], (hh + per(hue)[:, 0]) % 1.0, hh)
            ss = torch.where(per(op == 2)[:, 0], (ss * per(sat)[:, 0]).clamp(0.0, 1.0), ss)
            y = torch.where(per(op < 2), affine, hsv_to_rgb(torch, hh, ss, vv)).clamp(0.0, 1.0)
        x = torch.where(per(u(n) < cfg.jitter_prob), y, x)
    # Grayscale.
    if cfg.grayscale_prob > 0:
        luma = 0.2989 * x[:, 0:1] + 0.5870 * x[:, 1:2] + 0.1140 * x[:, 2:3]
        x = torch.where(per(u(n) < cfg.grayscale_prob), luma.expand_as(x), x)
    mean = torch.tensor(cfg.mean).view(1, -1, 1, 1)
    std = torch.tensor(cfg.std).view(1, -1, 1, 1)
    x = (x - mean) / std
    return x.contiguous(memory_format=torch.channels_last) if channels_last else x


def rgb_to_hsv(torch, x):
    """NCHW RGB in [0, 1] -> (hue, saturation, value), each [N, H, W]."""
    r, g, b = x[:, 0], x[:, 1], x[:, 2]
    maxc, minc = x.amax(1), x.amin(1)
    delta = maxc - minc
    safe = torch.where(delta > 0, delta, torch.ones_like(delta))
    s = torch.where(maxc > 0, delta / torch.where(maxc > 0, maxc, torch.ones_like(maxc)), 0.0)
    rc, gc, bc = (maxc - r) / safe, (maxc - g) / safe, (maxc - b) / safe
    h = torch.where(r == maxc, bc - gc, torch.where(g == maxc, 2.0 + rc - bc, 4.0 + gc - rc))
    h = torch.where(delta > 0, (h / 6.0) % 1.0, torch.zeros_like(h))
    return h, s, maxc


def hsv_to_rgb(torch, h, s, v):
    def channel(n):
        k = (n + h * 6.0) % 6.0
        return v - v * s * torch.clamp(torch.minimum(k, 4.0 - k), 0.0, 1.0)

    return torch.stack([channel(5.0), channel(3.0), channel(1.0)], dim=1)


def torch_nt_xent(torch, z1, z2, temperature):
    import torch.nn.functional as F

    n = z1.shape[0]
    z = F.normalize(torch.cat([z1, z2]), dim=1)
    logits = (z @ z.T) / temperature
    logits = logits.masked_fill(torch.eye(2 * n, dtype=torch.bool), -1e9)
    positive = torch.cat([torch.arange(n, 2 * n), torch.arange(n)])
    return F.cross_entropy(logits, positive)


class TorchLars:
    """optax.lars(lr, weight_decay, masks on >= 2-D params, trust 0.001, momentum 0.9)."""

    def __init__(self, torch, params, weight_decay, momentum=0.9, trust=0.001):
        self.torch, self.params = torch, [p for p in params if p.requires_grad]
        self.wd, self.m, self.trust = weight_decay, momentum, trust
        self.bufs = [torch.zeros_like(p) for p in self.params]

    def zero_grad(self):
        for p in self.params:
            p.grad = None

    def step(self, lr):
        torch = self.torch
        with torch.no_grad():
            for p, buf in zip(self.params, self.bufs, strict=True):
                g = p.grad
                if p.ndim > 1:
                    g = g + self.wd * p
                    pn, gn = torch.linalg.vector_norm(p), torch.linalg.vector_norm(g)
                    ratio = torch.where((pn > 0) & (gn > 0), self.trust * pn / gn, 1.0)
                    g = g * ratio
                buf.mul_(self.m).add_(g, alpha=-lr)
                p.add_(buf)


# ------------------------------------------------------------------ part: clm_step


def clm_config(path: pathlib.Path, total_steps: int):
    return load_config(
        "causal_lm_pydoc", {"dataset.name": f"text:{path}", "total_steps": total_steps}
    )


def clm_torch_side(args, config, params: dict, tokens: np.ndarray):
    """run(n) -> loss after n torch LM steps from jaxssl's initial params (a numpy tree), on the
    token batches [k, batch, seq_len] in turn."""
    import torch

    torch_setup(args.threads)
    opt = config.optimizer
    model = build_gpt(torch, config.model)
    load_flax_gpt(torch, model, params)
    model.train()
    topt = torch_adamw(torch, model, opt)
    sched = torch_lr_scheduler(torch, topt, opt, config.total_steps)
    tstep = clm_torch_step_fn(torch, model, topt, sched, opt.get("grad_clip_norm", 0.0))
    tb = [torch.from_numpy(t.astype(np.int64)) for t in tokens]
    tb = [(t[:, :-1].contiguous(), t[:, 1:].contiguous()) for t in tb]

    def run(n):
        loss = None
        for i in range(n):
            loss = tstep(*tb[i % len(tb)])
        return loss.item()

    return run


def part_clm_step(args) -> tuple[float, float]:
    import jax

    from jaxssl import sharding as mesh_lib
    from jaxssl.data import pipeline, sources
    from jaxssl.train import precision

    config = precision.with_precision(clm_config(args.text, args.run_steps))
    block = args.clm_block
    source = sources.get_source(config.dataset, "train")
    it = pipeline.train_iterator(source, global_batch_size=config.batch_size, seed=0)
    host = [next(it) for _ in range(block)]

    # jaxssl side.
    mesh = mesh_lib.make_mesh(jax.devices()[:1])
    from throughput import build_step  # here: the --torch-run process never imports jax

    _, state, step = build_step(config, mesh)
    init_params = jax.device_get(state.params)
    glob = [mesh_lib.to_global_batch(b, mesh) for b in host]
    holder = {"state": state}

    def run_jax(n):
        metrics = None
        for i in range(n):
            holder["state"], metrics = step(holder["state"], glob[i % len(glob)])
        return float(jax.block_until_ready(metrics["loss"]))

    # torch side: the same weights, optimizer and batches.
    batches = np.stack([b["tokens"] for b in host])
    if args.malloc == "own":
        from flax import traverse_util

        params = traverse_util.flatten_dict(init_params, sep="/")
        arrays = {"tokens": batches, **{f"params/{k}": v for k, v in params.items()}}
        side = TorchProcess(args, "clm_step", arrays)

        def torch_round(n):
            return side.round(n)

        t_torch, torch_first = side.first["seconds"], side.first["loss"]
    else:
        run_torch = clm_torch_side(args, config, init_params, batches)

        def torch_round(n):
            return timed(run_torch, n)

        t_torch, _, torch_first = timed(run_torch, 1)
    t_jax, _, jax_first = timed(run_jax, 1)
    print(
        f"clm_step: first step (compile) jax {t_jax:.1f}s, torch {t_torch:.2f}s; first-step loss"
        f" jax {jax_first:.5f} torch {torch_first:.5f} (same weights and batch: should agree)"
    )
    jt, tt, jc, tc = [], [], [], []
    for _ in range(args.steps):
        wall, cpu, _ = timed(run_jax, block)
        jt.append(wall / block)
        jc.append(cpu / block)
        wall, cpu, _ = torch_round(block)
        tt.append(wall / block)
        tc.append(cpu / block)
    if args.malloc == "own":
        side.close()
    tokens = config.batch_size * (config.dataset.seq_len - 1)
    print(f"clm_step jaxssl: {fmt_ms(jt, jc)}, {tokens / median(jt):,.0f} tokens/s")
    print(f"clm_step torch : {fmt_ms(tt, tc)}, {tokens / median(tt):,.0f} tokens/s")
    return median(tt) / median(jt), median(tc) / median(jc)


# ------------------------------------------------------------------ part: simclr_step


def simclr_config(args):
    return load_config(
        "simclr_cifar10_resnet18",
        {
            "batch_size": args.simclr_batch,
            "dataset.name": f"npz:{args.cifar}",
            "method.online_probe": False,
            "optimizer.name": args.simclr_optimizer,
            "total_steps": 1000,
            "optimizer.warmup_steps": 10,
        },
    )


def simclr_torch_side(args, config, images_np):
    """(run_one_step, description) of the torch SimCLR step."""
    import torch

    torch_setup(args.threads)
    _, ResNet18Cifar, ProjectionHead = torch_modules()
    encoder = ResNet18Cifar()
    head = ProjectionHead(512, tuple(config.method.proj_hidden_dims), config.method.proj_dim)
    net = torch.nn.Sequential(encoder, head)
    if args.torch_channels_last:
        net = net.to(memory_format=torch.channels_last)
    net.train()
    opt_cfg = config.optimizer
    from jaxssl.train import optim

    peak = optim.peak_learning_rate(opt_cfg, config.batch_size)
    warmup = min(opt_cfg.warmup_steps, config.total_steps - 1)

    def lr_at(step):
        return warmup_cosine(step, peak, warmup, config.total_steps, 0.0)

    params = list(net.parameters())
    if args.simclr_optimizer == "sgd":
        decay = [p for p in params if p.requires_grad and p.ndim > 1]
        rest = [p for p in params if p.requires_grad and p.ndim <= 1]
        opt = torch.optim.SGD(
            [
                {"params": decay, "weight_decay": opt_cfg.weight_decay},
                {"params": rest, "weight_decay": 0.0},
            ],
            lr=peak,
            momentum=opt_cfg.get("momentum", 0.9),
            nesterov=True,
            foreach=True,
        )
    else:
        opt = TorchLars(torch, params, opt_cfg.weight_decay, opt_cfg.get("momentum", 0.9))
    images = torch.from_numpy(images_np)
    gen = torch.Generator().manual_seed(0)
    counter = {"step": 0}
    temperature = config.method.temperature

    def run():
        lr = lr_at(counter["step"])
        with torch.no_grad():
            x = torch_views(torch, images, config.augment, gen, args.torch_channels_last)
        z = net(x)
        n = images.shape[0]
        loss = torch_nt_xent(torch, z[:n], z[n:], temperature)
        opt.zero_grad()
        loss.backward()
        if isinstance(opt, TorchLars):
            opt.step(lr)
        else:
            for g in opt.param_groups:
                g["lr"] = lr
            opt.step()
        counter["step"] += 1
        return loss.item()

    return run


def simclr_jax_side(config, images_np, options: dict | None = None):
    import jax

    from jaxssl import sharding as mesh_lib
    from jaxssl.train import precision

    config = precision.with_precision(config)
    mesh = mesh_lib.make_mesh(jax.devices()[:1])
    batch = mesh_lib.to_global_batch({"image": images_np}, mesh)
    from throughput import build_step  # here: the --torch-run process never imports jax

    _, state, step = build_step(config, mesh)
    step = compiled(step, (state, batch), options)
    holder = {"state": state}

    def run():
        holder["state"], metrics = step(holder["state"], batch)
        return float(jax.block_until_ready(metrics["loss"]))

    return run


def part_simclr_step(args) -> tuple[float, float]:
    config = simclr_config(args)
    images = np.load(args.cifar)["image"][: args.simclr_batch]

    def here(build):
        """A side run in this process: round() -> (wall, CPU, loss) of one step."""
        step = build()
        return lambda: timed(step)

    def child():
        side = TorchProcess(args, "simclr_step", {"images": images})
        children.append(side)
        return lambda: side.round(1)

    children = []
    builders = {"jaxssl": lambda: here(lambda: simclr_jax_side(config, images))}
    if args.malloc == "own":
        builders["torch"] = child
    else:
        builders["torch"] = lambda: here(lambda: simclr_torch_side(args, config, images))
    if args.simclr_ynn_convs:  # a third side: the same jaxssl step, convolutions on YNNPACK
        builders["jaxssl-ynn-convs"] = lambda: here(
            lambda: simclr_jax_side(config, images, YNN_CONV)
        )
    sides, first = {}, {}
    for name, build in builders.items():
        t = time.perf_counter()
        sides[name] = build()
        loss = sides[name]()[2]
        first[name] = f"{name} {time.perf_counter() - t:.1f}s (loss {loss:.3f})"
    print(
        f"simclr_step: set-up + first step: {', '.join(first.values())}; different inits and"
        f" views: losses near log(2N-1) = {math.log(2 * len(images) - 1):.2f}"
    )
    walls = {name: [] for name in sides}
    cpus = {name: [] for name in sides}
    for _ in range(args.steps):
        for name, round_ in sides.items():
            wall, cpu, _ = round_()
            walls[name].append(wall)
            cpus[name].append(cpu)
    for side in children:
        side.close()
    views = 2 * args.simclr_batch
    opt = args.simclr_optimizer + (", torch channels_last" if args.torch_channels_last else "")
    for name in sides:
        rate = views / median(walls[name])
        print(f"simclr_step {name}: {fmt_ms(walls[name], cpus[name])}, {rate:.1f} views/s [{opt}]")
    if args.simclr_ynn_convs:
        j, y = median(walls["jaxssl"]), median(walls["jaxssl-ynn-convs"])
        print(f"simclr_step: ynn-convs / jaxssl (eigen convs) time ratio {y / j:.3f}")
    jt, tt, jc, tc = walls["jaxssl"], walls["torch"], cpus["jaxssl"], cpus["torch"]
    return median(tt) / median(jt), median(tc) / median(jc)


# ------------------------------------------------------------------ part: clm_run


def clm_settings(config) -> dict:
    """What --torch-run needs from the jaxssl config (passed as JSON: no jaxssl import there)."""
    from jaxssl.models.transformer import PRESETS

    m, o = config.model, config.optimizer
    width, depth, heads, mlp = PRESETS[m.name.removeprefix("transformer_")]
    return {
        "vocab": m.vocab_size,
        "width": m.get("width", width),
        "depth": m.get("depth", depth),
        "heads": m.get("num_heads", heads),
        "mlp": m.get("mlp_dim", mlp),
        "max_len": m.max_len,
        "tie": m.tie_embeddings,
        "seq_len": config.dataset.seq_len,
        "eval_stride": config.dataset.eval_stride,
        "batch": config.batch_size,
        "lr": o.learning_rate,
        "b1": o.get("b1", 0.9),
        "b2": o.get("b2", 0.999),
        "wd": o.weight_decay,
        "warmup": o.warmup_steps,
        "end": o.get("end_lr_fraction", 0.0),
        "clip": o.get("grad_clip_norm", 0.0),
        "log_every": config.log_every,
        "ckpt_every": config.checkpoint_every,
        "eval_batch": config.eval.batch_size,
        "seed": config.seed,
    }


def torch_run(args) -> None:
    """--torch-run: one whole training run + held-out evaluation; prints one JSON line."""
    start = time.time()
    s = json.loads(args.settings)
    torch = torch_setup(args.threads)
    import torch.nn.functional as F

    GPT, _, _ = torch_modules()
    train, val = text_split(pathlib.Path(args.text))
    model = GPT(s["vocab"], s["width"], s["depth"], s["heads"], s["mlp"], s["max_len"], s["tie"])
    decay = [p for p in model.parameters() if p.ndim > 1]
    rest = [p for p in model.parameters() if p.ndim <= 1]
    groups = [{"params": decay, "weight_decay": s["wd"]}, {"params": rest, "weight_decay": 0.0}]
    betas = (s["b1"], s["b2"])
    try:
        opt = torch.optim.AdamW(groups, lr=s["lr"], betas=betas, fused=True)
    except (RuntimeError, TypeError):
        opt = torch.optim.AdamW(groups, lr=s["lr"], betas=betas, foreach=True)
    n = args.run_steps
    warmup = min(s["warmup"], max(n - 1, 0))
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda k: warmup_cosine(k, s["lr"], warmup, n, s["end"]) / s["lr"]
    )
    step = clm_torch_step_fn(torch, model, opt, sched, s["clip"])
    seq = s["seq_len"]
    # Random windows of seq tokens (inputs + shifted targets) at any offset, as train_stride 1.
    windows = np.lib.stride_tricks.sliding_window_view(train, seq)
    rng = np.random.default_rng(s["seed"])
    workdir = pathlib.Path(args.workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    model.train()
    train_start = time.time()
    for k in range(1, n + 1):
        batch = torch.from_numpy(windows[rng.integers(0, len(windows), s["batch"])])
        loss = step(batch[:, :-1], batch[:, 1:])
        if k % s["log_every"] == 0 or k == n:
            print(f"step {k}: loss {loss.item():.4f}", flush=True)
        if k % s["ckpt_every"] == 0 or k == n:
            ckpt = {"model": model.state_dict(), "opt": opt.state_dict(), "step": k}
            torch.save(ckpt, workdir / f"ckpt_{k}.pt")
    train_time = time.time() - train_start
    # Held-out: windows every eval_stride tokens, the last one padded (jaxssl's WindowSource).
    eval_start = time.time()
    model.eval()
    stride = s["eval_stride"]
    count_windows = 1 if len(val) <= seq else -(-(len(val) - seq) // stride) + 1
    records = np.zeros((count_windows, seq), np.int64)
    lengths = np.zeros(count_windows, np.int64)
    for i in range(count_windows):
        piece = val[i * stride : i * stride + seq]
        records[i, : len(piece)], lengths[i] = piece, len(piece)
    nll, count = 0.0, 0.0
    with torch.no_grad():
        for i in range(0, count_windows, s["eval_batch"]):
            tokens = torch.from_numpy(records[i : i + s["eval_batch"]])
            valid = (
                torch.arange(1, seq)[None]
                < torch.from_numpy(lengths[i : i + s["eval_batch"]])[:, None]
            )
            logits = model(tokens[:, :-1])
            ce = F.cross_entropy(logits.transpose(1, 2), tokens[:, 1:], reduction="none")
            nll += float((ce * valid).sum())
            count += float(valid.sum())
    summary = {
        "eval_loss": nll / count,
        "eval_tokens": int(count),
        "train_wall_time_s": train_time,
        "eval_wall_time_s": time.time() - eval_start,
        "in_process_wall_time_s": time.time() - start,
    }
    print("TORCH_SUMMARY " + json.dumps(summary), flush=True)


def run_timed(cmd: list[str], env: dict, log: pathlib.Path) -> tuple[float, float]:
    """(wall, CPU seconds of the child) of a subprocess; its output goes to `log`."""
    import resource

    def child_cpu():
        r = resource.getrusage(resource.RUSAGE_CHILDREN)
        return r.ru_utime + r.ru_stime

    t, c = time.perf_counter(), child_cpu()
    with open(log, "w") as f:
        proc = subprocess.run(cmd, cwd=ROOT, env=env, stdout=f, stderr=subprocess.STDOUT)
    wall, cpu = time.perf_counter() - t, child_cpu() - c
    if proc.returncode:
        tail = log.read_text()[-3000:]
        raise SystemExit(f"failed ({proc.returncode}): {' '.join(cmd)}\n{tail}")
    return wall, cpu


def part_clm_run(args) -> tuple[float, float]:
    n = args.run_steps
    config = clm_config(args.text, n)
    settings = json.dumps(clm_settings(config))
    env = dict(os.environ, XLA_FLAGS=xla_env(args.xla_flags), PYTHONPATH=str(ROOT))
    env.pop(SYSTEM_MALLOC, None)  # each side's allocator as its users run it
    if USER_SYSTEM_MALLOC is not None:
        env[SYSTEM_MALLOC] = USER_SYSTEM_MALLOC
    tmp = pathlib.Path(tempfile.mkdtemp(prefix="vs_pytorch_"))
    jt, tt, jc, tc = [], [], [], []
    try:
        for r in range(args.run_repeats):
            jdir, tdir = tmp / f"jax{r}", tmp / f"torch{r}"
            jax_cmd = [
                sys.executable,
                "-m",
                "jaxssl.main",
                "--config",
                "configs/causal_lm_pydoc.py",
                "--workdir",
                str(jdir),
                f"--config.dataset.name=text:{args.text}",
                f"--config.total_steps={n}",
            ]
            if args.run_cache == "cold":
                jax_cmd.append(f"--config.compile_cache_dir={tmp / f'cache{r}'}")
            torch_cmd = [
                sys.executable,
                str(pathlib.Path(__file__).resolve()),
                "--torch-run",
                "--run-steps",
                str(n),
                "--workdir",
                str(tdir),
                "--threads",
                str(args.threads),
                "--text",
                str(args.text),
                "--settings",
                settings,
            ]
            wall, cpu = run_timed(jax_cmd, env, tmp / f"jax{r}.log")
            jt.append(wall)
            jc.append(cpu)
            js = json.loads((jdir / "summary.json").read_text())
            print(
                f"clm_run jaxssl #{r}: {jt[-1]:.1f}s wall, {jc[-1]:.1f}s CPU"
                f" (train {js['train_wall_time_s']:.1f}s"
                f", eval {js['eval_wall_time_s']:.1f}s), held-out"
                f" {js['eval_loss']:.4f} nats/char over {js['eval_tokens']} targets",
                flush=True,
            )
            wall, cpu = run_timed(torch_cmd, env, tmp / f"torch{r}.log")
            tt.append(wall)
            tc.append(cpu)
            line = [x for x in (tmp / f"torch{r}.log").read_text().splitlines() if "SUMMARY" in x]
            ts = json.loads(line[-1].split(" ", 1)[1])
            print(
                f"clm_run torch  #{r}: {tt[-1]:.1f}s wall, {tc[-1]:.1f}s CPU"
                f" (train {ts['train_wall_time_s']:.1f}s"
                f", eval {ts['eval_wall_time_s']:.1f}s), held-out {ts['eval_loss']:.4f}"
                f" nats/char over {ts['eval_tokens']} targets",
                flush=True,
            )
    finally:
        if args.keep_workdirs:
            print(f"clm_run workdirs and logs kept in {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    print(f"clm_run {n} steps, jaxssl: {median(jt):.1f}s  torch: {median(tt):.1f}s (median wall)")
    return median(tt) / median(jt), median(tc) / median(jc)


# ------------------------------------------------------------------ part: conv (exploration)


def hlo_summary(fn, *args, options: dict | None = None) -> str:
    """Where XLA:CPU put the convolutions and dots of a jitted fn (after optimization)."""
    import collections

    text = fn.lower(*args).compile(compiler_options=options).as_text()
    kinds = collections.Counter(re.findall(r'"kind":"(__\w+)"', text))
    calls = collections.Counter(re.findall(r'custom_call_target="([^"]+)"', text))
    ops = collections.Counter(re.findall(r"= \S+ (convolution|dot)\(", text))
    parts = [f"{v} {k}" for k, v in sorted((ops | kinds | calls).items())]
    return ", ".join(parts) or "no convolution/dot/library call"


def part_conv(args) -> tuple[float, float]:
    """One 3x3 conv per ResNet-18 stage and the bare encoder, fwd+bwd, jax vs torch."""
    import jax
    import jax.numpy as jnp
    import torch

    from jaxssl.models.resnet import ResNet18

    torch_setup(args.threads)
    batch = 2 * args.simclr_batch
    rng = np.random.default_rng(0)
    cases = {}  # name -> callable that runs once and blocks
    flops = {}
    for size, ch in ((32, 64), (16, 128), (8, 256), (4, 512)):
        x = rng.standard_normal((batch, size, size, ch), np.float32)
        w = rng.standard_normal((3, 3, ch, ch), np.float32) * 0.05

        def make_jax(layout, options=None, weight_grad_only=False, x=x, w=w):
            if layout == "NHWC":
                dn, xa, wa = ("NHWC", "HWIO", "NHWC"), x, w
            else:
                dn, xa, wa = (
                    ("NCHW", "OIHW", "NCHW"),
                    x.transpose(0, 3, 1, 2),
                    w.transpose(3, 2, 0, 1),
                )

            def loss(a, b):
                y = jax.lax.conv_general_dilated(a, b, (1, 1), "SAME", dimension_numbers=dn)
                return jnp.sum(y * y)

            argnums = 1 if weight_grad_only else (0, 1)
            xa, wa = jnp.asarray(xa), jnp.asarray(wa)
            fn = compiled(jax.jit(jax.grad(loss, argnums=argnums)), (xa, wa), options)
            return lambda: jax.block_until_ready(fn(xa, wa))

        def make_torch(channels_last, weight_grad_only=False, x=x, w=w):
            xt = torch.from_numpy(x.transpose(0, 3, 1, 2).copy())
            wt = torch.from_numpy(w.transpose(3, 2, 0, 1).copy())
            if channels_last:
                xt = xt.contiguous(memory_format=torch.channels_last)
                wt = wt.contiguous(memory_format=torch.channels_last)
            xt.requires_grad_(not weight_grad_only)
            wt.requires_grad_(True)

            def run():
                y = torch.nn.functional.conv2d(xt, wt, padding=1)
                (y * y).sum().backward()
                xt.grad = wt.grad = None

            return run

        key = f"conv{size}x{size}x{ch}"
        flops[key] = 3 * 2 * batch * size * size * ch * ch * 9
        cases[f"{key} jax NHWC"] = make_jax("NHWC")
        cases[f"{key} jax NHWC convs-on-YNN"] = make_jax("NHWC", YNN_CONV)
        cases[f"{key} jax NCHW"] = make_jax("NCHW")
        cases[f"{key} torch NCHW"] = make_torch(False)
        cases[f"{key} torch channels_last"] = make_torch(True)
        # Forward + weight gradient only (no input gradient): isolates the dW convolution.
        cases[f"{key} fwd+dW jax NHWC"] = make_jax("NHWC", None, True)
        cases[f"{key} fwd+dW jax NHWC convs-on-YNN"] = make_jax("NHWC", YNN_CONV, True)
        cases[f"{key} fwd+dW torch NCHW"] = make_torch(False, True)

    # Bare ResNet-18 (CIFAR stem) encoder fwd+bwd on float views, both sides.
    views = rng.standard_normal((batch, 32, 32, 3), np.float32)
    enc = ResNet18(stem="cifar")
    variables = enc.init(jax.random.PRNGKey(0), jnp.asarray(views[:2]), train=False)

    @jax.jit
    def bare(variables, x):
        def loss(p):
            out, upd = enc.apply({**variables, "params": p}, x, train=True, mutable=["batch_stats"])
            return jnp.sum(out[0]), upd

        return jax.grad(loss, has_aux=True)(variables["params"])

    xj = jnp.asarray(views)
    bare_ynn_on = compiled(bare, (variables, xj), YNN_CONV)
    cases["encoder jax NHWC"] = lambda: jax.block_until_ready(bare(variables, xj))
    cases["encoder jax NHWC convs-on-YNN"] = lambda: jax.block_until_ready(
        bare_ynn_on(variables, xj)
    )
    print(f"conv: jax encoder fwd+bwd compiles to {hlo_summary(bare, variables, xj)}")
    print(
        "conv: with compiler option"
        f" {YNN_CONV}: {hlo_summary(bare, variables, xj, options=YNN_CONV)}"
    )
    _, ResNet18Cifar, _ = torch_modules()
    for cl in (False, True):
        tnet = ResNet18Cifar().train()
        xt = torch.from_numpy(views.transpose(0, 3, 1, 2).copy())
        if cl:
            tnet = tnet.to(memory_format=torch.channels_last)
            xt = xt.contiguous(memory_format=torch.channels_last)

        def run_t(tnet=tnet, xt=xt):
            tnet(xt).sum().backward()
            tnet.zero_grad(set_to_none=True)

        cases[f"encoder torch {'channels_last' if cl else 'NCHW'}"] = run_t

    # The SimCLR CIFAR augmentation alone: uint8 images -> 2 normalized views each.
    from jaxssl.augment import views as views_lib

    aug_cfg = views_lib.default_config("simclr_cifar")
    images = np.load(args.cifar)["image"][: args.simclr_batch]
    aug = jax.jit(lambda k, x: views_lib.batch_views(k, x, aug_cfg))
    images_j, key = jnp.asarray(images), jax.random.PRNGKey(0)
    cases["augment jax (2 views)"] = lambda: jax.block_until_ready(aug(key, images_j))
    images_t, gen = torch.from_numpy(images), torch.Generator().manual_seed(0)
    cases["augment torch (2 views)"] = lambda: torch_views(torch, images_t, aug_cfg, gen, False)

    for fn in cases.values():  # compile / warm up
        fn()
    times = {k: [] for k in cases}
    cpus = {k: [] for k in cases}
    for _ in range(args.steps):
        for k, fn in cases.items():
            wall, cpu, _ = timed(fn)
            times[k].append(wall)
            cpus[k].append(cpu)
    for k, ts in times.items():
        extra = ""
        conv_key = k.split(" ")[0]
        if conv_key in flops and "dW" not in k:
            extra = f", {flops[conv_key] / median(ts) / 1e9:6.1f} GFLOP/s"
        cpu_ms = median(cpus[k]) * 1e3
        print(f"conv {k:45s} {median(ts) * 1e3:8.1f} ms (CPU {cpu_ms:8.1f} ms){extra}")
    enc_t, enc_j = "encoder torch NCHW", "encoder jax NHWC"
    return (
        median(times[enc_t]) / median(times[enc_j]),
        median(cpus[enc_t]) / median(cpus[enc_j]),
    )


# ------------------------------------------------------------------ main


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--parts", default="clm_step,simclr_step,clm_run")
    parser.add_argument("--steps", type=int, default=10, help="interleaved timing rounds")
    parser.add_argument("--clm-block", type=int, default=10, help="LM steps per round and side")
    parser.add_argument("--run-steps", type=int, default=2000, help="steps of the whole LM run")
    parser.add_argument("--run-repeats", type=int, default=1, help="whole runs per side")
    parser.add_argument(
        "--run-cache",
        choices=("cold", "default"),
        default="cold",
        help="clm_run's jaxssl compilation cache: an empty folder, or jaxssl's default one",
    )
    parser.add_argument("--simclr-batch", type=int, default=128, help="images (pairs) per step")
    parser.add_argument("--simclr-optimizer", choices=("sgd", "lars"), default="sgd")
    parser.add_argument("--torch-channels-last", action="store_true")
    parser.add_argument(
        "--simclr-ynn-convs",
        action="store_true",
        help="also time the jaxssl SimCLR step compiled with convolutions on YNNPACK",
    )
    parser.add_argument("--xla-flags", default="", help="appended to XLA_FLAGS (jax side)")
    parser.add_argument("--matmul-precision", default="", help="jax_default_matmul_precision")
    parser.add_argument("--threads", type=int, default=os.cpu_count(), help="torch threads")
    parser.add_argument("--text", type=pathlib.Path, default=SHAKESPEARE)
    parser.add_argument("--cifar", type=pathlib.Path, default=CIFAR)
    parser.add_argument("--keep-workdirs", action="store_true")
    parser.add_argument(
        "--malloc",
        choices=("own", "system", "heap"),
        default="own",
        help="allocators of the step parts: own (each side as its users run it; torch in a child"
        " process), system or heap (both sides in this process, on that setting)",
    )
    parser.add_argument("--torch-run", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--torch-side", choices=("clm_step", "simclr_step"), help=argparse.SUPPRESS)
    parser.add_argument("--side-spec", help=argparse.SUPPRESS)
    parser.add_argument("--workdir", help=argparse.SUPPRESS)
    parser.add_argument("--settings", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.torch_run:
        torch_run(args)
        return
    if args.torch_side:
        torch_side(args)
        return
    parts = [p for p in args.parts.split(",") if p]
    unknown = set(parts) - set(PARTS)
    if unknown:
        parser.error(f"unknown parts {sorted(unknown)}; valid: {', '.join(PARTS)}")

    os.environ["XLA_FLAGS"] = xla_env(args.xla_flags)  # before jax is imported
    # Allocators. own: each side as its users run it (jaxssl here, with the heap setting its
    # import applies on a CPU-only host; torch in a child process on the system malloc), like
    # clm_run's two processes. system / heap: both sides in this process on that setting.
    if args.malloc == "system":
        os.environ[SYSTEM_MALLOC] = "1"
    import jax
    import torch

    import jaxssl  # noqa: F401  (its XLA:CPU settings, applied at import as the CLI gets them)
    from jaxssl.train import xla_cpu

    if args.malloc == "heap":
        heap = xla_cpu.keep_buffers_in_heap()
    else:  # what importing jaxssl did (idempotent): True where it applied the setting
        heap = args.malloc == "own" and xla_cpu.cpu_only() and xla_cpu.keep_buffers_in_heap()
    where = "a child process on the system malloc" if args.malloc == "own" else "this process"

    if args.matmul_precision:
        jax.config.update("jax_default_matmul_precision", args.matmul_precision)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(
        f"cores {os.cpu_count()}, load average {load:.2f}; jax {jax.__version__} on"
        f" {jax.device_count()} {jax.devices()[0].platform} device(s), torch {torch.__version__}"
        f" with {args.threads} threads (eager); XLA_FLAGS={os.environ['XLA_FLAGS']!r}"
        + (f", matmul precision {args.matmul_precision}" if args.matmul_precision else "")
        + f"; step parts: jaxssl on the {'heap' if heap else 'system'} malloc, torch in {where}",
        flush=True,
    )
    functions = {
        "clm_step": part_clm_step,
        "simclr_step": part_simclr_step,
        "clm_run": part_clm_run,
        "conv": part_conv,
    }
    ratios, cpu_ratios = {}, {}
    for part in parts:
        ratios[part], cpu_ratios[part] = functions[part](args)
        print(
            f"{part}: torch/jaxssl wall-time ratio {ratios[part]:.3f}"
            f" (process CPU time ratio {cpu_ratios[part]:.3f})",
            flush=True,
        )

    def line(name, values):
        def show(key):
            return f"{values[key]:.3f}" if key in values else "n/a"

        text = f"{name}: clm_step={show('clm_step')} clm_run={show('clm_run')}"
        text += f" simclr_step={show('simclr_step')}"
        return text + (f" encoder_fwd_bwd={show('conv')}" if "conv" in values else "")

    # CPU-time ratios: a hint on a loaded machine (wall time is what counts on an idle one).
    print(line("cpu_ratios", cpu_ratios))
    print(line("ratios", ratios))


if __name__ == "__main__":
    main()
