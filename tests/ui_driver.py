"""Drive the real Dagster UI the way an analyst's browser does: start `dagster-webserver` and `dagster-daemon` on
loopback for one epiatlas config, launch runs and read asset metadata over the GraphQL API the UI calls, and
screenshot the asset graph in headless Chromium.

Every process runs in its own process group and is terminated on exit; every wait is bounded.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import requests

LOOPBACK = "127.0.0.1"
MODULE = "orchestration.definitions"
REPO_ROOT = Path(__file__).resolve().parents[1]
TERMINAL_STATUSES = {"SUCCESS", "FAILURE", "CANCELED"}
INSTANCE_YAML = "telemetry:\n  enabled: false\nnux:\n  enabled: false\npython_logs:\n  python_log_level: INFO\n"
GRAPH_PAGE = "/asset-groups"  # "Global asset lineage"
HIDE_NAVIGATION = "localStorage.setItem('dagster-nav-collapsed', 'true')"
# Every name drawn as a line of its own, whole or shortened in the middle ("region_p…_outcomes") as the UI does.
NAMES_SHOWN = """names => {
  const lines = document.body.innerText.split('\\n').map(line => line.trim());
  const drawn = (name, line) => line === name || (line.includes('\u2026')
    && name.startsWith(line.split('\u2026')[0]) && name.endsWith(line.split('\u2026')[1]));
  return names.every(name => lines.some(line => drawn(name, line)));
}"""

WORKSPACE_QUERY = """{ workspaceOrError { __typename ... on Workspace { locationEntries { name loadStatus
  locationOrLoadError { __typename ... on PythonError { message causes { message } } } } } } }"""
MATERIALIZATION_QUERY = """query ($key: AssetKeyInput!) { assetOrError(assetKey: $key) { __typename
  ... on Asset { assetMaterializations(limit: 1) { runId metadataEntries { label __typename
    ... on IntMetadataEntry { intRepr } ... on FloatMetadataEntry { floatRepr } ... on TextMetadataEntry { text } } } } } }"""
FAILURES_QUERY = """query ($id: ID!) { runOrError(runId: $id) { ... on Run { eventConnection(limit: 100000) { events {
  __typename ... on ExecutionStepFailureEvent { stepKey error { message causes { message } } }
  ... on RunFailureEvent { message } } } } } }"""
RUN_QUERY = """query ($id: ID!) { runOrError(runId: $id) { __typename ... on Run { status } } }"""


class DagsterUIError(Exception):
    """The Dagster webserver or daemon did not come up, or a request or a run made through its GraphQL API failed."""


def free_port() -> int:
    """A TCP port free on the loopback interface."""
    with socket.socket() as sock:
        sock.bind((LOOPBACK, 0))
        return sock.getsockname()[1]


def prepare_home(home: Path) -> Path:
    """A DAGSTER_HOME with a dagster.yaml (telemetry and the welcome tour off) unless it already has one."""
    home.mkdir(parents=True, exist_ok=True)
    config = home / "dagster.yaml"
    if not config.exists():
        config.write_text(INSTANCE_YAML)
    return home


def _tail(log: Path, lines: int = 15) -> str:
    """The last lines of a log file, for error messages."""
    return "\n".join(log.read_text(errors="replace").splitlines()[-lines:]) if log.exists() else "(no log)"


@dataclass
class _Process:
    """One started server process and the log it writes."""

    name: str
    popen: subprocess.Popen
    log: Path

    def check_alive(self) -> None:
        """Raise DagsterUIError, with its log's tail, when the process has exited."""
        if self.popen.poll() is not None:
            raise DagsterUIError(f"{self.name} exited with code {self.popen.returncode}; its log {self.log} ends:\n"
                                 f"{_tail(self.log)}")  # fmt: skip

    def stop(self, grace_s: float = 20.0) -> None:
        """Terminate the process group (the server and the code servers and runs it started), then kill it."""
        for sig in (signal.SIGTERM, signal.SIGKILL):
            try:
                os.killpg(self.popen.pid, sig)
            except ProcessLookupError:
                return
            try:
                self.popen.wait(timeout=grace_s)
                return
            except subprocess.TimeoutExpired:
                continue


