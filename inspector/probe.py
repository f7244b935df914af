"""Health probes: sandboxed checks with thresholds, for monitoring systems.

A check is a query that returns a bool (True = OK, False = CRITICAL, or
WARNING with ``fail = "warning"``) or a number compared with ``warn``/``crit``
thresholds (``direction = "above"``: bad when the value is at or above the
threshold, the default; ``"below"``: bad at or below). Anything else - an
attach failure, a timeout, a refused or failing query, a value of another
type - is UNKNOWN.

Exit codes follow the monitoring-plugin convention (Nagios, Icinga, Sensu):
0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN; the worst check wins.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any

from ._record import field, record
from .errors import InspectorError, UsageError

if TYPE_CHECKING:
    from .api import SessionAPI

OK, WARNING, CRITICAL, UNKNOWN = 0, 1, 2, 3
STATUS_NAMES = {OK: "OK", WARNING: "WARNING", CRITICAL: "CRITICAL", UNKNOWN: "UNKNOWN"}
_SEVERITY = {OK: 0, WARNING: 1, UNKNOWN: 2, CRITICAL: 3}
_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_CHECK_KEYS = {"name", "expr", "warn", "crit", "direction", "fail", "thread", "frame", "module"}


@record
class Check:
    name: str
    expr: str
    warn: float | None = None
    crit: float | None = None
    direction: str = "above"  # "above" or "below"
    fail: str = "critical"  # status of a False boolean: "critical" or "warning"
    thread: int | str | None = None
    frame: int | None = None
    module: str | None = None


@record
class CheckResult:
    check: Check
    status: int
    value: float | bool | None = None
    message: str = ""

    def to_json(self) -> dict[str, Any]:
        return {"name": self.check.name, "expr": self.check.expr,
                "status": STATUS_NAMES[self.status], "code": self.status, "value": self.value,
                "warn": self.check.warn, "crit": self.check.crit, "message": self.message}


@record
class ProbeResult:
    pid: int
    results: tuple[CheckResult, ...]
    duration: float
    error: str = ""  # set when no check could run (attach failed ...)
    error_kind: str = ""  # its InspectorError kind ("attach", "usage" ...)
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def status(self) -> int:
        """The worst check's status, by severity OK < WARNING < UNKNOWN < CRITICAL
        (Icinga's order: a real CRITICAL reading outranks a check we could not run)."""
        if self.error or not self.results:
            return UNKNOWN
        return max((r.status for r in self.results), key=_SEVERITY.__getitem__)

    @property
    def success(self) -> bool:
        return not self.error and all(r.status != UNKNOWN for r in self.results)


# -- defining checks ----------------------------------------------------------

def parse_check_arg(text: str, module: str | None = None) -> Check:
    """`NAME=EXPR` from the command line, evaluated in `module`'s globals
    (`--module`; None: __main__), as a checks file's `module =`."""
    name, sep, expr = text.partition("=")
    name = name.strip()
    if not sep or not expr.strip():
        raise UsageError("--check needs NAME=EXPR, got %r" % text)
    return make_check({"name": name, "expr": expr.strip(), "module": module}, where="--check")


def make_check(raw: dict[str, Any], where: str) -> Check:
    unknown = set(raw) - _CHECK_KEYS
    if unknown:
        raise UsageError("%s: unknown key(s) %s" % (where, ", ".join(sorted(unknown))))
    name, expr = raw.get("name"), raw.get("expr")
    if not isinstance(name, str) or not _NAME_RE.match(name):
        raise UsageError("%s: check name %r must be an identifier (letters, digits, _)"
                         % (where, name))
    if not isinstance(expr, str) or not expr.strip():
        raise UsageError("%s: check %r needs an expr" % (where, name))
    thresholds = {}
    for key in ("warn", "crit"):
        value = raw.get(key)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int | float)):
            raise UsageError("%s: %s of check %r must be a number" % (where, key, name))
        thresholds[key] = float(value) if value is not None else None
    direction = raw.get("direction", "above")
    if direction not in ("above", "below"):
        raise UsageError("%s: direction of check %r must be \"above\" or \"below\""
                         % (where, name))
    fail = raw.get("fail", "critical")
    if fail not in ("critical", "warning"):
        raise UsageError("%s: fail of check %r must be \"critical\" or \"warning\""
                         % (where, name))
    module = raw.get("module")
    if module is not None and (not isinstance(module, str) or not module.strip()):
        raise UsageError("%s: module of check %r must be a module name, like \"app.state\""
                         % (where, name))
    frame = raw.get("frame")
    if frame is not None and (isinstance(frame, bool) or not isinstance(frame, int)):
        raise UsageError("%s: frame of check %r must be an integer" % (where, name))
    return Check(name=name, expr=expr, warn=thresholds["warn"], crit=thresholds["crit"],
                 direction=direction, fail=fail, thread=raw.get("thread"), frame=frame,
                 module=module)


