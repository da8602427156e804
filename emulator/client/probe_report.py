"""The probe's report: a table for the terminal, report.json (every exchange) and report.md.
The caller passes each through the Redactor before it is shown or written."""
from __future__ import annotations

import json
from collections import Counter
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .probe import CaseResult, Run

RESULTS = ("same", "known", "differs", "not run", "error")


def counts(run: Run) -> dict[str, int]:
    found = Counter(result.result for result in run.results)
    return {name: found.get(name, 0) for name in RESULTS}


def summary_line(run: Run) -> str:
    shown = ", ".join(f"{n} {name}" for name, n in counts(run).items() if n)
    unknown = sum(1 for r in run.results for d in r.differences if not d.known)
    verdict = "FAILED" if run.failed else "ok"
    return f"probe {verdict}: {len(run.results)} cases ({shown}); {unknown} difference(s) not known"


def write_case_line(result: CaseResult) -> str:
    """One line as each case finishes (on stderr, so a long run shows progress)."""
    extra = f" ({len(result.differences)} difference(s))" if result.differences else ""
    note = f": {result.note}" if result.note else ""
    return f"{result.result:>8}  {result.case.id}{extra}{note}"


def _cut(text: str, width: int) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= width else text[:width - 1] + "…"


def table(run: Run) -> str:
    """The terminal's report: each case and its result, then each difference not known."""
    lines = [f"gateway:  {run.against}", f"emulator: {run.emulator}", ""]
    width = max([len(r.case.id) for r in run.results] + [4])
    lines.append(f"{'case':<{width}}  {'result':<8}  differences")
    lines.append(f"{'-' * width}  {'-' * 8}  {'-' * 11}")
    for result in run.results:
        unknown = sum(1 for d in result.differences if not d.known)
        detail = (f"{unknown} not known, {len(result.differences) - unknown} known" if result.differences
                  else result.note)
        lines.append(f"{result.case.id:<{width}}  {result.result:<8}  {_cut(detail, 70)}")
    unknown = [d for r in run.results for d in r.differences if not d.known]
    if unknown:
        lines += ["", "Differences not listed in docs/fidelity.md's Known differences:", ""]
        rows = [("case", "step", "field", "kind", "gateway", "emulator")]
        rows += [(d.case, d.step, d.field, d.kind, _cut(d.gateway, 40), _cut(d.emulator, 40)) for d in unknown]
        widths = [max(len(row[i]) for row in rows) for i in range(6)]
        for index, row in enumerate(rows):
            lines.append("  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)).rstrip())
            if index == 0:
                lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def report_json(run: Run) -> str:
    document = {
        "gateway": run.against, "emulator": run.emulator, "started": run.started, "pace": run.pace,
        "failed": run.failed, "summary": counts(run),
        "cases": [{"id": r.case.id, "file": r.case.file, "description": r.case.description,
                   "evidence": r.case.evidence, "result": r.result, "note": r.note,
                   "differences": [d.as_dict() for d in r.differences], "exchanges": r.exchanges}
                  for r in run.results],
    }
    return json.dumps(document, ensure_ascii=False, indent=2) + "\n"


def _cell(text: str) -> str:
    return _cut(text, 80).replace("|", "\\|")


def markdown(run: Run) -> str:
    c = counts(run)
    lines = ["# Parity report", "",
             f"- gateway: {run.against}", f"- emulator: {run.emulator}", f"- started: {run.started}",
             f"- result: **{'failed' if run.failed else 'passed'}**: " +
             ", ".join(f"{n} {name}" for name, n in c.items() if n), ""]
    lines += ["| case | result | differences |", "|---|---|---|"]
    for r in run.results:
        unknown = sum(1 for d in r.differences if not d.known)
        detail = f"{unknown} not known, {len(r.differences) - unknown} known" if r.differences else _cell(r.note)
        lines.append(f"| `{r.case.id}` | {r.result} | {detail} |")
    differences = [d for r in run.results for d in r.differences]
    if differences:
        lines += ["", "## Differences", "",
                  "| case | step | field | kind | gateway | emulator | known |", "|---|---|---|---|---|---|---|"]
        for d in sorted(differences, key=lambda d: bool(d.known)):
            lines.append(f"| `{d.case}` | {d.step} | `{d.field}` | {d.kind} | {_cell(d.gateway)} | "
                         f"{_cell(d.emulator)} | {_cell(d.known) or '**no**'} |")
    return "\n".join(lines) + "\n"
