"""The image-caption generator with the thesis's five switchable modules (4.2).

    image ─► CNN (resnet | vgg) ─► memory (B, P, M) ───────────────┐
                                                                   ├─► merge ─► next-word log-probs
    caption prefix ─► embedding (learned | GloVe) ─► RNN ─► text ──┘
                        RNN: cell lstm | gru, direction vanilla | bi
                        merge: attention over the P regions on | off

* Feature extraction: a small ResNet-style CNN (basic blocks with batch norm)
  or a VGG-style CNN (3x3 conv stacks, max pooling, no normalization, as
  VGG16). Both reduce the image 8x; the memory is one vector per region.
* Sequential module, the *merge* architecture (Tanti et al.; the Keras model
  the thesis built on): the RNN reads only the caption prefix; the image joins
  after it, by adding projections of both before the output layer. So the RNN
  is a language model of the prefix, and a bi-directional RNN is well defined:
  it reads the whole prefix both ways at every step.
* Word embedding: learned, or initialised from a GloVe text file
  (:func:`load_glove`; frozen by default, as the thesis used it).
* Attention: additive (Bahdanau) attention of the prefix encoding over the
  regions; off = the mean-pooled image vector.
* Initial seed module: how the *sequential side* (embedding, RNN, merge and
  output layers) is initialised: random / He / LeCun, normal / uniform
  (:data:`INITS`). The CNN always gets He-normal convs, so the switch measures
  what the thesis measured, the RNN's starting point.

Decoding one step (what is exported, see :class:`RecurrentStep`,
:class:`PrefixStep`): a vanilla RNN carries its hidden state step to step, which
is exact. A bi-directional RNN's backward half depends on the last word, so
its state cannot be carried; its step re-reads the whole prefix (O(t) per
step, exact). Training uses the same functions: prefix position t of a
bi-directional model is encoded from ``tokens[:, :t+1]`` alone.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from seedlock.core.caption_decoding import CaptionGraphs, DecoderSpec
from seedlock.core.errors import UserError
from seedlock.core.vocab import PAD_ID, Vocabulary

ENCODERS = ("resnet", "vgg")
CELLS = ("lstm", "gru")
DIRECTIONS = ("vanilla", "bi")
EMBEDDINGS = ("learned", "glove")
INITS = ("random-normal", "random-uniform", "he-normal", "he-uniform", "lecun-normal", "lecun-uniform")
RANDOM_SCALE = 0.05  # Keras's RandomNormal stddev / RandomUniform limit, which the thesis used


@dataclass
class CaptionerConfig:
    """Everything needed to rebuild the network (stored in the checkpoint as ``model_config``)."""

    vocab_size: int
    image_size: int = 64
    encoder: str = "resnet"
    width: int = 16  # CNN channels of the first stage (x2 per stage, 3 stages)
    cell: str = "lstm"
    direction: str = "vanilla"
    embedding: str = "learned"
    embed_dim: int = 64
    hidden: int = 128
    attention: bool = False
    init: str = "lecun-uniform"
    dropout: float = 0.1

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "CaptionerConfig":
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})

    def validate(self) -> None:
        for name, allowed in (("encoder", ENCODERS), ("cell", CELLS), ("direction", DIRECTIONS), ("embedding", EMBEDDINGS), ("init", INITS)):
            if getattr(self, name) not in allowed:
                raise ValueError(f"{name} must be one of {', '.join(allowed)}, got {getattr(self, name)!r}")
        for name in ("vocab_size", "width", "embed_dim", "hidden"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.image_size < 16 or self.image_size % 8:
            raise ValueError(f"image_size must be a multiple of 8, at least 16, got {self.image_size}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")

    @property
    def bidirectional(self) -> bool:
        return self.direction == "bi"

    @property
    def state_names(self) -> tuple[str, ...]:
        """Recurrent state carried between decoder steps (none for a bi-directional RNN)."""
        if self.bidirectional:
            return ()
        return ("h", "c") if self.cell == "lstm" else ("h",)


# --------------------------------------------------------------------------- CNN encoders


class BasicBlock(nn.Module):
    """ResNet basic block: two 3x3 conv + BN, identity (or 1x1 conv) shortcut."""

    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.shortcut = (
            nn.Identity() if stride == 1 and cin == cout else nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))
        )

    def forward(self, x: Tensor) -> Tensor:
        y = F.relu(self.bn1(self.conv1(x)))
        return F.relu(self.bn2(self.conv2(y)) + self.shortcut(x))


class ResNetEncoder(nn.Module):
    """Stem (3x3, stride 2, BN) then three basic-block stages (w, 2w, 4w); 8x down."""

    def __init__(self, width: int) -> None:
        super().__init__()
        w = width
        self.stem = nn.Sequential(nn.Conv2d(3, w, 3, 2, 1, bias=False), nn.BatchNorm2d(w), nn.ReLU())
        self.stages = nn.Sequential(BasicBlock(w, w, 1), BasicBlock(w, 2 * w, 2), BasicBlock(2 * w, 4 * w, 2))
        self.out_channels = 4 * w

    def forward(self, x: Tensor) -> Tensor:
        return self.stages(self.stem(x))


class VGGEncoder(nn.Module):
    """Three VGG blocks (two 3x3 convs + ReLU, then 2x2 max pool), widths w, 2w, 4w; no normalization."""

    def __init__(self, width: int) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        cin = 3
        for cout in (width, 2 * width, 4 * width):
            layers += [nn.Conv2d(cin, cout, 3, 1, 1), nn.ReLU(), nn.Conv2d(cout, cout, 3, 1, 1), nn.ReLU(), nn.MaxPool2d(2)]
            cin = cout
        self.features = nn.Sequential(*layers)
        self.out_channels = 4 * width

    def forward(self, x: Tensor) -> Tensor:
        return self.features(x)


# --------------------------------------------------------------------------- captioner


class Captioner(nn.Module):
    def __init__(self, cfg: CaptionerConfig) -> None:
        super().__init__()
        cfg.validate()
        self.cfg = cfg
        self.cnn = ResNetEncoder(cfg.width) if cfg.encoder == "resnet" else VGGEncoder(cfg.width)
        m, h = cfg.hidden, cfg.hidden
        self.memory_proj = nn.Linear(self.cnn.out_channels, m)
        self.embed = nn.Embedding(cfg.vocab_size, cfg.embed_dim, padding_idx=PAD_ID)
        rnn = nn.LSTM if cfg.cell == "lstm" else nn.GRU
        self.rnn = rnn(cfg.embed_dim, h, batch_first=True, bidirectional=cfg.bidirectional)
        d = h * (2 if cfg.bidirectional else 1)
        if cfg.attention:
            self.att_query = nn.Linear(d, h)
            self.att_key = nn.Linear(m, h)
            self.att_score = nn.Linear(h, 1)
        self.merge_text = nn.Linear(d, h)
        self.merge_image = nn.Linear(m, h)
        self.out = nn.Linear(h, cfg.vocab_size)
        self.drop = nn.Dropout(cfg.dropout)
        self.reset_parameters(cfg.init)

    # -- initialization (the thesis's "initial seed" module) -------------
    def decoder_parameters(self) -> list[tuple[str, nn.Parameter]]:
        return [(n, p) for n, p in self.named_parameters() if not n.startswith("cnn.")]

    def reset_parameters(self, scheme: str, generator: torch.Generator | None = None) -> None:
        """He-normal CNN; ``scheme`` for every weight matrix of the sequential side; zero biases
        (LSTM forget gates 1, as Keras does)."""
        with torch.no_grad():
            for mod in self.cnn.modules():
                if isinstance(mod, nn.Conv2d):
                    nn.init.kaiming_normal_(mod.weight, mode="fan_out", nonlinearity="relu", generator=generator)
                    if mod.bias is not None:
                        mod.bias.zero_()
                elif isinstance(mod, nn.BatchNorm2d):
                    mod.weight.fill_(1.0)
                    mod.bias.zero_()
            for name, p in self.decoder_parameters():
                if p.dim() >= 2:
                    init_tensor(p, scheme, generator)
                else:
                    p.zero_()
                    if self.cfg.cell == "lstm" and name.startswith("rnn.bias_ih"):
                        hid = self.cfg.hidden
                        p[hid : 2 * hid] = 1.0
            self.embed.weight[PAD_ID].zero_()

    # -- the pieces the exported graphs are made of ----------------------
    def encode(self, images: Tensor) -> Tensor:
        """Images ``(B, 3, S, S)`` -> memory ``(B, P, M)``: P regions with attention, else 1 pooled vector."""
        feats = self.cnn(images).flatten(2).transpose(1, 2)  # (B, P, C)
        if not self.cfg.attention:
            feats = feats.mean(dim=1, keepdim=True)
        return F.relu(self.memory_proj(feats))

    def merge(self, text: Tensor, memory: Tensor) -> Tensor:
        """Prefix encodings ``(B, T, D)`` + memory ``(B, P, M)`` -> logits ``(B, T, V)``."""
        if self.cfg.attention:
            q = self.att_query(text).unsqueeze(2)  # (B, T, 1, A)
            k = self.att_key(memory).unsqueeze(1)  # (B, 1, P, A)
            alpha = torch.softmax(self.att_score(torch.tanh(q + k)).squeeze(-1), dim=-1)  # (B, T, P)
            context = torch.bmm(alpha, memory)  # (B, T, M)
        else:
            context = memory[:, :1, :]  # (B, 1, M), broadcast over T
        joint = F.relu(self.merge_text(self.drop(text)) + self.merge_image(self.drop(context)))
        return self.out(self.drop(joint))

    def encode_prefix_bi(self, tokens: Tensor) -> Tensor:
        """Bi-directional encoding of whole prefixes ``(B, t)`` -> ``(B, 2H)``: the forward
        half's last output and the backward half's output at the first word."""
        out, _ = self.rnn(self.embed(tokens))
        h = self.cfg.hidden
        return torch.cat([out[:, -1, :h], out[:, 0, h:]], dim=-1)

    def encode_prefixes(self, tokens: Tensor) -> Tensor:
        """``(B, T)`` -> ``(B, T, D)``, row t encoding ``tokens[:, :t+1]`` only."""
        if not self.cfg.bidirectional:
            out, _ = self.rnn(self.embed(tokens))
            return out
        return torch.stack([self.encode_prefix_bi(tokens[:, : t + 1]) for t in range(tokens.shape[1])], dim=1)

    def forward(self, images: Tensor, tokens: Tensor) -> Tensor:
        """Teacher forcing: logits ``(B, T, V)`` for the word after each prefix of ``tokens``."""
        return self.merge(self.encode_prefixes(tokens), self.encode(images))


class EncoderGraph(nn.Module):
    """Exported as ``encoder``: image -> memory."""

    def __init__(self, model: Captioner) -> None:
        super().__init__()
        self.model = model

    def forward(self, image: Tensor) -> Tensor:
        return self.model.encode(image)


class RecurrentStep(nn.Module):
    """Exported as ``decoder_step`` for a vanilla RNN: (last token (B, 1), memory, h[, c])
    -> (log_probs (B, V), h_out[, c_out]). States are ``(B, H)``: batch first, so beam
    search can reorder them by row."""

    def __init__(self, model: Captioner) -> None:
        super().__init__()
        self.model = model

    def forward(self, tokens: Tensor, memory: Tensor, h: Tensor, c: Tensor | None = None) -> tuple[Tensor, ...]:
        m = self.model
        emb = m.embed(tokens)
        if c is not None:
            out, (h1, c1) = m.rnn(emb, (h.unsqueeze(0), c.unsqueeze(0)))
        else:
            out, h1 = m.rnn(emb, h.unsqueeze(0))
        log_probs = torch.log_softmax(m.merge(out, memory)[:, 0], dim=-1)
        if c is not None:
            return log_probs, h1[0], c1[0]
        return log_probs, h1[0]


class PrefixStep(nn.Module):
    """Exported as ``decoder_step`` for a bi-directional RNN: (whole prefix (B, t), memory)
    -> log_probs (B, V)."""

    def __init__(self, model: Captioner) -> None:
        super().__init__()
        self.model = model

    def forward(self, tokens: Tensor, memory: Tensor) -> Tensor:
        m = self.model
        text = m.encode_prefix_bi(tokens).unsqueeze(1)
        return torch.log_softmax(m.merge(text, memory)[:, 0], dim=-1)


def step_module(model: Captioner) -> nn.Module:
    return PrefixStep(model) if model.cfg.bidirectional else RecurrentStep(model)


def step_io_names(cfg: CaptionerConfig) -> tuple[list[str], list[str]]:
    """Input and output names of the decoder-step graph."""
    states = list(cfg.state_names)
    return ["tokens", "memory", *states], ["log_probs", *[f"{s}_out" for s in states]]


def decoder_spec(cfg: CaptionerConfig) -> DecoderSpec:
    return DecoderSpec(mode="prefix" if cfg.bidirectional else "recurrent", state_names=cfg.state_names, hidden=cfg.hidden)


def torch_graphs(model: Captioner) -> CaptionGraphs:
    """The torch reference decoder: the same modules that are exported, driven by the
    same numpy decoding code as ONNX Runtime (:class:`CaptionGraphs`)."""
    enc, step = EncoderGraph(model).eval(), step_module(model).eval()
    ins, outs = step_io_names(model.cfg)

    def run_encoder(feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        with torch.no_grad():
            return {"memory": enc(torch.from_numpy(feeds["image"])).numpy()}

    def run_step(feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        with torch.no_grad():
            res = step(*(torch.from_numpy(np.ascontiguousarray(feeds[n])) for n in ins))
        res = res if isinstance(res, tuple) else (res,)
        return {n: r.numpy() for n, r in zip(outs, res)}

    return CaptionGraphs(run_encoder, run_step, decoder_spec(model.cfg))


# --------------------------------------------------------------------------- init schemes and loaders


def init_tensor(p: Tensor, scheme: str, generator: torch.Generator | None = None) -> None:
    """Fill ``p`` in place with ``scheme`` (fan-in = ``p.shape[1] * receptive field``)."""
    fan_in = p.shape[1] * (int(np.prod(p.shape[2:])) if p.dim() > 2 else 1)
    dist, _, kind = scheme.partition("-")
    if scheme not in INITS:
        raise ValueError(f"init must be one of {', '.join(INITS)}, got {scheme!r}")
    if dist == "random":
        std, limit = RANDOM_SCALE, RANDOM_SCALE
    else:
        gain = 2.0 if dist == "he" else 1.0
        std, limit = math.sqrt(gain / fan_in), math.sqrt(3.0 * gain / fan_in)
    if kind == "normal":
        nn.init.normal_(p, 0.0, std, generator=generator)
    else:
        nn.init.uniform_(p, -limit, limit, generator=generator)


def load_glove(path: str | Path, vocab: Vocabulary, dim: int) -> tuple[Tensor, int]:
    """Rows of a GloVe text file (``word v1 .. vdim`` per line) for ``vocab``'s words.

    Returns ``(vectors (V, dim), number of vocabulary words found)``; words not in
    the file keep a zero row (the caller decides what to put there).
    """
    path = Path(path)
    if not path.is_file():
        raise UserError(f"GloVe file not found: {path}")
    out = torch.zeros(len(vocab), dim)
    found = 0
    with open(path, encoding="utf-8", errors="replace") as f:
        for number, line in enumerate(f, 1):
            word, _, rest = line.rstrip("\n").partition(" ")
            idx = vocab.stoi.get(word)
            if idx is None:
                continue
            values = rest.split()
            if len(values) != dim:
                raise UserError(f"{path}:{number}: {len(values)} values for {word!r}, but embed_dim is {dim}")
            try:
                out[idx] = torch.tensor([float(v) for v in values])
            except ValueError:
                raise UserError(f"{path}:{number}: not a number in the vector of {word!r}") from None
            found += 1
    if found == 0:
        raise UserError(f"{path}: none of the {len(vocab)} vocabulary words has a vector (is it a GloVe text file?)")
    return out, found


def load_encoder_weights(model: Captioner, path: str | Path) -> None:
    """Load user-supplied CNN weights (a state dict of the ``cnn`` module, or a
    checkpoint dict with ``state_dict`` whose ``cnn.*`` keys are used)."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"encoder weights not found: {path}")
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many kinds for bad bytes
        raise UserError(f"{path} is not a readable torch weights file ({type(exc).__name__})") from None
    if isinstance(data, dict) and "state_dict" in data:
        data = {k[4:]: v for k, v in data["state_dict"].items() if k.startswith("cnn.")}
    try:
        model.cnn.load_state_dict(data)
    except (RuntimeError, TypeError, AttributeError) as exc:
        raise UserError(f"{path}: weights do not fit the {model.cfg.encoder} encoder of width {model.cfg.width} ({str(exc).splitlines()[0]})") from None


def build_from_config(model_config: dict[str, Any]) -> Captioner:
    return Captioner(CaptionerConfig.from_dict(model_config))
