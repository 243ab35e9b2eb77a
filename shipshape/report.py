"""The deploy report: what one deploy did, kept in its history entry, rendered for a person to look at.

    report = build(phases, steps)       # Deploy fills phases (phase()) and canary steps (canary_step())
    markdown(entry)                     # header, phase timings, the gate's decisions, the chart's file name
    png(entry, Path("r.png"))           # per slot requests and error rate over the canary, steps, decisions

A report stays a few KB (the history is one JSON line per deploy, and on Cloud Run an annotation): times
are rounded to 0.01 s and each step's timeline is cut to at most POINTS reads, its first and last kept.
Times are seconds from the deploy's start (`Entry.started`); a step's timeline counts from when the
gate's watcher began reading, just after the step moved the weights, and its tallies are what the gate
weighed (answers since the canary began, plus on a host this step's own probes). matplotlib is imported in png() only: `fab` starts without it.
"""
from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

POINTS = 30
REASON_CHARS = 400
ACTION_COLOR = {"advance": "tab:green", "rollback": "tab:red", "undecided": "tab:orange"}


def phase(name: str, start: float, seconds: float | None = None, outcome: str = "running") -> dict:
    """One phase of the flow: `outcome` ok, failed, or running (the history line is written during it)."""
    return {"name": name, "start": round(start, 2),
            "seconds": None if seconds is None else round(seconds, 2), "outcome": outcome}


def step_start(phases: list[dict], steps: list[dict]) -> float:
    """Where the next canary step starts: where the last one ended, or where the canary phase began."""
    if steps:
        return round(steps[-1]["start"] + steps[-1]["seconds"], 2)
    return next((p["start"] for p in reversed(phases) if p["name"] == "canary"), 0.0)


def canary_step(percent: int, result, start: float, end: float) -> dict:
    """One step's record from its `shipshape.gate.Step`, started at `start` and judged at `end`."""
    return {"percent": percent, "start": round(start, 2), "seconds": round(end - start, 2),
            "action": result.action, "reason": result.reason[:REASON_CHARS],
            "elapsed": round(result.elapsed, 2), "probes": result.probes,
            "candidate": vars(result.candidate).copy(), "live": vars(result.live).copy(),
            "timeline": downsample(result.timeline)}


def downsample(timeline, limit: int = POINTS) -> list[list]:
    """At most `limit` evenly spread reads, the first and the last always among them; numbers rounded."""
    rows = list(timeline)
    if len(rows) > limit:
        picks = sorted({round(i * (len(rows) - 1) / (limit - 1)) for i in range(limit)})
        rows = [rows[i] for i in picks]
    return [[round(row[0], 2), *map(int, row[1:])] for row in rows]


def build(phases: list[dict], steps: list[dict]) -> dict:
    """The report an entry carries: copies, so the entry does not change as the deploy goes on."""
    return {"phases": [dict(p) for p in phases], "steps": [dict(s) for s in steps]}


def series(report: dict) -> dict:
    """The chart's data, x in seconds since the canary began: one segment per step (x, and per slot the
    requests the gate counted and the error rate in %, None before a first request), each step's start
    and percent, and each gate decision (x, action)."""
    steps = report.get("steps") or []
    began = steps[0]["start"] if steps else 0.0
    data = {"segments": [], "steps": [], "decisions": []}
    for s in steps:
        offset = s["start"] - began
        data["steps"].append((round(offset, 2), s["percent"]))
        data["decisions"].append((round(offset + s["elapsed"], 2), s["action"]))
        segment = {"x": [], "candidate": {"requests": [], "error_pct": []}, "live": {"requests": [], "error_pct": []}}
        for seconds, *counts in s["timeline"]:
            segment["x"].append(round(offset + seconds, 2))
            for slot, (requests, errors, _slow) in zip(("candidate", "live"), (counts[:3], counts[3:])):
                segment[slot]["requests"].append(requests)
                segment[slot]["error_pct"].append(round(100 * errors / requests, 2) if requests else None)
        data["segments"].append(segment)
    return data


