"""The composer: one-hot bi-directional Seq2Seq with the multi-way decoder (thesis 3.7).

    48 primer events ─► input encoding ─► bi-directional RNN encoder ─► h0 (+ c0)
                                                        │ encoder states
                                   multi-way only:  bi-directional RNN ─► memory
    previous event ─► input encoding ─► decoder RNN step ─► h_t ───────────── path A: norm(h_t)
                                                             └─ attention over memory ─ path B: norm(context)
                                             merge (concat → linear → tanh) ─► pitch head, duration head

Input encoding (:class:`ComposerConfig.encoding`):

- ``onehot`` (thesis): one-hot pitch token ‖ one-hot duration token;
- ``whole`` (Table 20 ablation): two scalars, pitch token / (P-1) and
  duration / 8 quarter lengths;

plus a one-hot genre when ``num_genres > 0`` (genre conditioning). Both are
lookup tables indexed by the tokens, so the exported graphs take int64 tokens.

Normalization of the two decoder paths (``norm``) works on one step's feature
vector only (viewed as ``norm_channels`` channels x H/channels positions):
``instance`` (each channel over its positions), ``group`` (groups of
channels) or ``ensemble`` (their mean). Being step-local, teacher-forced
training and one-step decoding compute the same thing.

``decoder="vanilla"`` is the plain Seq2Seq decoder (path A alone, no memory).
``decoder="none"`` (Table 21 (a), "bi-directional RNN") has no decoder at
all: the encoder's output at input position t, through a linear layer, the
norm and the heads, predicts target event t (so ``horizon == window``); it is
an ablation model, trained and evaluated here but not exported (it has no
step decoder to serve).

``encoder="multiway"`` places the multi-way scheme in the encoder too (Table
24's placements): a second, uni-directional RNN reads the primer beside the
bi-directional one, and the decoder's initial state merges the two paths
(each normalized, as the decoder's paths are). With ``decoder="none"`` the
two paths merge per position: the scheme as the only module, no
encoder-decoder structure.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from typing import Any

import torch
from torch import nn

from seedlock.core import music_events as me


@dataclass
class ComposerConfig:
    window: int = 48
    horizon: int = 48
    encoding: str = "onehot"  # onehot | whole
    cell: str = "gru"  # gru | lstm
    hidden: int = 128
    bidirectional: bool = True  # encoder
    decoder: str = "multiway"  # multiway | vanilla | none
    encoder: str = "plain"  # plain | multiway (the scheme placed in the encoder too)
    norm: str = "ensemble"  # instance | group | ensemble
    norm_channels: int = 8
    norm_groups: int = 4
    dropout: float = 0.1
    num_genres: int = 0  # > 0: genre-conditioned
    num_pitches: int = me.NUM_PITCHES
    num_durations: int = me.NUM_DURATIONS

    def __post_init__(self) -> None:
        checks = {
            "encoding": ("onehot", "whole"),
            "cell": ("gru", "lstm"),
            "decoder": ("multiway", "vanilla", "none"),
            "encoder": ("plain", "multiway"),
            "norm": ("instance", "group", "ensemble"),
        }
        for name, allowed in checks.items():
            if getattr(self, name) not in allowed:
                raise ValueError(f"{name} must be one of {allowed}, got {getattr(self, name)!r}")
        if self.hidden % self.norm_channels or self.norm_channels % self.norm_groups:
            raise ValueError("hidden must divide by norm_channels, and norm_channels by norm_groups")
        if self.norm in ("instance", "ensemble") and self.hidden < 2 * self.norm_channels:
            # instance norm needs at least two features per channel to have a variance
            raise ValueError(f"hidden must be at least {2 * self.norm_channels} with {self.norm} norm, got {self.hidden}")
        if self.decoder == "none" and self.horizon != self.window:
            raise ValueError(f"decoder 'none' predicts one target event per input event: horizon must equal window ({self.window})")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "ComposerConfig":
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})


class InputEncoding(nn.Module):
    """Tokens (…, 2) [+ genre (B,)] → features, by table lookup (one-hot or scalar)."""

    def __init__(self, cfg: ComposerConfig) -> None:
        super().__init__()
        P, D, G = cfg.num_pitches, cfg.num_durations, cfg.num_genres
        if cfg.encoding == "onehot":
            pitch, dur = torch.eye(P), torch.eye(D)
        else:
            pitch = (torch.arange(P, dtype=torch.float32) / (P - 1)).unsqueeze(1)
            dur = (torch.tensor(me.DURATIONS, dtype=torch.float32) / 8.0).unsqueeze(1)
        self.register_buffer("pitch_table", pitch, persistent=False)
        self.register_buffer("duration_table", dur, persistent=False)
        self.register_buffer("genre_table", torch.eye(max(G, 1))[:, :G], persistent=False)
        self.size = pitch.shape[1] + dur.shape[1] + G

    def forward(self, events: torch.Tensor, genre: torch.Tensor) -> torch.Tensor:
        x = [self.pitch_table[events[..., 0]], self.duration_table[events[..., 1]]]
        if self.genre_table.shape[1]:
            g = self.genre_table[genre]
            if events.dim() == 3:
                g = g.unsqueeze(1).expand(-1, events.shape[1], -1)
            x.append(g)
        return torch.cat(x, dim=-1)


class StepNorm(nn.Module):
    """Instance / group / ensemble normalization of one step's feature vector."""

    def __init__(self, kind: str, features: int, channels: int, groups: int) -> None:
        super().__init__()
        self.kind, self.channels = kind, channels
        self.instance = nn.InstanceNorm1d(channels, affine=True) if kind in ("instance", "ensemble") else None
        self.group = nn.GroupNorm(groups, channels) if kind in ("group", "ensemble") else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shape = x.shape
        v = x.reshape(-1, self.channels, shape[-1] // self.channels)
        outs = [m(v) for m in (self.instance, self.group) if m is not None]
        y = outs[0] if len(outs) == 1 else 0.5 * (outs[0] + outs[1])
        return y.reshape(shape)


def _rnn(cell: str, *args: Any, **kw: Any) -> nn.Module:
    return (nn.GRU if cell == "gru" else nn.LSTM)(*args, batch_first=True, **kw)


class Composer(nn.Module):
    def __init__(self, cfg: ComposerConfig) -> None:
        super().__init__()
        self.cfg = cfg
        H, dirs = cfg.hidden, 2 if cfg.bidirectional else 1
        self.embed = InputEncoding(cfg)
        self.encoder = _rnn(cfg.cell, self.embed.size, H, bidirectional=cfg.bidirectional)
        if cfg.encoder == "multiway":
            self.encoder_uni = _rnn(cfg.cell, self.embed.size, H)
            self.enc_norm_a = StepNorm(cfg.norm, H, cfg.norm_channels, cfg.norm_groups)
            self.enc_norm_b = StepNorm(cfg.norm, H, cfg.norm_channels, cfg.norm_groups)
            self.enc_merge = nn.Linear(2 * H, H)
        if cfg.decoder == "none":
            self.proj = nn.Linear(dirs * H, H)
        else:
            self.init_h = nn.Linear(dirs * H, H)
            self.init_c = nn.Linear(dirs * H, H) if cfg.cell == "lstm" else None
            self.decoder = _rnn(cfg.cell, self.embed.size, H)
        self.drop = nn.Dropout(cfg.dropout)
        self.norm_a = StepNorm(cfg.norm, H, cfg.norm_channels, cfg.norm_groups)
        if cfg.decoder == "multiway":
            self.memory_rnn = nn.GRU(dirs * H, H // 2, batch_first=True, bidirectional=True)
            self.query = nn.Linear(H, H, bias=False)
            self.norm_b = StepNorm(cfg.norm, H, cfg.norm_channels, cfg.norm_groups)
            self.merge = nn.Linear(2 * H, H)
        self.pitch_head = nn.Linear(H, cfg.num_pitches)
        self.duration_head = nn.Linear(H, cfg.num_durations)

    def _merge_encoder_paths(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        """The encoder-side scheme: bi-directional path ``a`` and uni-directional path ``b`` (…, H), each normalized, merged."""
        return torch.tanh(self.enc_merge(torch.cat([self.enc_norm_a(self.drop(a)), self.enc_norm_b(self.drop(b))], dim=-1)))

    # -- pieces shared by training and the exported graphs -----------------
    def encode(self, src: torch.Tensor, genre: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """src (B, L, 2) → (h0 (B, H), c0 (B, H) or zeros, memory (B, L, H) or (B, 1, H) zeros)."""
        if self.cfg.decoder == "none":
            raise ValueError("a composer with decoder 'none' has no step decoder (an ablation model): it cannot be exported or sampled")
        x = self.embed(src, genre)
        out, state = self.encoder(x)
        h_n = state[0] if isinstance(state, tuple) else state
        last = h_n.transpose(0, 1).reshape(src.shape[0], -1)  # both directions' final states
        if self.cfg.encoder == "multiway":
            _, u_state = self.encoder_uni(x)
            u_last = (u_state[0] if isinstance(u_state, tuple) else u_state)[0]
            h0 = self._merge_encoder_paths(self.init_h(last), u_last)
        else:
            h0 = torch.tanh(self.init_h(last))
        c0 = torch.tanh(self.init_c(last)) if self.init_c is not None else torch.zeros_like(h0)
        if self.cfg.decoder == "multiway":
            memory, _ = self.memory_rnn(out)
        else:
            memory = torch.zeros_like(h0).unsqueeze(1)
        return h0, c0, memory

    def direct(self, src: torch.Tensor, genre: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``decoder="none"``: logits (B, L, P), (B, L, D) for the L target events, one per input position."""
        x = self.embed(src, genre)
        out, _ = self.encoder(x)
        if self.cfg.encoder == "multiway":
            u_out, _ = self.encoder_uni(x)
            feat = self._merge_encoder_paths(self.proj(out), u_out)
        else:
            feat = self.norm_a(self.drop(self.proj(out)))
        return self.pitch_head(feat), self.duration_head(feat)

    def decode(
        self, prev: torch.Tensor, genre: torch.Tensor, h: torch.Tensor, c: torch.Tensor, memory: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """prev (B, T, 2) previous events → logits (B, T, P), (B, T, D), h_T, c_T.

        T = horizon under teacher forcing, T = 1 for one generation step."""
        x = self.embed(prev, genre)
        if self.cfg.cell == "lstm":
            out, (h_n, c_n) = self.decoder(x, (h.unsqueeze(0), c.unsqueeze(0)))
            c_new = c_n[0]
        else:
            out, h_n = self.decoder(x, h.unsqueeze(0))
            c_new = c
        feat = self.norm_a(self.drop(out))
        if self.cfg.decoder == "multiway":
            scores = torch.matmul(self.query(out), memory.transpose(1, 2)) / math.sqrt(self.cfg.hidden)
            context = torch.matmul(torch.softmax(scores, dim=-1), memory)
            feat_b = self.norm_b(self.drop(context))
            feat = torch.tanh(self.merge(torch.cat([feat, feat_b], dim=-1)))
        return self.pitch_head(feat), self.duration_head(feat), h_n[0], c_new

    def forward(self, src: torch.Tensor, prev: torch.Tensor, genre: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Teacher-forced: src (B, L, 2), prev (B, T, 2) = [src[:, -1], target[:, :-1]] (unused by decoder 'none')."""
        if self.cfg.decoder == "none":
            return self.direct(src, genre)
        h, c, memory = self.encode(src, genre)
        pitch, duration, _, _ = self.decode(prev, genre, h, c, memory)
        return pitch, duration

    @torch.no_grad()
    def greedy(self, src: torch.Tensor, genre: torch.Tensor, length: int) -> torch.Tensor:
        """Batched greedy continuation (B, length, 2), for evaluation."""
        if self.cfg.decoder == "none":
            if length > src.shape[1]:
                raise ValueError(f"decoder 'none' continues at most {src.shape[1]} events, asked for {length}")
            p, d = self.direct(src, genre)
            return torch.stack([p.argmax(-1), d.argmax(-1)], dim=-1)[:, :length]
        h, c, memory = self.encode(src, genre)
        event, out = src[:, -1:], []
        for _ in range(length):
            p, d, h, c = self.decode(event, genre, h, c, memory)
            event = torch.stack([p.argmax(-1), d.argmax(-1)], dim=-1)
            out.append(event)
        return torch.cat(out, dim=1)


class EncoderGraph(nn.Module):
    """Exported ``encoder``: events (B, L, 2) int64, genre (B,) int64 → h, c, memory."""

    def __init__(self, model: Composer) -> None:
        super().__init__()
        self.model = model

    def forward(self, events: torch.Tensor, genre: torch.Tensor):
        return self.model.encode(events, genre)


class DecoderStepGraph(nn.Module):
    """Exported ``decoder_step``: event (B, 2), genre, h, c, memory → pitch/duration logits, h, c."""

    def __init__(self, model: Composer) -> None:
        super().__init__()
        self.model = model

    def forward(self, event: torch.Tensor, genre: torch.Tensor, h: torch.Tensor, c: torch.Tensor, memory: torch.Tensor):
        p, d, h2, c2 = self.model.decode(event.unsqueeze(1), genre, h, c, memory)
        return p[:, 0], d[:, 0], h2, c2


def build_composer(model_config: dict[str, Any]) -> Composer:
    return Composer(ComposerConfig.from_dict(model_config))


def torch_step(model: Composer, genre: int):
    """A :mod:`seedlock.core.music_sampling` step on the torch model (the reference).

    State: (h, c, memory) tensors, batch 1."""

    g = torch.tensor([int(genre)])

    def step(event, state):
        h, c, memory = state
        with torch.no_grad():
            p, d, h, c = model.decode(torch.as_tensor(event, dtype=torch.int64).view(1, 1, 2), g, h, c, memory)
        return p[0, 0].numpy(), d[0, 0].numpy(), (h, c, memory)

    return step


def torch_initial_state(model: Composer, primer: Any, genre: int):
    with torch.no_grad():
        return model.encode(torch.as_tensor(primer, dtype=torch.int64).unsqueeze(0), torch.tensor([int(genre)]))


__all__ = [
    "ComposerConfig", "Composer", "EncoderGraph", "DecoderStepGraph", "InputEncoding", "StepNorm",
    "build_composer", "torch_step", "torch_initial_state",
]
