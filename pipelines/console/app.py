"""The approvers' console as an ASGI application: the package list, one page per package with its report, and
the Approve and Reject forms, over one backend (pipelines/backends/) and the one decision path that
`cardamage approve`/`reject` take (pipelines/approvals.py).

Web framework: Starlette, a small and well-kept ASGI toolkit (routing, forms, responses), with Jinja2 templates
that escape every value and uvicorn to serve it (server.py): no HTTP server is written by hand.

Who may call it:
- a request must name the console's own address in its Host header (`Site.answers`): a page of another site
  whose name resolves to 127.0.0.1 (DNS rebinding) is refused, so it cannot read the page and its token;
- a POST must carry an Origin equal to the origin the page was served from, and the process's token from the
  page's form (`secrets.token_urlsafe`, compared with `hmac.compare_digest`). A POST without an Origin is
  refused too, with no fall back to Referer: browsers send Origin with every POST (the Fetch Standard's
  "append a request `Origin` header"; the browser test sees Chromium do it), so a caller that sends none is not
  the console's page, and a Referer check would only add a second, weaker rule;
- the referrer policy is `same-origin`, not `no-referrer`: under `no-referrer` the Fetch Standard serializes a
  POST's Origin as `null` (Chromium sends `Origin: null` from the form), which the check above must refuse.
  `same-origin` sends nothing to any other site either, and the pages link nowhere else;
- nothing of the caller's credentials goes into a page or a header: the backend holds them, the pages show
  what the registry says (escaped) and what a decision did.
"""

from __future__ import annotations

import hmac
import ipaddress
import secrets
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import jinja2
from botocore.exceptions import BotoCoreError, ClientError
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import Headers, MutableHeaders
from starlette.requests import Request
from starlette.responses import PlainTextResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.templating import Jinja2Templates

from containers.evaluation.intervals import format_interval
from pipelines import approvals
from pipelines.backends import BackendError, Package, PackageReport, ServiceQuality

if TYPE_CHECKING:
    from starlette.types import ASGIApp, Message, Receive, Scope, Send

    from pipelines.backends import Backend
    from pipelines.config import Config

HERE = Path(__file__).parent
LOOPBACK = "127.0.0.1"
PACKAGES_SHOWN = 20  # as `cardamage models` lists by default: each costs the backend a request or two on AWS
LEAD_DIGITS = 3  # the champion's lead to 3 places, as the report page gives it: the gate's tolerance is that fine
COMMENT_LIMIT = 800  # the registry keeps 1024 characters of the approval note, which also holds who decided
RESULTS_KEPT = 50  # the outcomes a redirect after a decision may still show
REPORTS_KEPT = 8  # report pages kept in memory (their photos are inline: a few MB each)
# The pages load their stylesheet and nothing else; the report is framed from this origin only.
PAGE_POLICY = "default-src 'none'; style-src 'self'; img-src data:; frame-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
# A package's report (containers/evaluation/package_report.py): inline style and pictures, no script, and a
# sandbox of its own, also when it is opened alone.
REPORT_POLICY = "default-src 'none'; style-src 'unsafe-inline'; img-src data:; sandbox; frame-ancestors 'self'; base-uri 'none'; form-action 'none'"
HEADERS = {
    "content-security-policy": PAGE_POLICY,
    "x-content-type-options": "nosniff",
    "referrer-policy": "same-origin",  # not no-referrer: see the module's docstring
    "cache-control": "no-store",  # the pages hold the token and the registry's notes
    "cross-origin-opener-policy": "same-origin",
    "cross-origin-resource-policy": "same-origin",
}
T = TypeVar("T")
# What a backend call may run into, shown on the page as one line: a backend's own message, or AWS's.
PROBLEMS = (BackendError, ClientError, BotoCoreError)


