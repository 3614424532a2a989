"""``emoface unreal``: install the Unreal plugin, check an install, refresh generated files."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from bridge.commands.options import HelpFormatter

NEXT_STEPS = (
    """\
Next, in Unreal Editor 5.4-5.6:
  1. Open {uproject_name}. The plugin is enabled by default (Edit > Plugins > "EmoFace Bridge");
     it turns on Python Editor Script Plugin, Editor Scripting Utilities, Sequencer Scripting,
     Level Sequence Editor and Control Rig. Restart the editor if it asks.
  2. An "EmoFace" menu appears in the main menu bar (Window ... Tools ... EmoFace ... Help).
  3. Put a MetaHuman in the level, then EmoFace > Start live drive...: subject npc1, actor = the
     MetaHuman's label (or leave it empty and select the MetaHuman first), OK.
  4. In a terminal:  emoface stream line.wav --subject npc1 --emotion happy
     (ZeroMQ on tcp://127.0.0.1:5555; the plugin subscribes with its built-in client, no pyzmq
     needed in the editor. For OSC choose transport "osc" and run:
     emoface stream line.wav --subject npc1 --osc 127.0.0.1:9000)
Bake a folder of .json/.txt files: EmoFace > Bake files into assets..., or headless (one line):
"""
    + (  # a command to copy, so printed on one line
        'UnrealEditor-Cmd "{uproject}" -run=pythonscript -script="{bake_script} --input DIR '
        '--anim-only --skeleton /Game/MetaHumans/Common/Face/Face_Archetype_Skeleton"\n'
        "See docs/unreal.md for the Level Sequence bake and the Live Link Face route."
    )
)


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``unreal`` subcommand and its actions."""
    p = subparsers.add_parser(
        "unreal",
        help="install and check the Unreal Editor plugin",
        description="Install the EmoFace Bridge plugin into an Unreal project, check an install, "
        "or refresh the plugin's generated files.",
        formatter_class=HelpFormatter,
    )
    actions = p.add_subparsers(dest="unreal_action", metavar="ACTION")
    p.set_defaults(func=lambda args: (p.print_help(), 2)[1])

    i = actions.add_parser(
        "install",
        help="copy the plugin into PROJECT/Plugins/EmoFaceBridge",
        description="Copy the plugin into PROJECT/Plugins/EmoFaceBridge with the protocol module "
        "and "
        "the mappings it bakes with, generated from this installation.",
        formatter_class=HelpFormatter,
    )
    i.add_argument("project", help="the Unreal project folder (or its .uproject file)")
    i.add_argument(
        "--mapping",
        default="metahuman_faceboard",
        help="control-rig mapping for Level Sequence bakes (shipped name or .yaml path)",
    )
    i.add_argument(
        "--curves-mapping",
        default="metahuman_curves",
        help="curve mapping for AnimSequence bakes (shipped name or .yaml path)",
    )
    i.add_argument(
        "--wheel",
        action="append",
        default=[],
        type=Path,
        metavar="WHEEL",
        help="a cp311 binary wheel to vendor per platform (e.g. pyzmq); repeatable",
    )
    i.add_argument(
        "--force",
        action="store_true",
        help="replace a Plugins/EmoFaceBridge folder that is not an EmoFace install",
    )
    i.set_defaults(func=run_install)

    c = actions.add_parser(
        "check",
        help="say whether a project's plugin matches this installation",
        description="Check that PROJECT's EmoFace plugin is present and matches this bridge "
        "(protocol, channels, plugin code). Exits 1 when something is out of date.",
        formatter_class=HelpFormatter,
    )
    c.add_argument("project", help="the Unreal project folder (or its .uproject file)")
    c.set_defaults(func=run_check)

    s = actions.add_parser(
        "sync",
        help="regenerate the plugin's generated files in the source tree (developers)",
        description="Rewrite unreal_plugin/EmoFaceBridge's generated files (protocol.py copy, "
        "channel list, compiled mappings) from their sources in this checkout.",
        formatter_class=HelpFormatter,
    )
    s.add_argument(
        "--check", action="store_true", help="write nothing; exit 1 if anything is stale"
    )
    s.set_defaults(func=run_sync)


def run_install(args: argparse.Namespace) -> int:
    """Install and print what to do next."""
    from bridge.unreal_install import install_plugin

    report = install_plugin(
        args.project,
        faceboard=args.mapping,
        curves=args.curves_mapping,
        wheels=tuple(args.wheel),
        force=args.force,
    )
    verb = "Updated" if report.replaced else "Installed"
    print(f"{verb} EmoFace Bridge in {report.plugin_dir}")
    print(
        f"  bakes with mappings: {report.mappings['faceboard']} (Level Sequences), "
        f"{report.mappings['curves']} (AnimSequences)"
    )
    for site in report.vendored:
        print(f"  vendored packages kept/added in {site}")
    bake_script = (report.plugin_dir / "Content" / "Python" / "emoface_bake.py").as_posix()
    print(
        NEXT_STEPS.format(
            uproject=report.uproject, uproject_name=report.uproject.name, bake_script=bake_script
        )
    )
    return 0


def run_check(args: argparse.Namespace) -> int:
    """Print problems (exit 1) or a one-line OK with what is installed."""
    from bridge.unreal_install import check_install, installed_summary

    problems = check_install(args.project)
    for problem in problems:
        print(f"emoface unreal check: {problem}", file=sys.stderr)
    if problems:
        return 1
    summary = installed_summary(args.project)
    zmq = ", ".join(summary["pyzmq"]) or "none (the built-in ZeroMQ subscriber is used)"
    print(
        f"EmoFace plugin OK: faceboard {summary['faceboard']}, curves {summary['curves']}, "
        f"vendored pyzmq: {zmq}"
    )
    return 0


def run_sync(args: argparse.Namespace) -> int:
    """Regenerate (or check) the source tree's generated files."""
    from bridge.unreal_install import plugin_source_dir, sync_plugin_tree

    plugin_dir = plugin_source_dir()
    changed = sync_plugin_tree(plugin_dir, check=args.check)
    if args.check:
        for rel in changed:
            print(f"emoface unreal sync: stale: {rel} (run `emoface unreal sync`)", file=sys.stderr)
        return 1 if changed else 0
    print(f"{plugin_dir}: " + (f"rewrote {', '.join(changed)}" if changed else "up to date"))
    return 0
