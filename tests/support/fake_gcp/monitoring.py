"""A fake of Cloud Monitoring's ListTimeSeries (gRPC), for tests only: it reports what the fake
Cloud Run router counted (counts.py) as `run.googleapis.com/request_count` (DELTA, INT64, unit
"1") and `run.googleapis.com/request_latencies` (DELTA, DISTRIBUTION, unit "ms") on the
`cloud_run_revision` resource, so the real `google-cloud-monitoring` client can query it:

    fake = MonitoringFake(counts, project="fake-project", location="europe-west1")
    channel = grpc.insecure_channel(fake.start())
    client = MetricServiceClient(transport=MetricServiceGrpcTransport(channel=channel))
    client.list_time_series(request={...})
    fake.stop()

Enforced as the API reference documents it (google.monitoring.v3 proto docs, the
"Monitoring filters" guide, Cloud Run's metric list) — violations answer INVALID_ARGUMENT:
- `name` is `projects/<id>` (another project: PERMISSION_DENIED, as for a project you cannot
  read); `filter` is required and names exactly one `metric.type`; `interval.end_time` is
  required and `start_time` (default: end_time) is not after it; reads are `(start, end]`.
- `order_by` must be blank; `page_token` must be blank (this fake answers in one page).
- An aligner other than ALIGN_NONE needs `alignment_period` >= 60 s; a cross-series reducer
  needs an aligner other than ALIGN_NONE; group_by_fields ignored without a reducer.
- Aligner/reducer validity by value type, for these DELTA metrics: ALIGN_RATE, ALIGN_MIN/MAX/
  MEAN/COUNT/STDDEV/PERCENT_CHANGE need numeric values; ALIGN_PERCENTILE_* need distributions;
  ALIGN_INTERPOLATE, ALIGN_NEXT_OLDER and the Boolean aligners are GAUGE-only; REDUCE_MIN/MAX
  need numeric, the Boolean reducers Boolean values.
- Output: ALIGN_DELTA/ALIGN_SUM keep kind and value type; ALIGN_RATE and ALIGN_PERCENTILE_*
  give GAUGE DOUBLE; REDUCE_SUM/MIN/MAX keep the value type, REDUCE_COUNT gives INT64, the
  others DOUBLE. Points newest first. Unknown metric types, or a `resource.type` other than
  cloud_run_revision, match nothing (empty answer).
- Series labels as Cloud Run's: metric.labels {response_code, response_code_class ("2xx"...),
  route: "default"}; resource.labels {project_id, service_name, revision_name, location,
  configuration_name (= the service)}.

Assumed (not stated in the docs I could check), or simplified:
- Aligned periods end at interval.end_time and step back by alignment_period, so a period
  equal to the interval gives one point covering it; periods (and series) without data are
  omitted rather than interpolated.
- Without aggregation, points are per 60 s bucket (Cloud Run samples every 60 s), clipped to
  the interval, so the current minute shows what was counted so far: no ingestion delay.
- Percentiles are nearest-rank over the exact recorded latencies (the real API interpolates
  inside histogram buckets). Distributions carry exponential buckets (64, x1.4, from 1 ms).
- Reduced series keep the group-by labels plus resource.labels.project_id.
- Filters: only `selector = "value"` clauses joined by AND, with selectors metric.type,
  resource.type, project, metric.labels.K / resource.labels.K (or .label.K); anything else
  (OR, NOT, `:`, functions) is refused with INVALID_ARGUMENT rather than misread.
- Valid but unimplemented choices (ALIGN_MIN..., secondary_aggregation) answer UNIMPLEMENTED.
"""
from __future__ import annotations

import math
import re
import statistics
from concurrent import futures
from dataclasses import dataclass, field

import grpc
from google.api import distribution_pb2, metric_pb2, monitored_resource_pb2
from google.cloud import monitoring_v3
from google.protobuf import timestamp_pb2

from tests.support.fake_gcp.counts import Counts, Point

