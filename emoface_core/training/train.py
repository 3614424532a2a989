"""Training EmoFace on a dataset of audio + controller values (paper 4.2, the authors' release).

What the release does, and this module keeps: Adam (lr 1e-5, no weight decay), StepLR stepped
once per epoch (step 100 epochs, gamma 0.995), MSE over the 174 channels, one clip per step with
optional gradient accumulation, clips cut into pieces of at most 60 s, wav2vec2's conv feature
extractor frozen and the rest of wav2vec2 fine-tuned from a pretrained wav2vec2-base.

What it adds: the frozen conv features are computed once (``feature_cache``); mixed precision on
CUDA; a metrics CSV (and TensorBoard when installed); project checkpoints every N epochs and on
the best validation MAE; and an exact ``resume``. Every epoch ends by writing ``last.pt``, a
project checkpoint (loadable by ``emoface bake``) whose ``extra["training_state"]`` holds the
optimizer, scheduler, grad scaler, RNG states and metric history, so a resumed run takes the
same steps as one that was never interrupted. The data order of epoch ``e`` is a permutation
drawn from ``(seed, e)`` alone.

Output folder::

    OUT/last.pt            every epoch; resumable
    OUT/best.pt            lowest validation MAE so far
    OUT/epoch_0100.pt      every ``save_every`` epochs
    OUT/metrics.csv        one row per epoch
    OUT/train_config.json  the settings, for people
    OUT/tensorboard/       when tensorboard is installed

Longer than most modules (~880 lines): one training loop with its config, its exact-resume
state (optimiser, scheduler, RNGs, data order) and its checkpoints, which only make sense
together; the dataset, feature cache and evaluation are their own modules.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import logging
import math
import random
import time
from collections.abc import Collection
from contextlib import nullcontext
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from emoface_core import __version__
from emoface_core.audio import frame_count, load_audio, normalize
from emoface_core.emotion import N_EMOTIONS
from emoface_core.engines.neural.checkpoint import (
    WAV2VEC2_DOWNLOAD_HINT,
    init_wav2vec2_from_pretrained,
    load_checkpoint_dict,
    load_model,
    resolve_device,
    save_checkpoint,
    wav2vec2_kwargs_from_directory,
)
from emoface_core.engines.neural.config import ModelConfig
from emoface_core.engines.neural.model import EmoFaceModel
from emoface_core.errors import CheckpointError, ConfigError, DatasetError, EmoFaceError
from emoface_core.formats import atomic_write
from emoface_core.training.dataset import (
    ALL,
    DEFAULT_MAX_FRAME_MISMATCH,
    MAX_SEGMENT_S,
    Clip,
    DatasetIndex,
    align_controls,
    dataset_fingerprint,
    discover_dataset,
    file_sha256,
    load_controls,
    normalize_split,
    samples_for_frames,
    split_segments,
)
from emoface_core.training.evaluate import aggregate, score_clip
from emoface_core.training.feature_cache import FeatureCache, encoder_fingerprint

log = logging.getLogger(__name__)

TRAIN_STATE_FORMAT = "emoface-train-state"
TRAIN_STATE_VERSION = 1
LAST_CHECKPOINT = "last.pt"
BEST_CHECKPOINT = "best.pt"
METRICS_FILE = "metrics.csv"
CONFIG_FILE = "train_config.json"
PRECISIONS = ("auto", "fp32", "fp16", "bf16")
NO_VALIDATION = ("", "none")
METRIC_COLUMNS = (
    "epoch",
    "lr",
    "train_mse",
    "train_mae",
    "val_mse",
    "val_mae",
    "val_mae_mouth",
    "val_mae_eye",
    "val_jaw_corr",
    "best_val_mae",
    "epoch_time_s",
)
# Settings a resumed run may change; every other setting is taken from the checkpoint so the
# run continues exactly.
RESUMABLE_OVERRIDES = (
    "epochs",
    "device",
    "progress",
    "tensorboard",
    "cache_dir",
    "save_every",
    "patience",
)


@dataclass
class TrainConfig:
    """Training settings; defaults are the authors' release.

    Attributes:
        dataset: dataset folder or manifest (any layout ``discover_dataset`` reads).
        output_dir: where checkpoints and metrics go.
        manifest: a manifest that overrides the folder layout.
        train_split: split to train on ("all" = every clip not held out).
        val_split: split to validate on; "none" trains without validation.
        val_fraction: when the dataset has no ``val_split``, hold out this fraction of the
            training clips (chosen by a hash of the clip name, stable across runs).
        epochs: total epochs (a resumed run continues up to this number).
        lr: Adam learning rate (release: 1e-5).
        lr_step_epochs: StepLR step size in epochs (release: 100).
        lr_gamma: StepLR factor (release: 0.995).
        weight_decay: Adam weight decay (release: 0).
        grad_accum_steps: clips whose gradients are summed before an optimizer step.
        clip_grad_norm: clip the gradient norm to this value; 0 = off (release: off).
        max_segment_s: clips longer than this are cut into pieces (release: 60 s).
        max_frame_mismatch: allowed difference between control rows and audio frames.
        skip_bad_clips: leave out clips that fail to load instead of stopping.
        save_every: write ``epoch_NNNN.pt`` every this many epochs (0 = never).
        patience: stop after this many epochs without a better validation MAE (0 = never).
        seed: seeds weights, data order, dropout and SpecAugment.
        precision: "auto" (fp16 autocast on CUDA, fp32 on CPU), "fp32", "fp16" or "bf16".
        device: "cpu", "cuda" or None for CUDA when available.
        wav2vec2_dir: local Hugging Face wav2vec2 folder to start from (wav2vec2-base-960h).
        init_checkpoint: fine-tune from this checkpoint (released or ours) instead.
        cache_dir: folder for the conv-feature cache; None keeps features in memory only.
        progress: show progress bars.
        tensorboard: log to ``OUT/tensorboard`` when tensorboard is installed.
    """

    dataset: str
    output_dir: str
    manifest: str | None = None
    train_split: str = "train"
    val_split: str = "validation"
    val_fraction: float = 0.0
    epochs: int = 1000
    lr: float = 1e-5
    lr_step_epochs: int = 100
    lr_gamma: float = 0.995
    weight_decay: float = 0.0
    grad_accum_steps: int = 1
    clip_grad_norm: float = 0.0
    max_segment_s: float = MAX_SEGMENT_S
    max_frame_mismatch: int = DEFAULT_MAX_FRAME_MISMATCH
    skip_bad_clips: bool = False
    save_every: int = 100
    patience: int = 0
    seed: int = 0
    precision: str = "auto"
    device: str | None = None
    wav2vec2_dir: str | None = None
    init_checkpoint: str | None = None
    cache_dir: str | None = None
    progress: bool = True
    tensorboard: bool = True

    def __post_init__(self) -> None:
        positive = {
            "epochs": self.epochs,
            "grad_accum_steps": self.grad_accum_steps,
            "lr_step_epochs": self.lr_step_epochs,
        }
        for name, value in positive.items():
            if value < 1:
                raise ConfigError(f"`{name}` must be >= 1, but {value} is given")
        non_negative: dict[str, float] = {
            "weight_decay": self.weight_decay,
            "clip_grad_norm": self.clip_grad_norm,
            "max_frame_mismatch": self.max_frame_mismatch,
            "save_every": self.save_every,
            "patience": self.patience,
        }
        for name, amount in non_negative.items():
            if amount < 0:
                raise ConfigError(f"`{name}` must be >= 0, but {amount} is given")
        if not (self.lr > 0 and math.isfinite(self.lr)):
            raise ConfigError(f"`lr` must be a positive number, but {self.lr} is given")
        if not 0 < self.lr_gamma <= 1:
            raise ConfigError(f"`lr_gamma` must be within (0, 1], but {self.lr_gamma} is given")
        if not 0 <= self.val_fraction < 1:
            raise ConfigError(
                f"`val_fraction` must be within [0, 1), but {self.val_fraction} is given"
            )
        if self.max_segment_s < 1:
            raise ConfigError(f"`max_segment_s` must be >= 1, but {self.max_segment_s} is given")
        if self.precision not in PRECISIONS:
            raise ConfigError(
                f"`precision` must be one of {PRECISIONS}, but {self.precision!r} is given"
            )
        if self.wav2vec2_dir and self.init_checkpoint:
            raise ConfigError(
                "give either `wav2vec2_dir` (start a new model) or `init_checkpoint` (fine-tune), "
                "not both"
            )

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready settings."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        """Rebuild from ``to_dict`` output, ignoring keys this version does not know."""
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


@dataclass
class TrainResult:
    """What a finished (or stopped) run produced."""

    output_dir: Path
    epochs_done: int
    best_val_mae: float | None
    best_epoch: int | None
    history: list[dict[str, Any]] = field(default_factory=list)

    @property
    def last_checkpoint(self) -> Path:
        """The resumable checkpoint of the last finished epoch."""
        return self.output_dir / LAST_CHECKPOINT

    @property
    def best_checkpoint(self) -> Path:
        """The checkpoint with the lowest validation MAE."""
        return self.output_dir / BEST_CHECKPOINT


@dataclass
class _Piece:
    """One training/validation step: a segment of a clip with its targets."""

    name: str
    emotion: int
    audio_path: Path
    audio_sha256: str
    start_sample: int
    end_sample: int
    labels: np.ndarray  # float32 [T, 174]
    n_clip_samples: int  # 16 kHz samples of the clip used (trimmed to the controls' length)
    cache_key: str = ""

    @property
    def n_frames(self) -> int:
        return int(self.labels.shape[0])


class Trainer:
    """One training run; ``fit()`` runs it (see the module docstring).

    Args:
        config: training settings.
        model_config: network dimensions for a new model; None = wav2vec2-base dimensions from
            ``config.wav2vec2_dir`` with the paper's temporal decoder. Ignored when resuming
            or fine-tuning (the checkpoint's own dimensions are used).
        resume: continue from ``OUT/last.pt``.
        overwrite: start afresh even if ``OUT`` holds a previous run.
        resume_overrides: when resuming, the names of the ``RESUMABLE_OVERRIDES`` settings to
            take from ``config`` (what the user asked to change); None takes those that differ
            from ``TrainConfig``'s defaults. Everything else is the run's own, and the merged
            settings are recorded again in ``train_config.json``.
    """

    def __init__(
        self,
        config: TrainConfig,
        model_config: ModelConfig | None = None,
        *,
        resume: bool = False,
        overwrite: bool = False,
        resume_overrides: Collection[str] | None = None,
    ) -> None:
        self.output_dir = Path(config.output_dir)
        self.state: dict[str, Any] | None = None
        if resume:
            config, self.state = _resume_config(config, self.output_dir, resume_overrides)
        elif (self.output_dir / LAST_CHECKPOINT).is_file() and not overwrite:
            raise ConfigError(
                f"{self.output_dir} holds a previous run ({LAST_CHECKPOINT}); pass --resume to "
                "continue it, --overwrite to start again, or choose another output folder"
            )
        self.config = config
        self._overwrite = overwrite and not resume
        self.device = resolve_device(config.device)
        self.precision = _resolve_precision(config.precision, self.device)
        if self.state is None:
            _seed_everything(config.seed)
        self.model = self._build_model(model_config)
        self.model.train()
        self.optimizer = torch.optim.Adam(
            [p for p in self.model.parameters() if p.requires_grad],
            lr=config.lr,
            weight_decay=config.weight_decay,
        )
        self.scheduler = torch.optim.lr_scheduler.StepLR(
            self.optimizer, step_size=config.lr_step_epochs, gamma=config.lr_gamma
        )
        self.scaler = _grad_scaler(enabled=self.precision == "fp16")
        self.epoch = 0
        self.best_val_mae: float | None = None
        self.best_epoch: int | None = None
        self.bad_epochs = 0
        self.history: list[dict[str, Any]] = []
        self.train_pieces: list[_Piece] = []
        self.val_pieces: list[_Piece] = []
        self.dataset_info: dict[str, Any] = {}
        self.cache: FeatureCache | None = None
        self._tensorboard: Any = None

    # Setup

    def _build_model(self, model_config: ModelConfig | None) -> EmoFaceModel:
        cfg = self.config
        if self.state is not None:
            model, _ = load_model(self.output_dir / LAST_CHECKPOINT, device=self.device)
            return model
        if cfg.init_checkpoint:
            model, info = load_model(cfg.init_checkpoint, device=self.device)
            log.info(
                "fine-tuning %s checkpoint %s (decoder %s)",
                info["kind"],
                cfg.init_checkpoint,
                model.config.decoder_mode,
            )
            return model
        if cfg.wav2vec2_dir:
            kwargs = wav2vec2_kwargs_from_directory(cfg.wav2vec2_dir)
            if model_config is None:
                model_config = ModelConfig(wav2vec2=kwargs)
            elif not model_config.wav2vec2:
                model_config = replace(model_config, wav2vec2=kwargs)
            model = EmoFaceModel(model_config)
            init_wav2vec2_from_pretrained(model, cfg.wav2vec2_dir)
        elif model_config is not None:
            log.warning(
                "wav2vec2 starts from random weights (no wav2vec2 folder given): fine for tests, "
                "but a real model needs pretrained wav2vec2-base-960h"
            )
            model = EmoFaceModel(model_config)
        else:
            raise CheckpointError(
                "training needs a pretrained wav2vec2: pass --wav2vec2 DIR (a local folder "
                f"holding facebook/wav2vec2-base-960h; {WAV2VEC2_DOWNLOAD_HINT}) or fine-tune "
                "an existing model with --init-checkpoint PATH"
            )
        return model.to(self.device)

    def prepare(self) -> None:
        """Find the clips, load their targets, cut them and compute the conv features."""
        if self.train_pieces:
            return
        cfg = self.config
        index = discover_dataset(cfg.dataset, manifest=cfg.manifest)
        train_clips, val_clips = _choose_splits(index, cfg)
        train_pieces, bad = self._pieces(train_clips)
        val_pieces, bad_val = self._pieces(val_clips)
        bad += bad_val
        if bad:
            listing = "; ".join(bad[:5]) + (f"; and {len(bad) - 5} more" if len(bad) > 5 else "")
            if not cfg.skip_bad_clips:
                raise DatasetError(
                    f"{len(bad)} clip(s) cannot be used: {listing}. Run 'emoface dataset check "
                    f"{cfg.dataset}' for details, or pass --skip-bad-clips to train without them"
                )
            log.warning("skipping %d bad clip(s): %s", len(bad), listing)
        if not train_pieces:
            raise DatasetError(f"{cfg.dataset}: no usable training clips")
        longest = max(p.n_frames for p in train_pieces + val_pieces)
        limit = self.model.config.max_positions
        if self.model.config.decoder_mode == "temporal" and longest > limit:
            raise ConfigError(
                f"a piece of {longest} frames exceeds the decoder's {limit} positions "
                f"({limit / 60:.0f} s); lower max_segment_s (now {cfg.max_segment_s:g})"
            )
        self.train_pieces, self.val_pieces = train_pieces, val_pieces
        self.dataset_info = {
            "root": str(cfg.dataset),
            "layout": index.layout,
            "fingerprint": dataset_fingerprint(train_clips + val_clips),
            "n_train_clips": len(train_clips),
            "n_val_clips": len(val_clips),
            "n_train_pieces": len(train_pieces),
            "n_val_pieces": len(val_pieces),
            "train_duration_s": round(sum(p.n_frames for p in train_pieces) / 60.0, 3),
            "n_skipped_clips": len(bad),
        }
        if self.state is not None:
            saved = self.state.get("dataset", {}).get("fingerprint")
            if saved and saved != self.dataset_info["fingerprint"]:
                log.warning(
                    "the dataset changed since this run started (fingerprint differs): the "
                    "resumed run will not match an uninterrupted one"
                )
        self.cache = FeatureCache(cfg.cache_dir, encoder_fingerprint(self.model))
        self._compute_features(self.train_pieces + self.val_pieces)

    def _pieces(self, clips: list[Clip]) -> tuple[list[_Piece], list[str]]:
        pieces, bad = [], []
        for clip in clips:
            try:
                pieces += self._clip_pieces(clip)
            except (EmoFaceError, OSError) as e:
                bad.append(str(e).splitlines()[0])
        return pieces, bad

    def _clip_pieces(self, clip: Clip) -> list[_Piece]:
        import soundfile as sf

        if clip.emotion is None:
            raise DatasetError(
                f"{clip.audio_path}: cannot tell the emotion (name it ang_/dis_/fea_/hap_/neu_/"
                "sad_/sur_... or use a manifest with an 'emotion' column)"
            )
        try:
            info = sf.info(str(clip.audio_path))
        except Exception as e:  # soundfile raises several types for bad files
            raise DatasetError(f"{clip.audio_path}: not a readable audio file ({e})") from e
        n_audio_frames = frame_count(info.frames, info.samplerate)
        controls = load_controls(clip.controls_path)
        if not np.all(np.isfinite(controls)):
            raise DatasetError(f"{clip.controls_path}: holds NaN or infinite values")
        controls = align_controls(
            controls,
            n_audio_frames,
            max_mismatch=self.config.max_frame_mismatch,
            where=str(clip.controls_path),
        )
        n_frames = controls.shape[0]
        if n_frames < _min_frames(self.model):
            raise DatasetError(f"{clip.audio_path}: too short to train on ({n_frames} frames)")
        # 16 kHz samples of the clip: all of them, or fewer when the controls end early.
        n_samples_16k = (
            samples_for_frames(n_frames)
            if n_frames < n_audio_frames
            else math.ceil(info.frames * 16_000 / info.samplerate)
        )
        sha = file_sha256(clip.audio_path)
        segments = split_segments(n_samples_16k, n_frames, max_segment_s=self.config.max_segment_s)
        out = []
        for seg in segments:
            out.append(
                _Piece(
                    name=clip.name if len(segments) == 1 else f"{clip.name}#{seg.index}",
                    emotion=int(clip.emotion),
                    audio_path=clip.audio_path,
                    audio_sha256=sha,
                    start_sample=seg.start_sample,
                    end_sample=seg.end_sample,
                    labels=np.ascontiguousarray(controls[seg.start_frame : seg.end_frame]),
                    n_clip_samples=n_samples_16k,
                )
            )
        return out

    @torch.no_grad()
    def _compute_features(self, pieces: list[_Piece]) -> None:
        assert self.cache is not None
        missing: dict[Path, list[_Piece]] = {}  # by audio file, so each is decoded once
        for p in pieces:
            p.cache_key = self.cache.key(p.audio_sha256, p.start_sample, p.end_sample, p.n_frames)
            if self.cache.get(p.cache_key) is None:
                missing.setdefault(p.audio_path, []).append(p)
        items = _progress(list(missing.items()), self.config.progress, "features", "clip")
        for audio_path, clip_pieces in items:
            samples = normalize(load_audio(audio_path).samples)  # whole clip, as the release
            for p in clip_pieces:
                chunk = samples[: p.n_clip_samples][p.start_sample : p.end_sample]
                x = torch.from_numpy(np.ascontiguousarray(chunk)).to(self.device)[None]
                feats = self.model.extract_features(x, p.n_frames)[0].float().cpu().numpy()
                self.cache.put(p.cache_key, feats)
        n_missing = sum(len(ps) for ps in missing.values())
        log.info("conv features: %d cached, %d computed", len(pieces) - n_missing, n_missing)

    # Training

    def fit(self) -> TrainResult:
        """Train until ``epochs`` (or early stopping); returns what was produced.

        An interruption (Ctrl-C) during an epoch leaves ``last.pt`` at the last finished epoch;
        ``resume`` continues from there exactly.
        """
        cfg = self.config
        self.prepare()
        self.output_dir.mkdir(parents=True, exist_ok=True)
        if self.state is not None:
            self._restore(self.state)
            self.state = None
        elif self._overwrite:
            self._remove_previous_run()
        atomic_write(self.output_dir / CONFIG_FILE, json.dumps(cfg.to_dict(), indent=1) + "\n")
        self._open_tensorboard()
        try:
            while self.epoch < cfg.epochs:
                if cfg.patience and self.bad_epochs >= cfg.patience:
                    log.info("stopping: no better validation MAE for %d epochs", cfg.patience)
                    break
                self._run_epoch()
        finally:
            if self._tensorboard is not None:
                self._tensorboard.close()
        return TrainResult(
            self.output_dir, self.epoch, self.best_val_mae, self.best_epoch, list(self.history)
        )

    def _remove_previous_run(self) -> None:
        """Delete the checkpoints and metrics of the run being overwritten (nothing else)."""
        old = [self.output_dir / n for n in (LAST_CHECKPOINT, BEST_CHECKPOINT, METRICS_FILE)]
        old += sorted(self.output_dir.glob("epoch_[0-9]*.pt"))
        for path in old:
            if path.is_file():
                path.unlink()
                log.info("removed %s of the previous run", path)

    def _run_epoch(self) -> None:
        cfg = self.config
        started = time.perf_counter()
        epoch = self.epoch  # 0-based index of the epoch being run
        lr = self.optimizer.param_groups[0]["lr"]
        train_mse, train_mae = self._train_one_epoch(epoch)
        self.scheduler.step()
        row: dict[str, Any] = {
            "epoch": epoch + 1,
            "lr": lr,
            "train_mse": train_mse,
            "train_mae": train_mae,
        }
        val = self.validate()
        if val is not None:
            row.update(
                {
                    "val_mse": val.mse_all,
                    "val_mae": val.mae_all,
                    "val_mae_mouth": val.mae_mouth,
                    "val_mae_eye": val.mae_eye,
                    "val_jaw_corr": val.jaw_corr,
                }
            )
        self.epoch = epoch + 1
        improved = val is not None and (
            self.best_val_mae is None or val.mae_all < self.best_val_mae
        )
        if improved:
            self.best_val_mae, self.best_epoch, self.bad_epochs = val.mae_all, self.epoch, 0
        elif val is not None:
            self.bad_epochs += 1
        row["best_val_mae"] = self.best_val_mae
        row["epoch_time_s"] = round(time.perf_counter() - started, 3)
        self.history.append(row)
        self._log_row(row)
        if improved:
            save_checkpoint(self.output_dir / BEST_CHECKPOINT, self.model, extra=self._extra(val))
        if cfg.save_every and self.epoch % cfg.save_every == 0:
            save_checkpoint(
                self.output_dir / f"epoch_{self.epoch:04d}.pt", self.model, extra=self._extra(val)
            )
        extra = self._extra(val)
        extra["training_state"] = self._training_state()
        save_checkpoint(self.output_dir / LAST_CHECKPOINT, self.model, extra=extra)

    def _train_one_epoch(self, epoch: int) -> tuple[float, float]:
        cfg = self.config
        self.model.train()
        order = np.random.default_rng([cfg.seed, epoch]).permutation(len(self.train_pieces))
        bar = _progress(order, cfg.progress, f"epoch {epoch + 1}/{cfg.epochs}", "clip")
        sum_mse = sum_mae = 0.0
        self.optimizer.zero_grad(set_to_none=True)
        for i, idx in enumerate(bar):
            piece = self.train_pieces[int(idx)]
            with self._autocast():
                pred = self._predict(piece).float()
            target = torch.from_numpy(piece.labels).to(self.device)[None]
            loss = F.mse_loss(pred, target)
            self.scaler.scale(loss / cfg.grad_accum_steps).backward()
            if (i + 1) % cfg.grad_accum_steps == 0 or i + 1 == len(order):
                self._optimizer_step()
            sum_mse += loss.item()
            sum_mae += (pred.detach() - target).abs().mean().item()
            if hasattr(bar, "set_postfix"):
                bar.set_postfix(mse=f"{sum_mse / (i + 1):.5f}", mae=f"{sum_mae / (i + 1):.4f}")
        n = max(1, len(order))
        return sum_mse / n, sum_mae / n

    def _optimizer_step(self) -> None:
        if self.config.clip_grad_norm:
            self.scaler.unscale_(self.optimizer)
            torch.nn.utils.clip_grad_norm_(
                [p for p in self.model.parameters() if p.requires_grad], self.config.clip_grad_norm
            )
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.optimizer.zero_grad(set_to_none=True)

    def _features(self, piece: _Piece) -> np.ndarray:
        assert self.cache is not None
        feats = self.cache.get(piece.cache_key)
        assert feats is not None, f"conv features of {piece.name} were not computed"
        return feats

    def _predict(self, piece: _Piece) -> torch.Tensor:
        x = torch.from_numpy(self._features(piece)).to(self.device)[None]
        weights = torch.zeros(1, piece.n_frames, N_EMOTIONS, device=self.device)
        weights[..., piece.emotion] = 1.0
        return self.model.decode(self.model.encode_features(x), weights)

    @torch.no_grad()
    def validate(self):
        """Score the validation pieces (eval mode); None when there is no validation set."""
        if not self.val_pieces:
            return None
        self.model.eval()
        scores = []
        for piece in self.val_pieces:
            with self._autocast():
                pred = self._predict(piece)[0].float().cpu().numpy()
            scores.append(score_clip(pred, piece.labels, name=piece.name))
        self.model.train()
        return aggregate(scores)

    def _autocast(self):
        if self.precision == "fp32":
            return nullcontext()
        dtype = torch.float16 if self.precision == "fp16" else torch.bfloat16
        return torch.autocast(device_type=self.device.type, dtype=dtype)

    # Checkpoints, state and logs

    def _extra(self, val: Any) -> dict[str, Any]:
        return {
            "emoface_version": __version__,
            "epoch": self.epoch,
            "training": self.config.to_dict(),
            "dataset": dict(self.dataset_info),
            "val": asdict(val) if val is not None else None,
            "best_val_mae": self.best_val_mae,
            "best_epoch": self.best_epoch,
        }

    def _training_state(self) -> dict[str, Any]:
        np_state: tuple[Any, ...] = np.random.get_state(legacy=True)  # type: ignore[assignment]
        rng: dict[str, Any] = {
            "python": random.getstate(),
            "numpy": {
                "keys": torch.from_numpy(np_state[1].astype(np.int64)),
                "pos": np_state[2],
                "has_gauss": np_state[3],
                "cached_gaussian": np_state[4],
            },
            "torch": torch.get_rng_state(),
        }
        if self.device.type == "cuda":
            rng["cuda"] = torch.cuda.get_rng_state(self.device)
        return {
            "format": TRAIN_STATE_FORMAT,
            "format_version": TRAIN_STATE_VERSION,
            "epoch": self.epoch,
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict(),
            "rng": rng,
            "best_val_mae": self.best_val_mae,
            "best_epoch": self.best_epoch,
            "bad_epochs": self.bad_epochs,
            "history": self.history,
        }

    def _restore(self, state: dict[str, Any]) -> None:
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        if state.get("scaler"):
            self.scaler.load_state_dict(state["scaler"])
        self.epoch = int(state["epoch"])
        self.best_val_mae = state.get("best_val_mae")
        self.best_epoch = state.get("best_epoch")
        self.bad_epochs = int(state.get("bad_epochs", 0))
        self.history = [dict(r) for r in state.get("history", [])]
        rng = state["rng"]
        random.setstate(_as_python_rng_state(rng["python"]))
        np_state = rng["numpy"]
        np.random.set_state(
            (
                "MT19937",
                np_state["keys"].numpy().astype(np.uint32),
                int(np_state["pos"]),
                int(np_state["has_gauss"]),
                float(np_state["cached_gaussian"]),
            )
        )
        torch.set_rng_state(rng["torch"])
        if self.device.type == "cuda" and "cuda" in rng:
            torch.cuda.set_rng_state(rng["cuda"], self.device)
        self._rewrite_metrics()
        log.info("resumed %s at epoch %d", self.output_dir, self.epoch)

    def _log_row(self, row: dict[str, Any]) -> None:
        path = self.output_dir / METRICS_FILE
        if not path.is_file() or len(self.history) == 1:
            self._rewrite_metrics()
        else:
            with path.open("a", newline="", encoding="utf-8") as f:
                csv.DictWriter(f, METRIC_COLUMNS).writerow(_csv_row(row))
        if self._tensorboard is not None:
            for key, value in row.items():
                if key != "epoch" and value is not None:
                    self._tensorboard.add_scalar(key, value, row["epoch"])
        text = (
            f"epoch {row['epoch']}/{self.config.epochs}: train mse {row['train_mse']:.6f} "
            f"mae {row['train_mae']:.5f}"
        )
        if row.get("val_mae") is not None:
            best = " (best)" if self.best_epoch == row["epoch"] else ""
            text += (
                f" | val mae {row['val_mae']:.5f}{best} mouth {row['val_mae_mouth']:.5f} "
                f"eye {row['val_mae_eye']:.5f}"
            )
        log.info("%s | lr %.3g | %.1f s", text, row["lr"], row["epoch_time_s"])

    def _rewrite_metrics(self) -> None:
        buf = io.StringIO()
        writer = csv.DictWriter(buf, METRIC_COLUMNS, lineterminator="\n")
        writer.writeheader()
        for row in self.history:
            writer.writerow(_csv_row(row))
        atomic_write(self.output_dir / METRICS_FILE, buf.getvalue())

    def _open_tensorboard(self) -> None:
        if not self.config.tensorboard:
            return
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            log.info("tensorboard is not installed; metrics go to %s only", METRICS_FILE)
            return
        self._tensorboard = SummaryWriter(
            str(self.output_dir / "tensorboard"), purge_step=self.epoch + 1
        )


def train(
    config: TrainConfig,
    model_config: ModelConfig | None = None,
    *,
    resume: bool = False,
    overwrite: bool = False,
) -> TrainResult:
    """Train a model (see ``Trainer``); the library entry point of ``emoface train``."""
    return Trainer(config, model_config, resume=resume, overwrite=overwrite).fit()


def load_training_state(path: str | Path) -> dict[str, Any]:
    """The training state and settings stored in a ``last.pt``.

    Raises:
        CheckpointError: the file has no (or an unknown version of) training state.
    """
    data = load_checkpoint_dict(path)
    extra = data.get("extra") or {}
    state = extra.get("training_state")
    if not isinstance(state, dict) or state.get("format") != TRAIN_STATE_FORMAT:
        raise CheckpointError(
            f"{path}: holds no training state to resume (only {LAST_CHECKPOINT} files do)"
        )
    if state.get("format_version") != TRAIN_STATE_VERSION:
        raise CheckpointError(
            f"{path}: training state version {state.get('format_version')!r} is not supported "
            f"(this emoface resumes version {TRAIN_STATE_VERSION})"
        )
    return {**state, "training": extra.get("training", {}), "dataset": extra.get("dataset", {})}


def _resume_config(
    config: TrainConfig, output_dir: Path, chosen: Collection[str] | None = None
) -> tuple[TrainConfig, dict[str, Any]]:
    path = output_dir / LAST_CHECKPOINT
    if not path.is_file():
        raise CheckpointError(f"{path}: nothing to resume (no {LAST_CHECKPOINT} in {output_dir})")
    state = load_training_state(path)
    saved = TrainConfig.from_dict(state["training"])
    defaults = {f.name: f.default for f in fields(TrainConfig)}
    if chosen is None:  # library callers: what they set differently from the defaults
        chosen = [k for k in RESUMABLE_OVERRIDES if getattr(config, k) != defaults[k]]
    unknown = sorted(set(chosen) - set(RESUMABLE_OVERRIDES))
    if unknown:
        raise ConfigError(f"a resumed run cannot change {', '.join(unknown)}")
    # How this session shows progress is not part of the run's settings.
    session = ("progress", "tensorboard")
    overrides = {k: getattr(config, k) for k in (*chosen, *session)}
    if config.dataset:  # the data may have moved; the fingerprint tells whether it changed
        overrides["dataset"] = config.dataset
    ignored = [
        f.name
        for f in fields(TrainConfig)
        if f.name not in (*RESUMABLE_OVERRIDES, "dataset", "output_dir")
        and getattr(config, f.name) != f.default
        and getattr(config, f.name) != getattr(saved, f.name)
    ]
    if ignored:
        log.warning(
            "resuming keeps the run's own %s; the values given now are ignored", ", ".join(ignored)
        )
    return replace(saved, output_dir=str(output_dir), **overrides), state


def _choose_splits(index: DatasetIndex, cfg: TrainConfig) -> tuple[list[Clip], list[Clip]]:
    splits = index.splits
    train_split = normalize_split(cfg.train_split)
    val_split = normalize_split(cfg.val_split)
    if train_split in splits or train_split == ALL:
        pool = index.select(train_split)
    elif splits == [ALL]:
        pool = index.select(ALL)
    else:
        raise DatasetError(
            f"{index.root}: no {train_split!r} split; splits present: {', '.join(splits)}"
        )
    if val_split in NO_VALIDATION:
        return pool, []
    if val_split in splits:
        val = index.select(val_split)
        return [c for c in pool if c.split != val_split], val
    if cfg.val_fraction > 0:
        ranked = sorted(pool, key=lambda c: _unit_hash(c.name))
        held = [c for c in ranked if _unit_hash(c.name) < cfg.val_fraction] or ranked[:1]
        if len(held) == len(pool):
            raise DatasetError(f"{index.root}: too few clips to hold out a validation set")
        held_names = {c.name for c in held}
        return [c for c in pool if c.name not in held_names], held
    raise DatasetError(
        f"{index.root}: no {val_split!r} split (splits present: {', '.join(splits)}); add "
        f"ROOT/validation/WAV + VALID_CTR, a 'split' column in a manifest, pass --val-fraction "
        "0.1 to hold out clips, or --val-split none to train without validation"
    )


def _unit_hash(name: str) -> float:
    return int(hashlib.sha256(name.encode()).hexdigest()[:12], 16) / float(1 << 48)


def _min_frames(model: EmoFaceModel) -> int:
    """Fewest frames a training piece may have: wav2vec2's SpecAugment needs a whole mask span."""
    w2v = model.audio_encoder.config
    needs_mask = getattr(w2v, "apply_spec_augment", False) and getattr(w2v, "mask_time_prob", 0) > 0
    return max(2, int(w2v.mask_time_length) if needs_mask else 2)


def _resolve_precision(precision: str, device: torch.device) -> str:
    if precision == "auto":
        return "fp16" if device.type == "cuda" else "fp32"
    if precision == "fp16" and device.type != "cuda":
        raise ConfigError("fp16 training needs a CUDA device; use fp32 or bf16 on the CPU")
    return precision


def _grad_scaler(enabled: bool) -> Any:
    """fp16 loss scaling (a no-op when disabled); ``torch.amp.GradScaler`` is torch >= 2.3."""
    if hasattr(torch.amp, "GradScaler"):
        return torch.amp.GradScaler("cuda", enabled=enabled)
    return torch.cuda.amp.GradScaler(enabled=enabled)


def _seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % (1 << 32))
    torch.manual_seed(seed)


def _as_python_rng_state(state: Any) -> tuple:
    version, internal, gauss = state
    return (int(version), tuple(int(x) for x in internal), gauss)


def _csv_row(row: dict[str, Any]) -> dict[str, Any]:
    return {k: ("" if row.get(k) is None else row.get(k)) for k in METRIC_COLUMNS}


def _progress(items: Any, enabled: bool, desc: str, unit: str) -> Any:
    if not enabled:
        return items
    from tqdm import tqdm

    return tqdm(items, desc=desc, unit=unit, leave=False, dynamic_ncols=True)