def _start(name: str, args: list[str], env: Mapping[str, str], log: Path) -> _Process:
    """Start one Dagster command of this virtual environment in a new process group, its output to `log`."""
    executable = Path(sys.executable).parent / args[0]
    if not executable.exists():
        raise DagsterUIError(f"{executable} not found: install the project (`make setup`) into this environment")
    with log.open("wb") as out:
        popen = subprocess.Popen([str(executable), *args[1:]], cwd=REPO_ROOT, env=dict(env), stdout=out,
                                 stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
    return _Process(name, popen, log)


@dataclass
class DagsterUI:
    """A running webserver (and daemon) at `url`, with the processes behind it."""

    url: str
    processes: list[_Process]
    timeout_s: float = 30.0

    def graphql(self, query: str, variables: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """The `data` of one GraphQL request; DagsterUIError when the server answers with errors."""
        try:
            response = requests.post(f"{self.url}/graphql", json={"query": query, "variables": dict(variables or {})},
                                     timeout=self.timeout_s)  # fmt: skip
        except requests.RequestException as exc:
            raise DagsterUIError(f"GraphQL request to {self.url} failed: {exc}") from exc
        body = response.json() if response.headers.get("content-type", "").startswith("application/json") else {}
        if response.status_code != 200 or body.get("errors") or "data" not in body:
            raise DagsterUIError(f"GraphQL request to {self.url} answered {response.status_code}: "
                                 f"{body.get('errors') or response.text[:300]}")  # fmt: skip
        return body["data"]

    def check_alive(self) -> None:
        """DagsterUIError when the webserver or the daemon has exited."""
        for process in self.processes:
            process.check_alive()

    def wait_until_loaded(self, timeout_s: float) -> list[str]:
        """Wait until the server answers and its code locations have loaded; their names."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            self.check_alive()
            try:
                entries = self.graphql(WORKSPACE_QUERY)["workspaceOrError"].get("locationEntries") or []
            except DagsterUIError:
                entries = []  # not answering yet
            if entries and all(e["loadStatus"] == "LOADED" for e in entries):
                failed = [e for e in entries if e["locationOrLoadError"]["__typename"] == "PythonError"]
                if failed:
                    error = failed[0]["locationOrLoadError"]
                    cause = (error["causes"] or [error])[-1]["message"].strip()  # the innermost: the user's error
                    raise DagsterUIError(f"code location {failed[0]['name']} did not load: {cause}")
                return [e["name"] for e in entries]
            time.sleep(0.5)
        raise DagsterUIError(f"{self.url} did not serve a loaded code location within {timeout_s:.0f} s; "
                             f"see {self.processes[0].log}")  # fmt: skip

    def launch(self, job: str, tags: Mapping[str, str] | None = None) -> str:
        """Launch a job as the launchpad does (queued for the daemon); the run id. Partitioned jobs need a
        `dagster/partition` tag, or `dagster/asset_partition_range_start` and `..._end`."""
        from dagster_graphql import DagsterGraphQLClient, DagsterGraphQLClientError

        host, port = self.url.removeprefix("http://").split(":")
        client = DagsterGraphQLClient(host, port_number=int(port), timeout=int(self.timeout_s))
        try:
            return client.submit_job_execution(job, tags=dict(tags or {}))
        except DagsterGraphQLClientError as exc:
            raise DagsterUIError(f"launching {job} through {self.url} failed: {exc}") from exc

    def wait_for_run(self, run_id: str, timeout_s: float) -> str:
        """Poll the run's status until it ends (SUCCESS, FAILURE or CANCELED); that status."""
        deadline, status = time.monotonic() + timeout_s, "unknown"
        while time.monotonic() < deadline:
            self.check_alive()
            status = self.graphql(RUN_QUERY, {"id": run_id})["runOrError"].get("status", "unknown")
            if status in TERMINAL_STATUSES:
                return status
            time.sleep(1.0)
        hint = "the daemon never dequeued it" if status == "QUEUED" else "it is still running"
        raise DagsterUIError(f"run {run_id} still {status} after {timeout_s:.0f} s ({hint}); see the logs under "
                             f"{self.processes[0].log.parent}")  # fmt: skip

    def run_failures(self, run_id: str) -> list[str]:
        """'<step>: <innermost error>' for each failed step of a run, and the run's own failure message."""
        events = self.graphql(FAILURES_QUERY, {"id": run_id})["runOrError"]["eventConnection"]["events"]
        steps = [f"{e['stepKey']}: {(e['error']['causes'] or [e['error']])[-1]['message'].strip()}"
                 for e in events if e["__typename"] == "ExecutionStepFailureEvent"]  # fmt: skip
        return steps + [e["message"] for e in events if e["__typename"] == "RunFailureEvent"]

    def latest_materialization(self, asset: str) -> dict[str, str]:
        """The metadata of the asset's latest materialization, label -> value as the UI shows it."""
        found = self.graphql(MATERIALIZATION_QUERY, {"key": {"path": asset.split("/")}})["assetOrError"]
        materializations = found.get("assetMaterializations") or []
        if not materializations:
            raise DagsterUIError(f"asset {asset} has no materialization on {self.url} ({found['__typename']})")
        return {
            e["label"]: str(e.get("intRepr") or e.get("floatRepr") or e.get("text") or "")
            for e in materializations[0]["metadataEntries"]
        }


@contextmanager
def running_ui(config: Path, home: Path, timeout_s: float = 120.0, daemon: bool = True) -> Iterator[DagsterUI]:
    """`dagster-webserver` (and `dagster-daemon`) serving `-m orchestration.definitions` for one epiatlas config
    on a free loopback port, with DAGSTER_HOME=`home`; both process groups are terminated on exit. The daemon
    starts once the webserver has created the instance's storage (both creating it at once corrupts it)."""
    prepare_home(home)
    port = free_port()
    env = {**os.environ, "DAGSTER_HOME": str(home), "EPIATLAS_CONFIG": str(Path(config).resolve())}
    commands = {"dagster-webserver": ["dagster-webserver", "-h", LOOPBACK, "-p", str(port), "-m", MODULE]}
    if daemon:
        commands["dagster-daemon"] = ["dagster-daemon", "run", "-m", MODULE]
    ui = DagsterUI(f"http://{LOOPBACK}:{port}", [])
    with ExitStack() as stack:
        for name, args in commands.items():
            process = _start(name, args, env, home / f"{name}.log")
            stack.callback(process.stop)
            ui.processes.append(process)
            ui.wait_until_loaded(timeout_s)
        yield ui


def launch_tags(config: Path, job: str) -> dict[str, str]:
    """Tags that launch `job` over every period of the config when it is partitioned (one run, as `epiatlas run`
    does), none otherwise."""
    from orchestration.definitions import build_definitions
    from orchestration.jobs import partition_range_tags

    partitions = build_definitions(config).resolve_job_def(job).partitions_def
    if partitions is None:
        return {}
    return partition_range_tags(partitions.get_partition_keys())


def _route_loopback_only(route: Any) -> None:
    """Let requests to the loopback server through, abort every other one."""
    host = route.request.url.split("/")[2] if "://" in route.request.url else ""
    if host.split(":")[0] in (LOOPBACK, "localhost") or route.request.url.startswith("data:"):
        route.continue_()
    else:
        route.abort("blockedbyclient")


def graph_url(url: str, expand: list[str]) -> str:
    """The global asset lineage page with the named asset groups expanded (the others drawn as one box each)."""
    return f"{url}{GRAPH_PAGE}?" + urlencode({"expanded": ",".join(f"global@global:{group}" for group in expand)})


def screenshot_asset_graph(url: str, out: Path, expand: list[str], expect: list[str],
                           size: tuple[int, int] = (1600, 1000), timeout_s: float = 90.0) -> str:
    """Screenshot the global asset lineage, the `expand` groups open, once every name in `expect` is drawn and the
    asset statuses have loaded; the page's text."""
    from playwright.sync_api import Error, sync_playwright

    from epiatlas.reports.browser import chromium_path

    timeout_ms = timeout_s * 1000
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium_path(), args=["--no-sandbox"], timeout=timeout_ms)
        try:
            page = browser.new_page(viewport={"width": size[0], "height": size[1]})
            page.set_default_timeout(timeout_ms)
            page.route("**/*", _route_loopback_only)
            page.add_init_script(HIDE_NAVIGATION)  # the graph gets the navigation's width, before it is laid out
            page.goto(graph_url(url, expand), wait_until="load")
            page.wait_for_function(NAMES_SHOWN, arg=expect)
            page.wait_for_load_state("networkidle")
            out.parent.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(out), type="png")
            return page.inner_text("body")
        except Error as exc:
            raise DagsterUIError(f"the asset graph at {graph_url(url, expand)} did not render {expect}: "
                                 f"{exc.message.splitlines()[0]}") from exc  # fmt: skip
        finally:
            browser.close()