A = monitoring_v3.Aggregation.Aligner
R = monitoring_v3.Aggregation.Reducer
DELTA, GAUGE = metric_pb2.MetricDescriptor.DELTA, metric_pb2.MetricDescriptor.GAUGE
INT64, DOUBLE = metric_pb2.MetricDescriptor.INT64, metric_pb2.MetricDescriptor.DOUBLE
DIST = metric_pb2.MetricDescriptor.DISTRIBUTION
NUMERIC, ANY = {INT64, DOUBLE}, {INT64, DOUBLE, DIST}

RESOURCE_TYPE = "cloud_run_revision"
METRICS = {"run.googleapis.com/request_count": (INT64, "1"),
           "run.googleapis.com/request_latencies": (DIST, "ms")}
SAMPLE_PERIOD = 60.0
BUCKETS = (64, 1.4, 1.0)                    # exponential: num_finite_buckets, growth, scale

ALIGNERS = {A.ALIGN_DELTA: ANY, A.ALIGN_SUM: ANY, A.ALIGN_RATE: NUMERIC,
            A.ALIGN_MIN: NUMERIC, A.ALIGN_MAX: NUMERIC, A.ALIGN_MEAN: NUMERIC,
            A.ALIGN_COUNT: NUMERIC, A.ALIGN_STDDEV: NUMERIC, A.ALIGN_PERCENT_CHANGE: NUMERIC,
            A.ALIGN_PERCENTILE_99: {DIST}, A.ALIGN_PERCENTILE_95: {DIST},
            A.ALIGN_PERCENTILE_50: {DIST}, A.ALIGN_PERCENTILE_05: {DIST}}
REDUCERS = {R.REDUCE_SUM: ANY, R.REDUCE_MEAN: ANY, R.REDUCE_STDDEV: ANY, R.REDUCE_COUNT: ANY,
            R.REDUCE_MIN: NUMERIC, R.REDUCE_MAX: NUMERIC,
            R.REDUCE_PERCENTILE_99: ANY, R.REDUCE_PERCENTILE_95: ANY,
            R.REDUCE_PERCENTILE_50: ANY, R.REDUCE_PERCENTILE_05: ANY}
PERCENTILE = {A.ALIGN_PERCENTILE_99: 99, A.ALIGN_PERCENTILE_95: 95, A.ALIGN_PERCENTILE_50: 50,
              A.ALIGN_PERCENTILE_05: 5, R.REDUCE_PERCENTILE_99: 99, R.REDUCE_PERCENTILE_95: 95,
              R.REDUCE_PERCENTILE_50: 50, R.REDUCE_PERCENTILE_05: 5}
DONE_ALIGNERS = {A.ALIGN_DELTA, A.ALIGN_SUM, A.ALIGN_RATE, A.ALIGN_PERCENTILE_99,
                 A.ALIGN_PERCENTILE_95, A.ALIGN_PERCENTILE_50, A.ALIGN_PERCENTILE_05}

_TOKEN = re.compile(r'\s*(?:(?P<str>"[^"]*")|(?P<op>=)|(?P<word>[A-Za-z_][\w.]*)|(?P<bad>\S))')
_LABEL_PREFIXES = {"metric.labels.": "metric", "metric.label.": "metric",
                   "resource.labels.": "resource", "resource.label.": "resource"}


class Refused(Exception):
    """A request the real API would refuse: gRPC status code and message."""

    def __init__(self, code: grpc.StatusCode, message: str) -> None:
        super().__init__(message)
        self.code, self.message = code, message


def _invalid(message: str) -> Refused:
    return Refused(grpc.StatusCode.INVALID_ARGUMENT, message)


@dataclass
class _Series:
    """One time series being computed: its requests, then {(start, end): value} points."""

    metric: dict[str, str]
    resource: dict[str, str]
    kind: int
    vtype: int
    samples: list[Point] = field(default_factory=list)
    values: dict[tuple[float, float], object] = field(default_factory=dict)


