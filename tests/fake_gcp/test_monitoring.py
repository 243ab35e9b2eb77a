"""The Monitoring fake, queried with the real google-cloud-monitoring client over gRPC: it reports
what the router counted, per revision and response code class, within the interval asked."""
from __future__ import annotations

import time

import grpc
import pytest
from google.api import metric_pb2
from google.api_core import exceptions
from google.cloud import monitoring_v3
from google.cloud.monitoring_v3.services.metric_service.transports import (
    MetricServiceGrpcTransport,
)

from tests.fake_gcp import test_router
from tests.support.fake_gcp.counts import Counts
from tests.support.fake_gcp.monitoring import MonitoringFake
from tests.support.fake_gcp.router import Router

COUNT = "run.googleapis.com/request_count"
LATENCY = "run.googleapis.com/request_latencies"
T0 = 1_700_000_040.0                                    # on a minute boundary
A = monitoring_v3.Aggregation.Aligner
R = monitoring_v3.Aggregation.Reducer

backend = test_router.backend                           # the same trivial revision containers


@pytest.fixture
def counts():
    return Counts()


@pytest.fixture
def client(counts):
    fake = MonitoringFake(counts, project="fake-project", location="europe-west1")
    channel = grpc.insecure_channel(fake.start())
    yield monitoring_v3.MetricServiceClient(transport=MetricServiceGrpcTransport(channel=channel))
    channel.close()
    fake.stop()


def stamp(seconds: float) -> dict:
    return {"seconds": int(seconds), "nanos": round((seconds % 1) * 1e9)}


def query(client, filter_: str, start: float | None, end: float | None, period: int = 0,
          aligner=A.ALIGN_NONE, reducer=R.REDUCE_NONE, group_by=(), **extra) -> list:
    interval = {"end_time": stamp(end)} if end is not None else {}
    if start is not None:
        interval["start_time"] = stamp(start)
    request = {"name": "projects/fake-project", "filter": filter_, "interval": interval,
               "aggregation": {"alignment_period": {"seconds": period},
                               "per_series_aligner": aligner, "cross_series_reducer": reducer,
                               "group_by_fields": list(group_by)}, **extra}
    return list(client.list_time_series(request=request))


def shape(series) -> tuple[str, str]:
    """(metric kind, value type) names of a TimeSeries."""
    descriptor = metric_pb2.MetricDescriptor
    return (descriptor.MetricKind.Name(series.metric_kind),
            descriptor.ValueType.Name(series.value_type))


def by_revision_and_class(series: list) -> dict[tuple[str, str], int]:
    return {(s.resource.labels["revision_name"], s.metric.labels["response_code_class"]):
            sum(p.value.int64_value for p in s.points) for s in series}


def test_it_reports_the_routers_counts_per_revision_and_code_class(client, counts, backend):
    router = Router(counts)
    try:
        url = router.add_service("shop")
        router.set_traffic("shop", [("shop-1", 50, backend("shop-1")), ("shop-2", 50, None)])
        start = time.time() - 1
        for path in ["/", "/", "/fail", "/", "/", "/"]:      # alternately shop-1, shop-2
            test_router.get(url, path)
    finally:
        router.close()
    series = query(client, f'metric.type = "{COUNT}"', start, time.time() + 1, period=300,
                   aligner=A.ALIGN_DELTA, reducer=R.REDUCE_SUM,
                   group_by=["resource.labels.revision_name", "metric.labels.response_code_class"])
    # shop-1 answered "/" with 200 and "/fail" with 500; shop-2 has no container: 503 each time
    assert by_revision_and_class(series) == {("shop-1", "2xx"): 2, ("shop-1", "5xx"): 1,
                                             ("shop-2", "5xx"): 3}


def test_the_canary_gate_query_for_one_revisions_errors(client, counts):
    for code in (200, 200, 500, 503, 404):
        counts.record("shop", "shop-2", code, 5.0, at=T0 - 30)
    counts.record("shop", "shop-1", 500, 5.0, at=T0 - 30)
    series = query(client, f'metric.type = "{COUNT}" AND resource.type = "cloud_run_revision" '
                           'AND resource.labels.revision_name = "shop-2" '
                           'AND metric.labels.response_code_class = "5xx"',
                   T0 - 300, T0, period=300, aligner=A.ALIGN_DELTA, reducer=R.REDUCE_SUM)
    assert len(series) == 1 and len(series[0].points) == 1
    assert series[0].points[0].value.int64_value == 2
    assert series[0].resource.labels == {"project_id": "fake-project"}


def test_only_points_within_the_interval_count(client, counts):
    for at in (T0 - 120, T0 - 60, T0 - 59, T0 - 1, T0, T0 + 1):
        counts.record("shop", "shop-1", 200, 5.0, at=at)
    series = query(client, f'metric.type = "{COUNT}"', T0 - 60, T0, period=60,
                   aligner=A.ALIGN_DELTA, reducer=R.REDUCE_SUM)
    assert [p.value.int64_value for p in series[0].points] == [3]     # (start, end]


def test_raw_series_are_per_minute_deltas_newest_first_with_cloud_run_labels(client, counts):
    for at in (T0 - 90, T0 - 70, T0 - 10):
        counts.record("shop", "shop-1", 200, 5.0, at=at)
    [series] = query(client, f'metric.type = "{COUNT}"', T0 - 120, T0)
    assert [(p.interval.start_time.timestamp(), p.interval.end_time.timestamp(),
             p.value.int64_value) for p in series.points] == [(T0 - 60, T0, 1),
                                                              (T0 - 120, T0 - 60, 2)]
    assert series.metric.labels == {"response_code": "200", "response_code_class": "2xx",
                                    "route": "default"}
    assert series.resource.type == "cloud_run_revision"
    assert series.resource.labels == {"project_id": "fake-project", "service_name": "shop",
                                      "revision_name": "shop-1", "location": "europe-west1",
                                      "configuration_name": "shop"}
    assert shape(series) == ("DELTA", "INT64")