def load_checks_file(path: str) -> list[Check]:
    """Checks from a TOML file: a list of [[check]] tables."""
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        import tomli as tomllib  # type: ignore[no-redef,import-not-found,unused-ignore]
    try:
        with open(path, "rb") as f:
            doc = tomllib.load(f)
    except OSError as e:
        raise UsageError("cannot read checks file %s: %s" % (path, e.strerror)) from None
    except tomllib.TOMLDecodeError as e:
        raise UsageError("checks file %s is not valid TOML: %s" % (path, e)) from None
    tables = doc.get("check")
    if not isinstance(tables, list) or not tables:
        raise UsageError("checks file %s has no [[check]] tables" % path)
    return [make_check(t, where="%s [[check]] #%d" % (path, i + 1)) for i, t in enumerate(tables)]


def validate_names(checks: Sequence[Check]) -> None:
    seen = set()
    for c in checks:
        if c.name in seen:
            raise UsageError("two checks are named %r" % c.name)
        seen.add(c.name)


# -- judging values -----------------------------------------------------------

def judge(check: Check, value: Any) -> CheckResult:
    """The status of one check given the query's plain value."""
    if isinstance(value, bool):
        if value:
            return CheckResult(check, OK, True, "true")
        return CheckResult(check, WARNING if check.fail == "warning" else CRITICAL, False,
                           "false")
    if isinstance(value, int | float):
        number = float(value)
        if number != number:
            return CheckResult(check, UNKNOWN, None, "value is NaN")
        status = OK
        for threshold, level in ((check.crit, CRITICAL), (check.warn, WARNING)):
            if threshold is None:
                continue
            bad = number >= threshold if check.direction == "above" else number <= threshold
            if bad:
                status = level
                break
        return CheckResult(check, status, value, _describe(number, check, status))
    return CheckResult(check, UNKNOWN, None,
                       "returned %s; a check must return a bool or a number"
                       % type(value).__name__)


def _describe(number: float, check: Check, status: int) -> str:
    shown = ("%d" % number) if number.is_integer() else ("%g" % number)
    if status == OK:
        return shown
    threshold = check.crit if status == CRITICAL else check.warn
    sign = ">=" if check.direction == "above" else "<="
    return "%s %s %g" % (shown, sign, threshold or 0.0)


def run_checks(session: SessionAPI, checks: Iterable[Check]) -> list[CheckResult]:
    """Evaluate each check in the session; a failing query is UNKNOWN, not fatal."""
    out = []
    for check in checks:
        try:
            value = session.eval(check.expr, check.thread, check.frame,
                                 module=check.module).to_python()
        except InspectorError as e:
            out.append(CheckResult(check, UNKNOWN, None, "%s: %s" % (e.kind, e.message)))
            if e.exit_code == 6:  # the target is gone: the rest cannot run either
                for rest in checks:
                    if rest is not check and all(r.check is not rest for r in out):
                        out.append(CheckResult(rest, UNKNOWN, None, "target lost"))
                break
            continue
        out.append(judge(check, value))
    return out


def probe(pid: int, checks: Sequence[Check], *, attach: Callable[..., SessionAPI],
          timeout: float, keep: bool = False, injector: str = "native") -> ProbeResult:
    """Attach (or reuse a resident agent), run the checks, detach."""
    started = time.monotonic()
    extra: dict[str, Any] = {}
    try:
        session = attach(pid, injector=injector, timeout=timeout, keep=keep)
    except InspectorError as e:
        return ProbeResult(pid, (), time.monotonic() - started, error=e.message,
                           error_kind=e.kind)
    with session:
        session.call_timeout = timeout
        extra["reused_agent"] = session.injection is None
        extra["resident"] = session.resident
        results = run_checks(session, checks)
    return ProbeResult(pid, tuple(results), time.monotonic() - started, extra=extra)