class MonitoringFake:
    """ListTimeSeries over gRPC on loopback, answering from the router's Counts."""

    def __init__(self, counts: Counts, host: str = "127.0.0.1", port: int = 0,
                 project: str = "fake-project", location: str = "europe-west1") -> None:
        self.counts, self.host, self.port = counts, host, port
        self.project, self.location = project, location
        self._server: grpc.Server | None = None

    def start(self) -> str:
        """Serve; returns "127.0.0.1:PORT" for grpc.insecure_channel."""
        handler = grpc.unary_unary_rpc_method_handler(
            self._list_time_series,
            request_deserializer=monitoring_v3.ListTimeSeriesRequest.deserialize,
            response_serializer=monitoring_v3.ListTimeSeriesResponse.serialize)
        self._server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
        self._server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(
            "google.monitoring.v3.MetricService", {"ListTimeSeries": handler}),))
        self.port = self._server.add_insecure_port(f"{self.host}:{self.port}")
        self._server.start()
        return f"{self.host}:{self.port}"

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop(grace=None).wait()
            self._server = None

    def _list_time_series(self, request, context):
        try:
            return self.list_time_series(request)
        except Refused as refused:
            context.abort(refused.code, refused.message)

    def list_time_series(self, request: monitoring_v3.ListTimeSeriesRequest
                         ) -> monitoring_v3.ListTimeSeriesResponse:
        """Answer one request (raises Refused); the gRPC method is a thin shell around it."""
        self._check_name(request.name)
        metric_type, clauses = _parse_filter(request.filter)
        start, end = _interval(request)
        _check_unsupported(request)
        agg = request.aggregation
        vtype, unit = METRICS.get(metric_type, (None, ""))
        _check_aggregation(agg, vtype)
        if vtype is None:
            return monitoring_v3.ListTimeSeriesResponse()
        series = [s for s in self._raw(vtype, start, end) if self._match(s, clauses)]
        if agg.per_series_aligner == A.ALIGN_NONE:
            for one in series:
                one.values = _minutes(one, start, end)
        else:
            series = [_align(one, agg, end) for one in series]
            if agg.cross_series_reducer != R.REDUCE_NONE:
                series = _reduce(series, agg)
        full = request.view == monitoring_v3.ListTimeSeriesRequest.TimeSeriesView.FULL
        return monitoring_v3.ListTimeSeriesResponse(
            time_series=[_proto(metric_type, s, unit, full) for s in series])

    def _check_name(self, name: str) -> None:
        found = re.fullmatch(r"projects/([^/]+)", name)
        if not found:
            raise _invalid(f'Field name had an invalid value of "{name}": '
                           "must be projects/[PROJECT_ID_OR_NUMBER]")
        if found.group(1) != self.project:
            raise Refused(grpc.StatusCode.PERMISSION_DENIED,
                          f"Permission monitoring.timeSeries.list denied on {name} "
                          "(or it may not exist)")

    def _raw(self, vtype: int, start: float, end: float) -> list[_Series]:
        """One series per service, revision and response code, with its requests in (start, end]."""
        series: dict[tuple[str, str, int], _Series] = {}
        for point in self.counts.points(start=start, end=end):
            if point.at <= start:
                continue
            key = (point.service, point.revision, point.code)
            if key not in series:
                series[key] = _Series(_metric_labels(point.code), self._resource_labels(point),
                                      DELTA, vtype)
            series[key].samples.append(point)
        return [series[key] for key in sorted(series)]

    def _resource_labels(self, point: Point) -> dict[str, str]:
        return {"project_id": self.project, "service_name": point.service,
                "revision_name": point.revision, "location": self.location,
                "configuration_name": point.service}

    def _match(self, series: _Series, clauses: list[tuple[str, str, str]]) -> bool:
        for scope, key, value in clauses:
            actual = {"resource.type": RESOURCE_TYPE, "project": self.project}.get(scope)
            if scope in ("metric", "resource"):
                actual = (series.metric if scope == "metric" else series.resource).get(key)
            if actual != value:
                return False
        return True