@dataclass(frozen=True)
class Site:
    """Where the console listens, and the Host names its pages answer to."""

    host: str
    port: int

    @property
    def _address(self) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
        return _address(self.host)

    @property
    def wildcard(self) -> bool:
        """Every interface (0.0.0.0, ::): the console is reached by whatever address the machine has."""
        return self._address is not None and self._address.is_unspecified

    @property
    def loopback(self) -> bool:
        return self.host.lower() == "localhost" or (self._address is not None and self._address.is_loopback)

    @property
    def url(self) -> str:
        """The address to open (on this machine, for a wildcard bind)."""
        return f"http://{_netloc(LOOPBACK if self.wildcard else self.host, self.port)}/"

    @property
    def warning(self) -> str:
        """Why listening beyond this machine is a risk, or "" when it listens on loopback only."""
        if self.loopback:
            return ""
        where = "every interface of this machine" if self.wildcard else self.host
        return (
            f"the console listens on {where} (port {self.port}), not on {LOOPBACK} alone: whoever can reach it can open it, "
            "and its page approves and rejects models as you; plain HTTP, no login. Use it only on a network you trust"
        )

    def answers(self, host_header: str) -> bool:
        """Whether a request's Host names this console: its own host (or, on loopback, localhost), and on a
        wildcard bind any IP address, never another name (DNS rebinding needs a name)."""
        name, port = _split_host(host_header)
        if name is None or port != self.port:
            return False
        if name == "localhost":
            return self.loopback or self.wildcard
        address = _address(name)
        if self.wildcard:
            return address is not None
        return address == self._address if address is not None and self._address is not None else name == self.host.lower()


def site(host: str | None, port: int) -> Site:
    """Where `cardamage console` listens: 127.0.0.1 unless --host names another address (which `Site.warning`
    warns of)."""
    return Site(host or LOOPBACK, port)


