"""``emoface train``: train or fine-tune EmoFace on a dataset of audio + controller values."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from bridge.commands.options import HelpFormatter, positive_int

EPILOG = """\
starting point (one of):
  --wav2vec2 DIR          a new model; wav2vec2 starts from the pretrained wav2vec2-base-960h in
                          DIR (a local Hugging Face folder: config.json + model weights)
  --init-checkpoint PATH  fine-tune an existing model (the authors' *_model.pth or ours)
  --model-config FILE     a new model with the dimensions in this JSON file (ModelConfig
                          fields); without --wav2vec2, wav2vec2 starts from random weights
                          (tests only)

output folder:
  last.pt (every epoch, resumable), best.pt (lowest validation MAE), epoch_NNNN.pt (every
  --save-every epochs), metrics.csv, train_config.json, tensorboard/ (when installed).
  Every .pt file loads in 'emoface bake --checkpoint' and 'emoface eval'.

resume:
  emoface train -o OUT --resume [--epochs N]   continues exactly where the last finished epoch
  left off (weights, optimizer, LR schedule, random state); only --epochs, --device,
  --save-every, --patience, --cache-dir and the display flags may change.
"""


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``train`` subcommand."""
    p = subparsers.add_parser(
        "train",
        help="train or fine-tune EmoFace on your own recordings",
        description="Train EmoFace on audio + per-frame controller values (paper 4.2).",
        epilog=EPILOG,
        formatter_class=HelpFormatter,
    )
    p.add_argument(
        "root", nargs="?", default=None, help="dataset folder or manifest (optional with --resume)"
    )
    p.add_argument("-o", "--output", required=True, help="output folder for checkpoints and logs")
    start = p.add_argument_group("starting point")
    start.add_argument(
        "--wav2vec2",
        default=None,
        metavar="DIR",
        help="local wav2vec2-base-960h folder (Hugging Face format)",
    )
    start.add_argument(
        "--init-checkpoint",
        default=None,
        metavar="PATH",
        help="fine-tune this checkpoint instead of starting a new model",
    )
    start.add_argument(
        "--model-config",
        default=None,
        metavar="FILE",
        help="JSON file of ModelConfig fields for a new model (default: the paper's network)",
    )
    start.add_argument(
        "--decoder-mode",
        default=None,
        choices=("temporal", "per_frame"),
        help="new models: temporal (paper, default) or per_frame (release)",
    )
    opt = p.add_argument_group("optimisation (defaults: the authors' release)")
    opt.add_argument(
        "--epochs", type=positive_int, default=None, help="total epochs (default 1000)"
    )
    opt.add_argument("--lr", type=float, default=1e-5, help="Adam learning rate")
    opt.add_argument("--lr-step-epochs", type=positive_int, default=100, help="StepLR step size")
    opt.add_argument("--lr-gamma", type=float, default=0.995, help="StepLR factor")
    opt.add_argument("--weight-decay", type=float, default=0.0, help="Adam weight decay")
    opt.add_argument(
        "--grad-accum",
        type=positive_int,
        default=1,
        help="clips per optimizer step (gradient accumulation)",
    )
    opt.add_argument("--clip-grad-norm", type=float, default=0.0, help="0 = no clipping")
    opt.add_argument(
        "--max-segment-s",
        type=float,
        default=60.0,
        help="longer clips are cut into pieces of this length",
    )
    opt.add_argument("--seed", type=int, default=0, help="weights, data order, dropout, masks")
    opt.add_argument(
        "--precision",
        default="auto",
        choices=("auto", "fp32", "fp16", "bf16"),
        help="auto = fp16 mixed precision on CUDA, fp32 on the CPU",
    )
    opt.add_argument(
        "--device", default=None, choices=("cpu", "cuda"), help="default: cuda if available"
    )
    data = p.add_argument_group("data")
    data.add_argument("--manifest", default=None, help="manifest instead of the folder layout")
    data.add_argument("--train-split", default="train", help="split to train on")
    data.add_argument(
        "--val-split", default="validation", help="split to validate on ('none' = no validation)"
    )
    data.add_argument(
        "--val-fraction",
        type=float,
        default=0.0,
        help="hold out this fraction of clips when there is no validation split",
    )
    data.add_argument(
        "--max-frame-mismatch",
        type=int,
        default=3,
        help="frames by which controls may differ from the audio's frame count",
    )
    data.add_argument(
        "--skip-bad-clips",
        action="store_true",
        help="leave out clips that cannot be used instead of stopping",
    )
    data.add_argument(
        "--cache-dir", default=None, help=f"conv-feature cache (default {default_cache_dir()})"
    )
    data.add_argument(
        "--no-cache",
        action="store_true",
        help="keep features in memory only (recomputed by every run)",
    )
    run_group = p.add_argument_group("run")
    run_group.add_argument(
        "--save-every",
        type=int,
        default=None,
        help="write epoch_NNNN.pt every N epochs (0 = never; default 100)",
    )
    run_group.add_argument(
        "--patience",
        type=int,
        default=None,
        help="stop after N epochs without a better validation MAE (0 = off, the default)",
    )
    run_group.add_argument("--resume", action="store_true", help="continue the run in --output")
    run_group.add_argument(
        "--overwrite", action="store_true", help="start afresh even though --output holds a run"
    )
    run_group.add_argument("--no-progress", action="store_true", help="no progress bars")
    run_group.add_argument(
        "--no-tensorboard",
        action="store_true",
        help="no TensorBoard logs even when tensorboard is installed",
    )
    p.set_defaults(func=run, _parser=p)


def default_cache_dir() -> Path:
    """``features`` in the platform's cache folder.

    ``~/.cache/emoface/features`` on Linux (``$XDG_CACHE_HOME`` honoured).
    """
    import platformdirs

    return Path(platformdirs.user_cache_dir("emoface", appauthor=False)) / "features"


def run(args: argparse.Namespace) -> int:
    """Build the settings, train, and say where the results are."""
    parser: argparse.ArgumentParser = args._parser
    if not args.root and not args.resume:
        parser.error("give the dataset ROOT (it may be left out only with --resume)")
    if args.resume and args.overwrite:
        parser.error("--resume and --overwrite contradict each other")
    if args.wav2vec2 and args.init_checkpoint:
        parser.error("give --wav2vec2 (a new model) or --init-checkpoint (fine-tune), not both")
    if args.init_checkpoint and (args.model_config or args.decoder_mode):
        parser.error("a fine-tuned model keeps its checkpoint's dimensions and decoder mode")

    import logging

    from emoface_core.engines.neural.config import ModelConfig
    from emoface_core.errors import ConfigError
    from emoface_core.training.train import TrainConfig, Trainer

    model_config = None
    if args.model_config:
        path = Path(args.model_config)
        try:
            model_config = ModelConfig.from_dict(json.loads(path.read_text(encoding="utf-8")))
        except (OSError, json.JSONDecodeError, TypeError) as e:
            raise ConfigError(f"{path}: not a readable ModelConfig JSON ({e})") from e
    if args.decoder_mode:
        from dataclasses import replace

        model_config = replace(model_config or ModelConfig(), decoder_mode=args.decoder_mode)

    # Flags a resumed run may change, and only when typed: the run's own settings win otherwise.
    typed = {
        name: getattr(args, name)
        for name in ("epochs", "save_every", "patience", "device", "cache_dir")
        if getattr(args, name) is not None
    }
    config = TrainConfig(
        dataset=args.root or "",
        output_dir=args.output,
        manifest=args.manifest,
        train_split=args.train_split,
        val_split=args.val_split,
        val_fraction=args.val_fraction,
        epochs=typed.get("epochs", TrainConfig.epochs),
        lr=args.lr,
        lr_step_epochs=args.lr_step_epochs,
        lr_gamma=args.lr_gamma,
        weight_decay=args.weight_decay,
        grad_accum_steps=args.grad_accum,
        clip_grad_norm=args.clip_grad_norm,
        max_segment_s=args.max_segment_s,
        max_frame_mismatch=args.max_frame_mismatch,
        skip_bad_clips=args.skip_bad_clips,
        save_every=typed.get("save_every", TrainConfig.save_every),
        patience=typed.get("patience", TrainConfig.patience),
        seed=args.seed,
        precision=args.precision,
        device=args.device,
        wav2vec2_dir=args.wav2vec2,
        init_checkpoint=args.init_checkpoint,
        cache_dir=None if args.no_cache else str(args.cache_dir or default_cache_dir()),
        progress=not args.no_progress and sys.stderr.isatty(),
        tensorboard=not args.no_tensorboard,
    )
    logging.getLogger("emoface_core.training.train").setLevel(logging.INFO)  # one line per epoch
    trainer = Trainer(
        config,
        model_config,
        resume=args.resume,
        overwrite=args.overwrite,
        resume_overrides=set(typed) if args.resume else None,
    )
    n_params = sum(p.numel() for p in trainer.model.parameters() if p.requires_grad)
    print(
        f"emoface: training {n_params / 1e6:.2f}M parameters "
        f"({trainer.model.config.decoder_mode} decoder) on {trainer.device}, "
        f"precision {trainer.precision}",
        file=sys.stderr,
    )
    try:
        result = trainer.fit()
    except KeyboardInterrupt:
        print(
            f"emoface: interrupted; {args.output}/last.pt holds epoch {trainer.epoch}. "
            f"Continue with: emoface train -o {args.output} --resume",
            file=sys.stderr,
        )
        return 130
    info = trainer.dataset_info
    print(
        f"emoface: {info.get('n_train_clips', 0)} training and {info.get('n_val_clips', 0)} "
        f"validation clips; {result.epochs_done} epochs done",
        file=sys.stderr,
    )
    if result.best_val_mae is not None:
        print(
            f"emoface: best validation MAE {result.best_val_mae:.5f} at epoch {result.best_epoch}"
            f" -> {result.best_checkpoint}",
            file=sys.stderr,
        )
    print(f"emoface: last checkpoint {result.last_checkpoint}", file=sys.stderr)
    return 0
