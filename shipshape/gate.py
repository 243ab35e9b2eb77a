"""The canary's sequential gate: the candidate against the live slot, decided as soon as the evidence is in.

    verdict = judge(candidate=Tally(40, 9, 0), live=Tally(360, 0, 1), policy=Policy(), elapsed=1.0)
    verdict.action   # "rollback" | "advance" | "wait" | "more-data"

Each slot's requests are two Bernoulli streams: errors (5xx, and connections nginx could not make) and
slow answers (over the stack's latency bound). For each stream and slot the gate keeps a confidence
sequence: bounds on the true rate that hold at every moment at once, however often they are looked at
(Robbins' beta-binomial mixture martingale with Ville's inequality; Howard, Ramdas, McAuliffe & Sekhon,
"Time-uniform, nonparametric, nonasymptotic confidence sequences", Ann. Statist. 49(2), 2021, sec. 3.1).
The four sequences share the error budget 1 - confidence, so all of them hold together with at least the
configured confidence. That makes the gate's false alarms bounded by design, not by luck. Two slots'
sequences combine into one on the difference of their rates:

- **rollback** as soon as the candidate's lower bound is above the live slot's upper bound, for errors
  or slow answers: it is worse, with the configured confidence. This may happen before the step's
  minimum time: a 30% error candidate at 20 req/s is caught within about a second.
- **advance** once the step's minimum time has passed, the candidate has had `min_requests`, and for
  both streams the candidate's upper bound is within `tolerance` of the live slot's lower bound. That
  means it is provably not worse by more than that.
- **more-data** otherwise. A step never passes on zero requests or on too few. The watcher on the host
  then sends its own probe requests (tests/gate/, shipshape/gate_watch.py).
- **rollback** too when the candidate's error rate is above `max_error_rate` (the absolute ceiling) with
  the configured confidence, whatever the live slot does: a release never spreads because the live one
  was just as bad. (Judged on the bound, not the observed rate: the observed rate of a 3% service
  exceeds 5% in one step of 50 requests in five, a false alarm the confidence would not cover.)

Evidence accumulates over the whole canary (the candidate is the same release at 10% and at 50%), so
later steps start from what earlier ones saw. This module is stdlib only: the watcher runs it on the
host's own python3 (shipshape/gate_watch.py), and the Cloud Run target runs it locally.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

# The mixture's prior Beta(0.2, 2): mass toward low rates, where a working service's error and slow rates
# lie. Any prior gives valid bounds; this one gives tighter ones near zero (a good release advances in
# ~5 s instead of ~7.5 s at 20 req/s with Beta(1/2, 1/2); bench/gate_bench.py).
PRIOR = (0.2, 2.0)
STREAMS = ("errors", "slow")
BISECTIONS = 50


@dataclass(frozen=True)
class Tally:
    """What one slot answered so far: requests, errors among them, and slow answers among them."""

    requests: int = 0
    errors: int = 0
    slow: int = 0

    def __add__(self, other: "Tally") -> "Tally":
        return Tally(self.requests + other.requests, self.errors + other.errors, self.slow + other.slow)

    def rate(self, stream: str) -> float:
        return getattr(self, stream) / self.requests if self.requests else 0.0


@dataclass(frozen=True)
class Policy:
    """The gate's settings, from shipshape:canary."""

    confidence: float = 0.95      # all four confidence sequences hold together with this probability
    tolerance: float = 0.05       # "not worse": at most this much above the live slot's rate
    ceiling: float = 0.05         # max_error_rate: an error rate above it (with confidence) always stops
    min_requests: int = 50        # the candidate's requests before it may advance
    min_seconds: float = 0.0      # the step's minimum time (shipshape:canary.interval)

    @classmethod
    def of(cls, canary) -> "Policy":
        """The policy of a stack's shipshape:canary (shipshape.config.Canary)."""
        return cls(canary.confidence, canary.tolerance, canary.max_error_rate, canary.min_requests,
                   canary.interval)

    @property
    def alpha(self) -> float:
        """The error budget of each of the four sequences (two slots, two streams)."""
        return (1.0 - self.confidence) / 4


@dataclass(frozen=True)
class Verdict:
    action: str        # rollback | advance | wait | more-data
    reason: str

    @property
    def final(self) -> bool:
        return self.action in ("rollback", "advance")