def markdown(entry) -> str:
    """The report as Markdown: header, phase timings, canary steps, and the chart beside it."""
    report = entry.report or {}
    when = datetime.fromtimestamp(entry.started, timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")
    outcome = entry.outcome + (f" at {entry.step}" if entry.step else "")
    lines = [f"# Deploy {entry.release}", "",
             f"- git sha: `{entry.git_sha}`", f"- who: {entry.who}", f"- started: {when}",
             f"- duration: {entry.duration_s:.1f} s", f"- outcome: **{outcome}**"]
    if entry.reason:
        lines.append(f"- reason: {_cell(entry.reason)}")
    lines += ["", f"![canary chart]({png_name(entry)})", "", "## Phases", "",
              "| phase | start (s) | duration (s) | outcome |", "| --- | ---: | ---: | --- |"]
    for p in report.get("phases", []):
        seconds = "-" if p["seconds"] is None else f"{p['seconds']:.2f}"
        lines.append(f"| {p['name']} | {p['start']:.2f} | {seconds} | {p['outcome']} |")
    lines += ["", "## Canary steps", ""]
    steps = report.get("steps", [])
    if not steps:
        lines.append("No canary step ran.")
    else:
        lines += ["| percent | decision | after (s) | candidate requests | candidate errors | candidate slow "
                  "| live requests | live errors | probes | reason |",
                  "| ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |"]
        for s in steps:
            c, l = s["candidate"], s["live"]
            lines.append(f"| {s['percent']}% | {s['action']} | {s['elapsed']:.2f} | {c['requests']} | "
                         f"{_pct(c, 'errors')} | {_pct(c, 'slow')} | {l['requests']} | {_pct(l, 'errors')} | "
                         f"{s['probes']} | {_cell(s['reason'])} |")
    return "\n".join(lines) + "\n"


def png_name(entry) -> str:
    return f"{entry.release}.png"


def png(entry, path: Path) -> Path:
    """The chart as a PNG: canary requests and error rate per slot (or the phases, if no step ran)."""
    import matplotlib
    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    report = entry.report or {}
    figure = Figure(figsize=(10, 6.5), layout="constrained")
    figure.suptitle(f"{entry.release}  ({entry.git_sha[:12]})  {entry.outcome}"
                    + (f" at {entry.step}" if entry.step else ""))
    if report.get("steps"):
        _canary_panels(figure, series(report))
    else:
        _phase_panel(figure.subplots(), report.get("phases", []))
    figure.savefig(path, format="png", dpi=100)
    return Path(path)


def _canary_panels(figure, data: dict) -> None:
    requests, errors = figure.subplots(2, 1, sharex=True)
    highest = 0.0
    for slot, style in (("live", dict(color="tab:gray", linestyle="--")), ("candidate", dict(color="tab:blue"))):
        for n, segment in enumerate(data["segments"]):
            rates = [float("nan") if v is None else v for v in segment[slot]["error_pct"]]
            highest = max([highest, *(v for v in rates if v == v)])
            label = slot if n == 0 else None
            requests.plot(segment["x"], segment[slot]["requests"], label=label, **style)
            errors.plot(segment["x"], rates, label=label, **style)
    for x, percent in data["steps"]:
        for axes in (requests, errors):
            axes.axvline(x, color="black", linestyle=":", linewidth=1)
        requests.annotate(f"{percent}%", (x, 1), xycoords=("data", "axes fraction"), xytext=(3, -12),
                          textcoords="offset points")
    for x, action in data["decisions"]:
        color = ACTION_COLOR.get(action, "black")
        errors.axvline(x, color=color, linewidth=1.5)
        errors.annotate(action, (x, 1), xycoords=("data", "axes fraction"), xytext=(-3, -12), ha="right",
                        textcoords="offset points", color=color)
    errors.set_ylim(0, max(1.0, highest * 1.2))
    requests.set_ylabel("requests counted by the gate")
    errors.set_ylabel("error rate (%)")
    errors.set_xlabel("seconds since the canary began")
    requests.legend(loc="center left")


def _phase_panel(axes, phases: list[dict]) -> None:
    for row, p in enumerate(phases):
        color = {"ok": "tab:green", "failed": "tab:red"}.get(p["outcome"], "tab:gray")
        axes.barh(row, p["seconds"] or 0.05, left=p["start"], color=color)
    axes.set_yticks(range(len(phases)), [p["name"] for p in phases])
    axes.invert_yaxis()
    axes.set_xlabel("seconds since the deploy began (no canary step ran)")


def _pct(tally: dict, stream: str) -> str:
    return f"{100 * tally[stream] / tally['requests']:.1f}%" if tally["requests"] else "-"


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def write(entry, directory: Path) -> tuple[Path, Path]:
    """`<release>.md` and `<release>.png` in `directory` (made if missing); returns both paths."""
    directory.mkdir(parents=True, exist_ok=True)
    md = directory / f"{entry.release}.md"
    md.write_text(markdown(entry))
    return md, png(entry, directory / png_name(entry))