def _address(name: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(name.strip("[]"))
    except ValueError:
        return None


def _netloc(host: str, port: int) -> str:
    address = _address(host)
    return f"[{address}]:{port}" if isinstance(address, ipaddress.IPv6Address) else f"{host}:{port}"


def _split_host(value: str) -> tuple[str | None, int]:
    """A Host header's name (lower case, IPv6 without brackets) and port (80 when absent: plain HTTP)."""
    value = value.strip().lower()
    if value.startswith("["):
        name, bracket, rest = value[1:].partition("]")
        if not bracket or (rest and not rest.startswith(":")):
            return None, 0
        port = rest[1:]
    else:
        name, _, port = value.partition(":")
    if not name or (port and not port.isdigit()):
        return None, 0
    return name, int(port) if port else 80


class Guard:
    """Around the application: the security headers on every answer, the Host check on every request, and the
    Origin check on every request that may change something (anything but GET and HEAD)."""

    def __init__(self, app: ASGIApp, site: Site):
        self.app, self.site = app, site

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in HEADERS.items():
                    headers.setdefault(name, value)
            await send(message)

        headers = Headers(scope=scope)
        host = headers.get("host", "")
        refusal = None
        if not self.site.answers(host):
            refusal = PlainTextResponse(f"this console answers at {self.site.url} only", 400)
        elif scope["method"] not in ("GET", "HEAD") and (headers.get("origin") or "").lower() != f"http://{host.strip().lower()}":
            refusal = PlainTextResponse("refused: a change must come from the console's own page (its Origin)", 403)
        await (refusal or self.app)(scope, receive, send_with_headers)


@dataclass(frozen=True)
class Row:
    """One package as the pages show it."""

    version: int
    status: str
    map: str
    lead: str
    data: str
    created: str
    note: str
    serving: str
    pending: bool
    in_service: str  # its latest accuracy in service (`cardamage monitor`), "" when none was measured


def row(package: Package, config: Config) -> Row:
    intervals = package.intervals
    return Row(
        version=package.version,
        status=package.status,
        map=format_interval(package.map, intervals.map if intervals else None) if package.map is not None else "-",
        lead=_lead(package),
        data=package.data or "-",
        created=package.created.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC") if isinstance(package.created, datetime) else "-",
        note=package.note,
        serving=", ".join(package.stages) if config.deployment.stages else ("serving" if package.serving else ""),
        pending=package.status == "PendingManualApproval",
        in_service=_in_service(package.in_service),
    )


def _lead(package: Package) -> str:
    """The champion's lead over the package (the champion's mAP less the package's on the same photos, as
    evaluation.json's `map_lead`) with its paired interval, and the champion it was judged against."""
    if package.champion is None:
        return "-"  # registered before champions were recorded
    version, figure = package.champion
    if not version:
        return "none served"
    intervals = package.intervals
    champion = format_interval(figure, intervals.champion_map if intervals else None) if figure is not None else "-"
    lead = intervals.lead if intervals else None
    if lead is None and figure is not None and package.map is not None:  # evaluated before intervals: from the metadata
        lead = figure - package.map
    against = f"against v{version} (mAP {champion})"
    if lead is None:
        return f"- {against}"
    return f"{format_interval(lead, intervals.lead_interval if intervals else None, digits=LEAD_DIGITS)} {against}"


def _in_service(measured: ServiceQuality | None) -> str:
    """The mAP the monitor measured on labelled photos the endpoint answered while it served the package."""
    return measured.text if measured is not None else ""


class Console:
    """The pages and the decision, over one backend. Backend calls run one at a time in a worker thread: the
    event loop stays free, and a boto3 session is not shared between threads."""

    def __init__(self, backend: Backend, config: Config, *, local: bool, token: str):
        self.backend, self.config, self.local, self.token = backend, config, local, token
        environment = jinja2.Environment(
            loader=jinja2.FileSystemLoader(HERE / "templates"), autoescape=True, undefined=jinja2.StrictUndefined
        )  # fmt: skip
        self.templates = Jinja2Templates(env=environment)
        self.results: OrderedDict[str, approvals.Outcome] = OrderedDict()
        self.reports: OrderedDict[int, PackageReport] = OrderedDict()
        self._lock = threading.Lock()

    async def _call(self, function: Callable[..., T], *arguments: Any) -> T:
        def locked() -> T:
            with self._lock:
                return function(*arguments)

        return await run_in_threadpool(locked)

    def _page(self, request: Request, name: str, status: int = 200, **context: Any) -> Response:
        common = {"group": self.config.model_package_group, "where": self.backend.where, "token": self.token}
        return self.templates.TemplateResponse(request, name, {**common, **context}, status_code=status)

    async def index(self, request: Request) -> Response:
        try:
            packages = await self._call(self.backend.packages, PACKAGES_SHOWN)
        except PROBLEMS as exc:
            return self._page(request, "problem.html", 502, problem=problem(exc))
        rows = [row(package, self.config) for package in packages]
        served = {stage: next((f"version {p.version}" for p in packages if stage in p.stages), "") for stage in self.config.stage_endpoints}
        endpoints = [(stage, endpoint, served[stage]) for stage, endpoint in self.config.stage_endpoints.items()]
        in_service = any(r.in_service for r in rows)
        return self._page(request, "index.html", rows=rows, endpoints=endpoints, shown=PACKAGES_SHOWN, in_service=in_service)

    async def package(self, request: Request) -> Response:
        version = request.path_params["version"]
        result = self.results.get(request.query_params.get("result", ""))
        return await self._package_page(request, version, result=result if result and result.change.version == version else None)

    async def _package_page(
        self, request: Request, version: int, *, status: int = 200, result: approvals.Outcome | None = None, problem_text: str = "", comment: str = ""
    ) -> Response:
        """The package's page: its figures, the result of a decision or why it was not recorded, the form and the report."""
        try:
            packages = await self._call(self.backend.packages, PACKAGES_SHOWN)
        except PROBLEMS as exc:
            return self._page(request, "problem.html", 502, problem=problem(exc))
        found = next((p for p in packages if p.version == version), None)
        if found is None:
            text = problem_text or f"version {version} is not one of the {PACKAGES_SHOWN} newest packages of {self.config.model_package_group}"
            return self._page(request, "problem.html", status if problem_text else 404, problem=text)
        report = await self._call(self._report, found)
        return self._page(
            request, "package.html", status, package=row(found, self.config), report=report, result=result, problem=problem_text,
            comment=comment, comment_limit=COMMENT_LIMIT,
        )  # fmt: skip

    def _report(self, package: Package) -> dict[str, str]:
        """Where the package's report is served (`url`), or why it has none (`missing`)."""
        try:
            self._fetched(package.version)
        except PROBLEMS as exc:
            return {"url": "", "missing": f"No report to show: {problem(exc)}."}
        return {"url": f"/packages/{package.version}/report.html", "missing": ""}

    def _fetched(self, version: int) -> PackageReport:
        """The package's report page through the backend (`cardamage report`'s call), kept for the frame that
        asks for it right after the page: a package's report does not change."""
        if version not in self.reports:
            self.reports[version] = self.backend.report(str(version))
            while len(self.reports) > REPORTS_KEPT:
                self.reports.popitem(last=False)
        return self.reports[version]

    async def decide(self, request: Request) -> Response:
        version = request.path_params["version"]
        async with request.form(max_files=0, max_fields=8) as form:
            token, decision, comment = (str(form.get(name) or "") for name in ("token", "decision", "comment"))
        if not hmac.compare_digest(token.encode(), self.token.encode()):
            return PlainTextResponse("refused: the form's token is missing or is not this console's (reload the page)", 403)
        comment = comment.strip()
        refusal = ""
        if decision not in approvals.DECISIONS:
            refusal = f"choose Approve or Reject (got {decision!r})"
        elif not comment:
            refusal = f"a comment is required: say why you {'approve' if decision == 'Approved' else 'reject'} version {version}"
        elif len(comment) > COMMENT_LIMIT:
            refusal = f"the comment is {len(comment)} characters long; the registry keeps {COMMENT_LIMIT}: shorten it"
        if refusal:
            return await self._package_page(request, version, status=400, problem_text=f"Not recorded: {refusal}.", comment=comment)
        try:
            outcome = await self._call(
                lambda: approvals.decide(self.backend, self.config, str(version), decision, comment, local=self.local)
            )  # fmt: skip
        except PROBLEMS as exc:
            return await self._package_page(request, version, status=409, problem_text=problem(exc), comment=comment)
        key = secrets.token_urlsafe(8)
        self.results[key] = outcome
        while len(self.results) > RESULTS_KEPT:
            self.results.popitem(last=False)
        return RedirectResponse(f"/packages/{version}?result={key}", status_code=303)

    async def report(self, request: Request) -> Response:
        """The report page alone, under a policy of its own: its inline style and pictures, a sandbox, no script."""
        try:
            report = await self._call(self._fetched, request.path_params["version"])
        except PROBLEMS as exc:
            return PlainTextResponse(problem(exc), 404)
        return Response(report.body, media_type="text/html; charset=utf-8", headers={"content-security-policy": REPORT_POLICY})


def problem(exc: Exception) -> str:
    """One line for a person, as the command line says it on stderr (an AWS error: its operation and code)."""
    if isinstance(exc, ClientError):
        error = exc.response.get("Error", {})
        return f"{exc.operation_name}: {error.get('Code')}: {error.get('Message')}"
    return str(exc)


def create_app(backend: Backend, config: Config, site: Site, *, local: bool, token: str | None = None) -> ASGIApp:
    """The console over `backend`, answering at `site`; `token` is the process's CSRF token (default: a new one)."""
    console = Console(backend, config, local=local, token=token or secrets.token_urlsafe(32))
    routes = [
        Route("/", console.index, methods=["GET"]),
        Route("/packages/{version:int}", console.package, methods=["GET"]),
        Route("/packages/{version:int}", console.decide, methods=["POST"]),
        Route("/packages/{version:int}/report.html", console.report, methods=["GET"]),
        Mount("/static", StaticFiles(directory=HERE / "static"), name="static"),
    ]
    return Guard(Starlette(routes=routes), site)