def _metric_labels(code: int) -> dict[str, str]:
    return {"response_code": str(code), "response_code_class": f"{code // 100}xx",
            "route": "default"}


def _minutes(series: _Series, start: float, end: float) -> dict[tuple[float, float], object]:
    """Raw DELTA points: one per 60 s sample period, clipped to the interval."""
    buckets: dict[float, list[Point]] = {}
    for point in series.samples:
        buckets.setdefault(math.floor(point.at / SAMPLE_PERIOD) * SAMPLE_PERIOD, []).append(point)
    return {(max(b, start), min(b + SAMPLE_PERIOD, end)): _delta(series.vtype, points)
            for b, points in buckets.items()}


def _delta(vtype: int, points: list[Point]):
    return [p.latency_ms for p in points] if vtype == DIST else len(points)


def _parse_filter(text: str) -> tuple[str, list[tuple[str, str, str]]]:
    """`a = "x" AND b = "y"` -> (metric type, [(scope, key, value)] for the other clauses)."""
    tokens = [(m.lastgroup, m.group(m.lastgroup)) for m in _TOKEN.finditer(text) if m.lastgroup]
    if not tokens:
        raise _invalid('Field filter had an invalid value of "": a filter is required')
    clauses = []
    for i in range(0, len(tokens), 4):
        kinds = [kind for kind, _ in tokens[i:i + 4]]
        if kinds[:3] != ["word", "op", "str"] or (len(kinds) == 4 and tokens[i + 3] != ("word", "AND")):
            raise _invalid(f'Field filter had an invalid value of "{text}": this fake accepts '
                           'only selector = "value" clauses joined by AND')
        clauses.append((*_selector(tokens[i][1]), tokens[i + 2][1][1:-1]))
    if len(tokens) % 4 != 3:
        raise _invalid(f'Field filter had an invalid value of "{text}": dangling AND')
    types = [value for scope, _, value in clauses if scope == "metric.type"]
    if len(types) != 1:
        raise _invalid(f'Field filter had an invalid value of "{text}": '
                       "a time series filter must specify exactly one metric type")
    return types[0], [c for c in clauses if c[0] != "metric.type"]


def _selector(key: str) -> tuple[str, str]:
    if key in ("metric.type", "resource.type", "project"):
        return key, ""
    for prefix, scope in _LABEL_PREFIXES.items():
        if key.startswith(prefix) and len(key) > len(prefix):
            return scope, key[len(prefix):]
    raise _invalid(f"Field filter had an invalid value: unknown selector {key!r}")


def _interval(request) -> tuple[float, float]:
    if "interval" not in request or "end_time" not in request.interval:
        raise _invalid("Field interval.endTime had an invalid value: it is required")
    end = request.interval.end_time.timestamp()
    start = request.interval.start_time.timestamp() if "start_time" in request.interval else end
    if start > end:
        raise _invalid("Field interval.startTime had an invalid value: "
                       "the start time must not be later than the end time")
    return start, end


def _check_unsupported(request) -> None:
    if request.order_by:
        raise _invalid("Field orderBy had an invalid value: unsupported, must be left blank")
    if request.page_token:
        raise _invalid("Field pageToken had an invalid value: this fake never issues one")
    if "secondary_aggregation" in request:
        raise Refused(grpc.StatusCode.UNIMPLEMENTED, "secondary_aggregation: not in this fake")