# -- output -------------------------------------------------------------------

def render_plugin(result: ProbeResult) -> str:
    """Monitoring-plugin output: one status line, then perfdata after '|'."""
    status = STATUS_NAMES[result.status]
    if result.error:
        return "INSPECTOR UNKNOWN - %s" % result.error
    bad = [r for r in result.results if r.status != OK]
    summary = ", ".join("%s %s (%s)" % (r.check.name, STATUS_NAMES[r.status], r.message)
                        for r in bad) or "%d check%s OK" % (
        len(result.results), "" if len(result.results) == 1 else "s")
    perf = []
    for r in result.results:
        if isinstance(r.value, bool) or r.value is None:
            value = "" if r.value is None else ("1" if r.value else "0")
        else:
            value = "%g" % r.value
        if value:
            perf.append("%s=%s;%s;%s" % (r.check.name, value, _fmt(r.check.warn),
                                         _fmt(r.check.crit)))
    perf.append("duration=%.3fs" % result.duration)
    return "INSPECTOR %s - %s | %s" % (status, summary, " ".join(perf))


def _fmt(value: float | None) -> str:
    return "" if value is None else "%g" % value


def render_prometheus(result: ProbeResult) -> str:
    """Prometheus text exposition (for node_exporter's textfile collector)."""
    pid = str(result.pid)
    lines = [
        "# HELP inspector_check_value Value returned by an inspector check (bool as 0/1).",
        "# TYPE inspector_check_value gauge",
    ]
    for r in result.results:
        if r.value is None:
            continue
        value = float(r.value) if not isinstance(r.value, bool) else (1.0 if r.value else 0.0)
        lines.append('inspector_check_value{check="%s",pid="%s"} %s'
                     % (r.check.name, pid, _prom_float(value)))
    lines += [
        "# HELP inspector_check_status Check status: 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN.",
        "# TYPE inspector_check_status gauge",
    ]
    for r in result.results:
        lines.append('inspector_check_status{check="%s",pid="%s"} %d'
                     % (r.check.name, pid, r.status))
    lines += [
        "# HELP inspector_probe_status Worst check status (the exit code): 0 OK, 1 WARNING, "
        "2 CRITICAL, 3 UNKNOWN.",
        "# TYPE inspector_probe_status gauge",
        'inspector_probe_status{pid="%s"} %d' % (pid, result.status),
        "# HELP inspector_probe_duration_seconds Wall time of the whole probe.",
        "# TYPE inspector_probe_duration_seconds gauge",
        'inspector_probe_duration_seconds{pid="%s"} %s' % (pid, _prom_float(result.duration)),
        "# HELP inspector_probe_success 1 if every check could be evaluated.",
        "# TYPE inspector_probe_success gauge",
        'inspector_probe_success{pid="%s"} %d' % (pid, 1 if result.success else 0),
    ]
    return "\n".join(lines) + "\n"


def write_textfile(path: str, text: str) -> None:
    """Replace `path` with `text` atomically, as node_exporter's textfile
    collector needs: a temporary file in the same directory (created with
    O_EXCL, never following a planted link), fsynced, then renamed over
    `path`, so a scrape sees the old document or the new one, never half of
    one. Mode 0644: the collector usually runs as another user."""
    from . import _fs

    try:
        _fs.replace_file(path, text.encode("utf-8"), 0o644, durable=True)
    except OSError as e:
        raise UsageError("cannot write %s: %s" % (path, e.strerror)) from None


def _prom_float(value: float) -> str:
    if value != value:
        return "NaN"
    if value in (float("inf"), float("-inf")):
        return "+Inf" if value > 0 else "-Inf"
    return repr(float(value))


def to_json(result: ProbeResult) -> dict[str, Any]:
    """The CLI's one document: `ok` is false only when no check could run
    (then `error` says why); `value` always carries the status, so a
    monitoring parser reads `value.status` whatever happened."""
    doc: dict[str, Any] = {"ok": not result.error, "value": _value_json(result)}
    if result.error:
        doc["error"] = {"kind": result.error_kind or "error", "message": result.error}
    return doc


def _value_json(result: ProbeResult) -> dict[str, Any]:
    return {"pid": result.pid, "status": STATUS_NAMES[result.status], "code": result.status,
            "duration": result.duration, "error": result.error or None,
            "checks": [r.to_json() for r in result.results], **result.extra}