@dataclass(frozen=True)
class Step:
    """How one canary step ended: the verdict, both slots' tallies since the canary began, probes sent."""

    action: str        # rollback | advance | undecided
    reason: str
    candidate: Tally
    live: Tally
    elapsed: float
    probes: int = 0
    timeline: tuple = ()   # (seconds, c.requests, c.errors, c.slow, l.requests, l.errors, l.slow) per read

    @classmethod
    def from_json(cls, data: dict) -> "Step":
        return cls(data["action"], data["reason"], Tally(**data["candidate"]), Tally(**data["live"]),
                   data["elapsed"], data.get("probes", 0), tuple(map(tuple, data.get("timeline", ()))))

    def summary(self) -> str:
        c, l = self.candidate, self.live
        probes = f", {self.probes} probe rounds" if self.probes else ""
        return (f"{self.action} after {self.elapsed:.1f}s: candidate {c.requests} requests, error rate "
                f"{_pct(c.rate('errors'))}, slow {_pct(c.rate('slow'))}; live {l.requests} requests, error rate "
                f"{_pct(l.rate('errors'))}, slow {_pct(l.rate('slow'))}{probes}")


def _log_mixture(p: float, hits: int, n: int) -> float:
    """log of the beta-binomial mixture martingale at rate p: how strongly the data speak against p."""
    log_beta = lambda a, b: math.lgamma(a) + math.lgamma(b) - math.lgamma(a + b)  # noqa: E731
    (a, b), misses = PRIOR, n - hits
    return (log_beta(a + hits, b + misses) - log_beta(a, b)
            - (hits * math.log(p) if hits else 0.0) - (misses * math.log1p(-p) if misses else 0.0))


def bounds(hits: int, n: int, alpha: float) -> tuple[float, float]:
    """The (1 - alpha) confidence sequence for a rate after `hits` in `n`: valid at every n at once."""
    if n == 0:
        return 0.0, 1.0
    threshold, estimate = math.log(1.0 / alpha), hits / n
    outside = lambda p: _log_mixture(p, hits, n) >= threshold  # noqa: E731

    def edge(inside: float, out: float) -> float:
        for _ in range(BISECTIONS):
            middle = (inside + out) / 2
            inside, out = (inside, middle) if outside(middle) else (middle, out)
        return inside

    tiny = 1e-12
    low = edge(max(estimate, tiny), tiny) if hits and outside(tiny) else 0.0
    high = edge(min(estimate, 1 - tiny), 1 - tiny) if hits < n and outside(1 - tiny) else 1.0
    return low, high


def judge(candidate: Tally, live: Tally, policy: Policy, elapsed: float) -> Verdict:
    """What the gate does now, given everything both slots answered since the canary began."""
    if candidate.requests == 0:
        return Verdict("more-data", "no request has reached the candidate yet")
    alpha, worse, within = policy.alpha, [], []
    for stream in STREAMS:
        c_low, c_high = bounds(getattr(candidate, stream), candidate.requests, alpha)
        l_low, l_high = bounds(getattr(live, stream), live.requests, alpha)
        shown = (f"{stream} {_pct(candidate.rate(stream))} of {candidate.requests} vs live "
                 f"{_pct(live.rate(stream))} of {live.requests}")
        if c_low > l_high:
            worse.append(f"{shown}: worse with {policy.confidence:.0%} confidence (candidate >= {_pct(c_low)}, "
                         f"live <= {_pct(l_high)})")
        within.append((c_high - l_low <= policy.tolerance, shown, c_high - l_low))
        if stream == "errors" and c_low > policy.ceiling:
            worse.append(f"error rate {_pct(candidate.rate(stream))} of {candidate.requests} requests: above the "
                         f"{policy.ceiling:.0%} ceiling with {policy.confidence:.0%} confidence (>= {_pct(c_low)})")
    if worse:
        return Verdict("rollback", "; ".join(worse))
    if elapsed < policy.min_seconds:
        return Verdict("wait", f"{elapsed:.1f}s of the step's {policy.min_seconds:g}s")
    if candidate.requests < policy.min_requests:
        return Verdict("more-data", f"{candidate.requests} of the {policy.min_requests} requests the candidate "
                                    "needs before it may advance")
    if all(ok for ok, _, _ in within):
        return Verdict("advance", "; ".join(shown for _, shown, _ in within)
                       + f": not worse by more than {_pct(policy.tolerance)} with {policy.confidence:.0%} confidence")
    pending = [f"{shown} (could be {_pct(gap)} worse)" for ok, shown, gap in within if not ok]
    return Verdict("more-data", "; ".join(pending))


def _pct(value: float) -> str:
    return f"{value * 100:.1f}%"