def _check_aggregation(agg, vtype: int | None) -> None:
    aligner, reducer = agg.per_series_aligner, agg.cross_series_reducer
    if reducer != R.REDUCE_NONE and aligner == A.ALIGN_NONE:
        raise _invalid("Field aggregation.crossSeriesReducer had an invalid value: "
                       "a reducer needs a per-series aligner other than ALIGN_NONE")
    if aligner != A.ALIGN_NONE and agg.alignment_period.total_seconds() < 60:
        raise _invalid("Field aggregation.alignmentPeriod had an invalid value: "
                       "it is required with an aligner and must be at least 60 seconds")
    for field_ in agg.group_by_fields if reducer != R.REDUCE_NONE else ():
        _group_field(field_)
    if vtype is None or aligner == A.ALIGN_NONE:
        return
    _check_op("perSeriesAligner", aligner, ALIGNERS, vtype)
    if aligner not in DONE_ALIGNERS:
        raise Refused(grpc.StatusCode.UNIMPLEMENTED, f"{aligner.name}: not in this fake")
    if reducer != R.REDUCE_NONE:
        _check_op("crossSeriesReducer", reducer, REDUCERS, _aligned_type(aligner, vtype)[1])


def _check_op(name: str, op, table: dict, vtype: int) -> None:
    if vtype not in table.get(op, set()):
        kind = "a DELTA metric" if name == "perSeriesAligner" else "the aligned series"
        raise _invalid(f'Field aggregation.{name} had an invalid value of "{op.name}": it '
                       f"cannot be applied to {kind} with value type "
                       f"{metric_pb2.MetricDescriptor.ValueType.Name(vtype)}")


def _group_field(name: str) -> tuple[str, str]:
    if name in ("resource.type", "metric.type"):
        return name, ""
    for prefix, scope in _LABEL_PREFIXES.items():
        if name.startswith(prefix) and len(name) > len(prefix):
            return scope, name[len(prefix):]
    raise _invalid(f'Field aggregation.groupByFields had an invalid value of "{name}"')


def _aligned_type(aligner, vtype: int) -> tuple[int, int]:
    """(metric kind, value type) after the aligner."""
    if aligner in (A.ALIGN_DELTA, A.ALIGN_SUM):
        return DELTA, vtype
    return GAUGE, DOUBLE


def _align(series: _Series, agg, end: float) -> _Series:
    """One value per alignment period; periods end at `end` and step back by the period."""
    period = agg.alignment_period.total_seconds()
    kind, vtype = _aligned_type(agg.per_series_aligner, series.vtype)
    periods: dict[float, list[Point]] = {}
    for point in series.samples:
        period_end = end - math.floor((end - point.at) / period) * period
        periods.setdefault(period_end, []).append(point)
    aligned = _Series(series.metric, series.resource, kind, vtype)
    for period_end, points in periods.items():
        window = (period_end - period, period_end) if kind == DELTA else (period_end, period_end)
        aligned.values[window] = _aligner(agg.per_series_aligner, series.vtype, points, period)
    return aligned


def _aligner(aligner, vtype: int, points: list[Point], period: float):
    if aligner in (A.ALIGN_DELTA, A.ALIGN_SUM):
        return _delta(vtype, points)
    if aligner == A.ALIGN_RATE:
        return len(points) / period
    return _percentile([p.latency_ms for p in points], PERCENTILE[aligner])


def _reduce(series: list[_Series], agg) -> list[_Series]:
    """Merge the series sharing their group_by_fields values, period by period."""
    fields = [_group_field(name) for name in agg.group_by_fields]
    reducer = agg.cross_series_reducer
    groups: dict[tuple, _Series] = {}
    gathered: dict[tuple, dict[tuple[float, float], list]] = {}
    for one in series:
        key = tuple(_label(one, scope, label) for scope, label in fields)
        if key not in groups:
            groups[key] = _Series(*_kept_labels(one, fields), one.kind,
                                  _reduced_type(reducer, one.vtype))
        for window, value in one.values.items():
            gathered.setdefault(key, {}).setdefault(window, []).append(value)
    for key, group in groups.items():
        group.values = {window: _reducer(reducer, series[0].vtype, values)
                        for window, values in gathered.get(key, {}).items()}
    return [groups[key] for key in sorted(groups)]


