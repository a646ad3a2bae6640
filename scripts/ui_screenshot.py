"""Screenshot the Dagster asset graph: start the real webserver and daemon on loopback for one epiatlas config,
optionally launch jobs through the GraphQL API first (so the graph shows materialized assets), write a PNG.

    .venv/bin/python scripts/ui_screenshot.py --config demo_data/config.yaml --launch all_assets_job
"""

from __future__ import annotations

import argparse
import signal
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the UI driver lives with the tests, not in the wheel

from orchestration.definitions import build_definitions, config_path_from_env  # noqa: E402
from tests.ui_driver import DagsterUIError, launch_tags, running_ui, screenshot_asset_graph  # noqa: E402

DEFAULT_OUT = Path(__file__).resolve().parents[1] / "docs" / "img" / "dagster-asset-graph.png"
DEFAULT_EXPAND = ["outcomes", "publish", "reports"]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, default=None, help="epiatlas config (default: $EPIATLAS_CONFIG or "
                        "demo_data/config.yaml)")  # fmt: skip
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"PNG to write (default: {DEFAULT_OUT})")
    parser.add_argument("--home", type=Path, default=None, help="DAGSTER_HOME to use, e.g. .dagster_home to show its "
                        "runs (default: a new temporary one)")  # fmt: skip
    parser.add_argument("--launch", action="append", default=[], metavar="JOB",
                        help="launch this job (over every period when partitioned) and wait for it; repeatable")
    parser.add_argument("--expand", action="append", default=None, metavar="GROUP",
                        help=f"asset group drawn open; repeatable (default: {' '.join(DEFAULT_EXPAND)})")
    parser.add_argument("--size", default="1600x1000", help="viewport WIDTHxHEIGHT in pixels (default: 1600x1000)")
    parser.add_argument("--run-timeout", type=float, default=900.0, help="seconds to wait for each launched run")
    return parser.parse_args(argv)


def shown_names(config: Path, expand: list[str]) -> list[str]:
    """Every group name, and the names of the assets of the expanded groups: what the page must draw."""
    graph = build_definitions(config).resolve_asset_graph()
    nodes = [graph.get(key) for key in graph.get_all_asset_keys()]
    return sorted({n.group_name for n in nodes} | {n.key.to_user_string() for n in nodes if n.group_name in expand})


def screenshot(args: argparse.Namespace, home: Path) -> None:
    """Start the UI, launch the jobs asked for, write the screenshot."""
    config = (args.config or config_path_from_env()).resolve()
    expand = args.expand or DEFAULT_EXPAND
    width, height = (int(v) for v in args.size.lower().split("x"))
    with running_ui(config, home) as ui:
        for job in args.launch:
            started = time.monotonic()
            run_id = ui.launch(job, launch_tags(config, job))
            status = ui.wait_for_run(run_id, args.run_timeout)
            print(f"{job}: run {run_id} {status} in {time.monotonic() - started:.0f} s")
            if status != "SUCCESS":
                raise DagsterUIError(f"{job} ended {status} (run {run_id}, DAGSTER_HOME {home}):\n"
                                     + "\n".join(ui.run_failures(run_id)))
        screenshot_asset_graph(ui.url, args.out, expand, shown_names(config, expand), (width, height))
    print(f"wrote {args.out} ({args.out.stat().st_size // 1024} KiB)")


def main(argv: list[str] | None = None) -> int:
    """Entry point; a termination signal still stops the servers."""
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    args = parse_args(argv)
    try:
        if args.home:
            screenshot(args, args.home.resolve())
        else:
            with tempfile.TemporaryDirectory(prefix="epiatlas-ui-") as home:
                screenshot(args, Path(home))
    except DagsterUIError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
