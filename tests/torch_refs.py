"""Reference models and tiny checkpoints built with PyTorch / transformers for the interop tests.

Nothing is downloaded: every model is random, tiny, and saved in the public formats (HF
save_pretrained folders; torchvision-named ResNet state dicts). timm cannot be installed
here (it needs torchvision, whose PyPI build is for CUDA torch), so the ResNet reference is
torchvision's ResNet written out below with torchvision's exact module names (conv1, bn1,
layer1.0.conv1 ... downsample.0/1, fc): the names a resnet50 state dict of torchvision or
timm has.
"""

import pathlib

import numpy as np
import pytest

torch = pytest.importorskip("torch")
nn = torch.nn


class Bottleneck(nn.Module):
    """torchvision.models.resnet.Bottleneck (v1.5: stride on the 3x3 conv)."""

    expansion = 4

    def __init__(self, inplanes: int, planes: int, stride: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, planes * 4, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes * 4)
        self.relu = nn.ReLU()
        self.downsample = None
        if stride != 1 or inplanes != planes * 4:
            self.downsample = nn.Sequential(
                nn.Conv2d(inplanes, planes * 4, 1, stride, bias=False), nn.BatchNorm2d(planes * 4)
            )

    def forward(self, x):
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        identity = x if self.downsample is None else self.downsample(x)
        return self.relu(out + identity)


class ResNet(nn.Module):
    """torchvision.models.resnet.ResNet with Bottleneck blocks; `width` scales every stage
    (64 * width ... 512 * width) so a ResNet-50-named model stays tiny."""

    def __init__(self, layers=(3, 4, 6, 3), width: float = 1.0, in_chans: int = 3, classes=10):
        super().__init__()
        planes = [round(64 * width * 2**i) for i in range(4)]
        self.inplanes = planes[0]
        self.conv1 = nn.Conv2d(in_chans, planes[0], 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(planes[0])
        self.relu = nn.ReLU()
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        for i, (p, n) in enumerate(zip(planes, layers, strict=True)):
            blocks = []
            for j in range(n):
                blocks.append(Bottleneck(self.inplanes, p, 2 if i > 0 and j == 0 else 1))
                self.inplanes = p * 4
            setattr(self, f"layer{i + 1}", nn.Sequential(*blocks))
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(self.inplanes, classes)

    def forward_features(self, x):
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        for i in range(4):
            x = getattr(self, f"layer{i + 1}")(x)
        return x


def random_resnet(layers=(1, 1, 1, 1), width=0.125, in_chans=1, seed=0) -> ResNet:
    """A random eval-mode ResNet whose BatchNorm statistics are not the defaults."""
    torch.manual_seed(seed)
    model = ResNet(layers, width, in_chans)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
            m.weight.data.uniform_(0.5, 1.5)
            m.bias.data.uniform_(-0.2, 0.2)
    return model.eval()


def resnet_features(model: ResNet, images_nhwc: np.ndarray) -> np.ndarray:
    """NHWC feature map of the last stage."""
    with torch.no_grad():
        x = torch.from_numpy(np.ascontiguousarray(images_nhwc.transpose(0, 3, 1, 2)))
        return model.forward_features(x).numpy().transpose(0, 2, 3, 1)


# ------------------------------------------------------------------- Hugging Face models
def bert_tokenizer(folder: pathlib.Path):
    """A WordPiece tokenizer with BERT's layout but special tokens NOT at 0..5 ([CLS] 47)."""
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors
    from transformers import BertTokenizerFast

    words = ["the", "a", "cat", "dog", "sat", "on", "mat", "run", "##s", "##ed", "##ing", "is"]
    words += [".", ",", "hello", "world"]
    vocab = ["[PAD]", "[unused0]", "[unused1]", "[UNK]", *words]
    vocab += [f"w{i}" for i in range(50 - len(vocab) - 3)] + ["[CLS]", "[SEP]", "[MASK]"]
    ids = {t: i for i, t in enumerate(vocab)}
    tok = Tokenizer(models.WordPiece(ids, unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]",
        pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", ids["[CLS]"]), ("[SEP]", ids["[SEP]"])],
    )
    tok.decoder = decoders.WordPiece()
    hf = BertTokenizerFast(
        tokenizer_object=tok,
        unk_token="[UNK]",
        pad_token="[PAD]",
        cls_token="[CLS]",
        sep_token="[SEP]",
        mask_token="[MASK]",
    )
    hf.save_pretrained(folder)
    return hf


def gpt2_tokenizer(folder: pathlib.Path, text: str, vocab_size: int = 300):
    """A byte-level BPE trained on text, <|endoftext|> its last id (as GPT-2's 50256)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import GPT2TokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size - 1,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator([text], trainer=trainer)
    tok.add_special_tokens(["<|endoftext|>"])
    end = "<|endoftext|>"
    hf = GPT2TokenizerFast(tokenizer_object=tok, bos_token=end, eos_token=end, unk_token=end)
    hf.save_pretrained(folder)
    return hf


def tiny_bert(folder: pathlib.Path, seed: int = 0):
    from transformers import BertConfig, BertForMaskedLM

    torch.manual_seed(seed)
    config = BertConfig(
        vocab_size=50,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=24,
    )
    model = BertForMaskedLM(config).eval()
    model.save_pretrained(folder)
    return model


def tiny_gpt2(folder: pathlib.Path, vocab_size: int, seed: int = 0):
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(seed)
    config = GPT2Config(
        vocab_size=vocab_size,
        n_embd=32,
        n_layer=2,
        n_head=2,
        n_positions=64,
        bos_token_id=vocab_size - 1,
        eos_token_id=vocab_size - 1,
    )
    model = GPT2LMHeadModel(config).eval()
    model.save_pretrained(folder)
    return model


def tiny_vit(folder: pathlib.Path, mae: bool, channels: int, seed: int = 0):
    from transformers import ViTConfig, ViTMAEConfig, ViTMAEModel, ViTModel

    torch.manual_seed(seed)
    dims = dict(
        image_size=8,
        patch_size=2,
        num_channels=channels,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
    )
    if mae:
        model = ViTMAEModel(ViTMAEConfig(**dims)).eval()
        # transformers 5 skips MAE's fixed sin-cos init on construction: run its own code.
        model.embeddings.patch_embeddings.projection._is_hf_initialized = False
        model.embeddings.initialize_weights()
    else:
        model = ViTModel(ViTConfig(**dims), add_pooling_layer=False).eval()
    model.save_pretrained(folder)
    return model
