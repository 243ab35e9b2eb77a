"""A stateful local fake of Google Cloud Run, for tests only: Google's APIs are unreachable from here.

What is fake (everything on loopback, started as its own process by `python -m tests.support.fake_gcp`):
    - the Cloud Run Admin API v2 over REST (services, revisions, jobs, executions, operations, IAM),
      spoken exactly as google-cloud-run 0.16.2's REST transport speaks it, enforcing the rules the
      real API documents (see api.py's docstring for each rule and each assumption);
    - the OAuth2 token endpoint (refresh-token grant), reachable as https://oauth2.googleapis.com/token
      through the fake as an HTTPS proxy (google-auth ignores an ADC file's token_uri);
    - Cloud Run's front end: a URL per service and per tag, splitting requests by the traffic list;
    - Cloud Monitoring's ListTimeSeries (run.googleapis.com/request_count and request_latencies)
      from what that front end counted.
What is real: each revision and each job execution is a container on a Docker engine, started from
the image the code under test pushed, with Cloud Run's env (PORT, K_SERVICE, K_REVISION, ...).

Modules:
    api.py          the HTTP server, the state and the rules; the /_fake/ control API; /token
    containers.py   revisions and executions as docker containers (commands as data, one runner)
    router.py       the front end (service and tag URLs, weighted split, 503 for a dead backend)
    counts.py       what the router answered, per service/revision/code/latency
    monitoring.py   the gRPC MetricService fake over counts
    __main__.py     the process: all of the above, one JSON line when ready, cleanup on SIGTERM
    fixture.py      pytest plugin: the session fixture `fake_gcp` (FakeGcp)

How tests use it (tests/conftest.py registers tests.support.fake_gcp.fixture):

    def test_x(fake_gcp, tmp_path, monkeypatch):
        for key, value in fake_gcp.env(tmp_path).items():   # ADC file, proxy for the token host, CA
            monkeypatch.setenv(key, value)
        fake_gcp.reset()
        fake_gcp.seed(service="shop", image=image, env={"A": "1"})
        client = run_v2.ServicesClient(transport="rest", client_options=fake_gcp.client_options)
        fake_gcp.state(); fake_gcp.job_logs(job="shop-migrate"); fake_gcp.kill_revision("shop-00001-abc")
"""
