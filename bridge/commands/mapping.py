"""``emoface mapping validate|show|schema|new|list``: check, inspect and start rig mappings."""

from __future__ import annotations

import argparse
import json
import math
import sys

from bridge.commands.options import HelpFormatter


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``mapping`` subcommand and its actions."""
    p = subparsers.add_parser(
        "mapping",
        help="validate, show or create rig mapping files",
        description="Work with the YAML files that map EmoFace's 174 channels to rig targets. "
        "FILE may be a path or a shipped mapping's short name "
        "(metahuman_faceboard, metahuman_curves, arkit52).",
        formatter_class=HelpFormatter,
    )
    actions = p.add_subparsers(dest="mapping_action", metavar="ACTION")
    p.set_defaults(func=lambda args: (p.print_help(), 2)[1])

    v = actions.add_parser(
        "validate",
        help="check mapping files; report every problem with file:line: key",
        formatter_class=HelpFormatter,
    )
    v.add_argument("files", nargs="+", metavar="FILE", help="mapping files or shipped names")
    v.set_defaults(func=run_validate)

    s = actions.add_parser(
        "show",
        help="print the effective target table of a mapping",
        formatter_class=HelpFormatter,
    )
    s.add_argument("file", metavar="FILE", help="mapping file or shipped name")
    s.add_argument("--json", action="store_true", help="print JSON rows instead of a table")
    s.set_defaults(func=run_show)

    j = actions.add_parser(
        "schema",
        help="print the JSON Schema of mapping files (for editor completion)",
        formatter_class=HelpFormatter,
    )
    j.add_argument("-o", "--output", default=None, help="write to this file instead of stdout")
    j.set_defaults(func=run_schema)

    n = actions.add_parser(
        "new",
        help="start a custom mapping from an existing one (comments kept)",
        formatter_class=HelpFormatter,
    )
    n.add_argument(
        "--from",
        dest="source",
        default="metahuman_faceboard",
        metavar="FILE",
        help="mapping to copy (file or shipped name)",
    )
    n.add_argument("output", metavar="OUT", help="new mapping file (.yaml)")
    n.add_argument("--name", default=None, help="name of the new mapping (default: OUT's stem)")
    n.add_argument("--force", action="store_true", help="overwrite OUT if it exists")
    n.set_defaults(func=run_new)

    ls = actions.add_parser("list", help="list the shipped mappings")
    ls.set_defaults(func=run_list)


def run_validate(args: argparse.Namespace) -> int:
    """Validate each file; print every problem; exit 1 when any file has one."""
    from bridge.errors import MappingError
    from bridge.mapping import load_mapping

    n_bad = 0
    for name in args.files:
        try:
            mapping = load_mapping(name)
        except MappingError as e:
            n_bad += 1
            problems: list[object] = list(e.problems) or [e]
            for problem in problems:
                print(problem, file=sys.stderr)
            print(f"{name}: {len(problems)} problem(s)", file=sys.stderr)
            continue
        print(
            f"{mapping.path}: ok ({mapping.name}, {mapping.target_kind}: "
            f"{mapping.n_targets} targets, {len(mapping.dropped)} channels dropped)"
        )
    return 1 if n_bad else 0


def run_show(args: argparse.Namespace) -> int:
    """Print the effective table."""
    from bridge.mapping import load_mapping, mapping_table

    mapping = load_mapping(args.file)
    rows = mapping_table(mapping)
    if args.json:
        print(json.dumps([_jsonable(r) for r in rows], indent=1))
        return 0
    print(f"{mapping.name} ({mapping.target_kind}, version {mapping.version}) {mapping.path}")
    if mapping.description:
        print(f"  {mapping.description}")
    targets = [r for r in rows if r["target"] is not None]
    dropped = [r for r in rows if r["target"] is None]
    width = max((len(r["target"]) for r in targets), default=6)
    print(f"\n{'#':>4}  {'target':<{width}}  {'scale':>6} {'offset':>6}  {'clamp':<11} source(s)")
    for i, r in enumerate(targets):
        clamp = (
            "-"
            if math.isinf(r["clamp"][0]) and math.isinf(r["clamp"][1])
            else (f"[{_num(r['clamp'][0])}, {_num(r['clamp'][1])}]")
        )
        print(
            f"{i:>4}  {r['target']:<{width}}  {_num(r['scale']):>6} {_num(r['offset']):>6}  "
            f"{clamp:<11} {' + '.join(r['sources'])}"
        )
    print(f"\n{len(targets)} targets; {len(dropped)} channels dropped")
    for r in dropped:
        print(f"  {r['sources'][0]}: {r['dropped']}")
    return 0


def run_schema(args: argparse.Namespace) -> int:
    """Print or write the JSON Schema."""
    from bridge.mapping import json_schema
    from emoface_core.formats import atomic_write

    text = json.dumps(json_schema(), indent=2) + "\n"
    if args.output:
        atomic_write(args.output, text)
        print(f"{args.output}: JSON Schema written", file=sys.stderr)
    else:
        sys.stdout.write(text)
    return 0


def run_new(args: argparse.Namespace) -> int:
    """Copy a mapping, renamed, with comments and key order kept."""
    from pathlib import Path

    from bridge.mapping import new_mapping

    if Path(args.output).exists() and not args.force:
        print(f"emoface: error: {args.output} exists; pass --force to overwrite", file=sys.stderr)
        return 1
    path = new_mapping(args.source, args.output, name=args.name)
    print(
        f"{path}: new mapping from {args.source}; edit it, then run "
        f"'emoface mapping validate {path}'",
        file=sys.stderr,
    )
    return 0


def run_list(args: argparse.Namespace) -> int:
    """Print the shipped mappings."""
    from bridge.mapping import SHIPPED_MAPPINGS, load_mapping

    for name in SHIPPED_MAPPINGS:
        mapping = load_mapping(name)
        print(f"{name:<22} {mapping.n_targets:>4} targets  {mapping.description}")
    return 0


def _num(x: float) -> str:
    return f"{x + 0.0:g}"  # no "-0"


def _jsonable(row: dict) -> dict:
    out = dict(row)
    if "clamp" in out:
        out["clamp"] = [None if math.isinf(x) else x for x in out["clamp"]]
    return out