@pytest.mark.parametrize("code, aligner, reducer, expected", [
    ("", A.ALIGN_DELTA, R.REDUCE_PERCENTILE_95, 95.0),       # of all of shop-2's requests
    ("", A.ALIGN_DELTA, R.REDUCE_PERCENTILE_99, 99.0),
    ("", A.ALIGN_DELTA, R.REDUCE_PERCENTILE_50, 50.0),
    ("", A.ALIGN_PERCENTILE_95, R.REDUCE_MAX, 96.0),         # the worse of the codes' p95s
    ("200", A.ALIGN_PERCENTILE_95, R.REDUCE_NONE, 95.0),     # of 1, 3 ... 99 ms
    ("200", A.ALIGN_PERCENTILE_99, R.REDUCE_NONE, 99.0),
    ("200", A.ALIGN_PERCENTILE_50, R.REDUCE_NONE, 49.0),
])
def test_it_computes_latency_percentiles(client, counts, code, aligner, reducer, expected):
    for ms in range(1, 101):                     # 1..100 ms: odd ones answered 200, even 500
        counts.record("shop", "shop-2", 200 if ms % 2 else 500, float(ms), at=T0 - 100 + ms / 2)
    counts.record("shop", "shop-1", 200, 9999.0, at=T0 - 10)
    only = f' AND metric.labels.response_code = "{code}"' if code else ""
    [series] = query(client, f'metric.type = "{LATENCY}" AND resource.labels.revision_name = '
                             f'"shop-2"{only}', T0 - 300, T0, period=300, aligner=aligner,
                     reducer=reducer, group_by=["resource.labels.revision_name"])
    assert [p.value.double_value for p in series.points] == [expected]
    assert shape(series)[1] == "DOUBLE"


def test_latency_distributions_and_rates(client, counts):
    for ms in (10.0, 20.0, 30.0):
        counts.record("shop", "shop-1", 200, ms, at=T0 - 5)
    [dist] = query(client, f'metric.type = "{LATENCY}"', T0 - 60, T0, period=60,
                   aligner=A.ALIGN_DELTA)
    value = dist.points[0].value.distribution_value
    assert (value.count, value.mean, shape(dist)) == (3, 20.0, ("DELTA", "DISTRIBUTION"))
    assert sum(value.bucket_counts) == 3
    [rate] = query(client, f'metric.type = "{COUNT}"', T0 - 60, T0, period=60,
                   aligner=A.ALIGN_RATE)
    assert (rate.points[0].value.double_value, shape(rate)) == (0.05, ("GAUGE", "DOUBLE"))


def test_headers_view_unknown_metrics_and_other_resources(client, counts):
    counts.record("shop", "shop-1", 200, 5.0, at=T0 - 5)
    [header] = query(client, f'metric.type = "{COUNT}"', T0 - 60, T0, view="HEADERS")
    assert (header.resource.labels["revision_name"], list(header.points)) == ("shop-1", [])
    assert query(client, 'metric.type = "run.googleapis.com/nope"', T0 - 60, T0) == []
    assert query(client, f'metric.type = "{COUNT}" AND resource.type = "gce_instance"',
                 T0 - 60, T0) == []


F = f'metric.type = "{COUNT}"'


@pytest.mark.parametrize("why, change", [
    ("no filter", {"filter_": ""}),
    ("two metric types", {"filter_": f'{F} AND metric.type = "{LATENCY}"'}),
    ("no metric type", {"filter_": 'resource.type = "cloud_run_revision"'}),
    ("OR is not understood", {"filter_": f'{F} OR resource.labels.revision_name = "x"'}),
    ("dangling AND", {"filter_": f"{F} AND"}),
    ("unquoted value", {"filter_": "metric.type = run.googleapis.com/request_count"}),
    ("no end time", {"end": None}),
    ("start after end", {"start": T0 + 1}),
    ("percentile of a count", {"aligner": A.ALIGN_PERCENTILE_95, "period": 60}),
    ("rate of a distribution", {"filter_": f'metric.type = "{LATENCY}"',
                                "aligner": A.ALIGN_RATE, "period": 60}),
    ("gauge-only aligner", {"aligner": A.ALIGN_NEXT_OLDER, "period": 60}),
    ("reducer without aligner", {"reducer": R.REDUCE_SUM}),
    ("aligner without period", {"aligner": A.ALIGN_DELTA}),
    ("period under 60 s", {"aligner": A.ALIGN_DELTA, "period": 30}),
    ("min of distributions", {"filter_": f'metric.type = "{LATENCY}"', "aligner": A.ALIGN_DELTA,
                              "period": 60, "reducer": R.REDUCE_MIN}),
    ("bad group-by field", {"aligner": A.ALIGN_DELTA, "period": 60, "reducer": R.REDUCE_SUM,
                            "group_by": ["revision_name"]}),
    ("order_by", {"order_by": "metric.type"}),
])
def test_it_refuses_what_the_api_refuses(client, why, change):
    args = {"filter_": F, "start": T0 - 60, "end": T0, **change}
    with pytest.raises(exceptions.InvalidArgument):
        query(client, **args)


def test_a_bad_name_is_invalid_and_another_project_is_denied(client):
    request = {"filter": F, "interval": {"end_time": stamp(T0)}}
    with pytest.raises(exceptions.InvalidArgument):
        list(client.list_time_series(request={"name": "fake-project", **request}))
    with pytest.raises(exceptions.PermissionDenied):
        list(client.list_time_series(request={"name": "projects/other", **request}))