def _label(series: _Series, scope: str, key: str) -> str:
    if scope in ("metric", "resource"):
        return (series.metric if scope == "metric" else series.resource).get(key, "")
    return ""                                   # resource.type / metric.type: one value here


def _kept_labels(one: _Series, fields: list[tuple[str, str]]) -> tuple[dict, dict]:
    """Only the grouped labels survive a reduction (and the project, as the API keeps it)."""
    metric = {key: one.metric[key] for scope, key in fields
              if scope == "metric" and key in one.metric}
    resource = {key: one.resource[key] for scope, key in fields
                if scope == "resource" and key in one.resource}
    return metric, {"project_id": one.resource["project_id"], **resource}


def _reduced_type(reducer, vtype: int) -> int:
    if reducer in (R.REDUCE_SUM, R.REDUCE_MIN, R.REDUCE_MAX):
        return vtype
    return INT64 if reducer == R.REDUCE_COUNT else DOUBLE


def _reducer(reducer, vtype: int, values: list):
    if reducer == R.REDUCE_COUNT:
        return len(values)
    if reducer in (R.REDUCE_MIN, R.REDUCE_MAX):
        return (min if reducer == R.REDUCE_MIN else max)(values)
    merged = [x for value in values for x in value] if vtype == DIST else values
    if reducer == R.REDUCE_SUM:
        return merged if vtype == DIST else sum(merged)
    if reducer == R.REDUCE_MEAN:
        return statistics.fmean(merged)
    if reducer == R.REDUCE_STDDEV:
        return statistics.pstdev(merged)
    return _percentile(merged, PERCENTILE[reducer])


def _percentile(values: list[float], q: int) -> float:
    """Nearest rank: the smallest value with at least q % of the values at or below it."""
    ordered = sorted(values)
    return float(ordered[max(1, math.ceil(q / 100 * len(ordered))) - 1])


def _proto(metric_type: str, series: _Series, unit: str, full: bool) -> monitoring_v3.TimeSeries:
    points = [monitoring_v3.Point(interval=monitoring_v3.TimeInterval(
                  start_time=_timestamp(start), end_time=_timestamp(end)),
                  value=_typed(series.vtype, value))
              for (start, end), value in sorted(series.values.items(), reverse=True)]
    return monitoring_v3.TimeSeries(
        metric=metric_pb2.Metric(type=metric_type, labels=series.metric),
        resource=monitored_resource_pb2.MonitoredResource(type=RESOURCE_TYPE,
                                                          labels=series.resource),
        metric_kind=series.kind, value_type=series.vtype, unit=unit,
        points=points if full else [])


def _typed(vtype: int, value) -> monitoring_v3.TypedValue:
    if vtype == INT64:
        return monitoring_v3.TypedValue(int64_value=int(value))
    if vtype == DOUBLE:
        return monitoring_v3.TypedValue(double_value=float(value))
    return monitoring_v3.TypedValue(distribution_value=_distribution(value))


def _distribution(latencies: list[float]) -> distribution_pb2.Distribution:
    num, growth, scale = BUCKETS
    mean = statistics.fmean(latencies)
    counts = [0] * (num + 2)
    for x in latencies:
        counts[0 if x < scale else min(num + 1, int(math.log(x / scale, growth)) + 1)] += 1
    while counts and counts[-1] == 0:
        counts.pop()
    options = distribution_pb2.Distribution.BucketOptions(
        exponential_buckets=distribution_pb2.Distribution.BucketOptions.Exponential(
            num_finite_buckets=num, growth_factor=growth, scale=scale))
    return distribution_pb2.Distribution(
        count=len(latencies), mean=mean, bucket_options=options, bucket_counts=counts,
        sum_of_squared_deviation=sum((x - mean) ** 2 for x in latencies))


def _timestamp(seconds: float) -> timestamp_pb2.Timestamp:
    stamp = timestamp_pb2.Timestamp()
    stamp.FromNanoseconds(round(seconds * 1e9))
    return stamp
