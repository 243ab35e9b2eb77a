"""Google Cloud from `fab`: Application Default Credentials, Google's own clients, one-line errors.

    clients = Clients.connect(stack.gcp)        # GcpError (one line naming what to run) without credentials
    service = clients.call("read service", clients.services.get_service, name=clients.service_name(app))

Credentials are Application Default Credentials (`gcloud auth application-default login`, or a service
account in CI through GOOGLE_APPLICATION_CREDENTIALS / workload identity), refreshed once up front so a
missing or revoked login is one clear line before anything changes. Cloud Run's admin API is reached over
REST; Monitoring over gRPC (google-cloud-monitoring has no REST transport). `shipshape:gcp.run_endpoint`
and `monitoring_endpoint` point them elsewhere (a regional endpoint; the tests' fake): an `http://`
endpoint is spoken to in plain text, anything else with TLS.
"""
from __future__ import annotations

from dataclasses import dataclass

# Google's clients are imported where they are used: they cost ~0.45 s, which every `fab` task on a
# host stack would otherwise pay at start-up for nothing.

SCOPES = ("https://www.googleapis.com/auth/cloud-platform",)
INVOKER_ROLE = "roles/run.invoker"
PUBLIC_MEMBERS = frozenset({"allUsers", "allAuthenticatedUsers"})  # members that make a service public
LOGIN = "gcloud auth application-default login"


class GcpError(Exception):
    """A Google API call failed; the message is one line saying what to do."""


class ConcurrentChange(GcpError):
    """The resource changed since it was read (a stale etag): someone else acted on it."""


def credentials():
    """ADC, refreshed now: GcpError naming the command to run when there are none or they are refused."""
    import google.auth
    from google.auth import exceptions as auth
    from google.auth.transport.requests import Request

    try:
        creds, _ = google.auth.default(scopes=SCOPES)
    except auth.DefaultCredentialsError:
        raise GcpError(f"no Google credentials (Application Default Credentials) on this machine: run `{LOGIN}`"
                       " (or set GOOGLE_APPLICATION_CREDENTIALS to a service account key)") from None
    try:
        creds.refresh(Request())
    except auth.RefreshError as error:
        raise GcpError(f"Google refused the Application Default Credentials ({_first_line(error)}): "
                       f"run `{LOGIN}` again") from None
    except auth.TransportError as error:
        raise GcpError(f"cannot reach Google's token endpoint to refresh the credentials: {_first_line(error)}") from None
    return creds


@dataclass
class Clients:
    """The Cloud Run admin clients and the Monitoring client of one stack's project and region."""

    project: str
    region: str
    services: object    # run_v2.ServicesClient
    revisions: object   # run_v2.RevisionsClient
    jobs: object        # run_v2.JobsClient
    executions: object  # run_v2.ExecutionsClient
    metrics: object     # monitoring_v3.MetricServiceClient
    credentials: object

    @classmethod
    def connect(cls, cloud) -> "Clients":
        from google.api_core.client_options import ClientOptions
        from google.cloud import run_v2

        creds = credentials()
        options = ClientOptions(api_endpoint=cloud.run_endpoint) if cloud.run_endpoint else None

        def run(client_class):
            return client_class(credentials=creds, transport="rest", client_options=options)

        return cls(cloud.project, cloud.region, run(run_v2.ServicesClient), run(run_v2.RevisionsClient),
                   run(run_v2.JobsClient), run(run_v2.ExecutionsClient), _metrics(cloud, creds), creds)

    @property
    def location(self) -> str:
        return f"projects/{self.project}/locations/{self.region}"

    def service_name(self, service: str) -> str:
        return f"{self.location}/services/{service}"

    def job_name(self, job: str) -> str:
        return f"{self.location}/jobs/{job}"

    def call(self, what: str, method, *args, **kwargs):
        """`method(*args, **kwargs)`, its failures as one GcpError line naming `what` was being done."""
        from google.api_core import exceptions as api
        from google.auth import exceptions as auth

        try:
            return method(*args, **kwargs)
        except api.GoogleAPICallError as error:
            raise explain(what, error) from None
        except auth.RefreshError as error:
            raise GcpError(f"{what}: Google refused the credentials ({_first_line(error)}): run `{LOGIN}`") from None

    def wait(self, what: str, operation, timeout: float):
        """The long-running operation's result, or GcpError with the operation's own message."""
        return self.call(what, operation.result, timeout=timeout)


def _metrics(cloud, creds):
    """The Monitoring client (gRPC: google-cloud-monitoring has no REST transport)."""
    import grpc
    from google.api_core.client_options import ClientOptions
    from google.cloud import monitoring_v3
    from google.cloud.monitoring_v3.services.metric_service.transports import MetricServiceGrpcTransport

    endpoint = cloud.monitoring_endpoint
    if endpoint and endpoint.startswith("http://"):
        channel = grpc.insecure_channel(endpoint.removeprefix("http://"))
        return monitoring_v3.MetricServiceClient(transport=MetricServiceGrpcTransport(channel=channel))
    options = ClientOptions(api_endpoint=endpoint) if endpoint else None
    return monitoring_v3.MetricServiceClient(credentials=creds, client_options=options)


def invoker_headers(creds, public: bool, url: str) -> dict:
    """What a request to a Cloud Run URL carries: nothing when allUsers may invoke the service, else an
    identity token (Cloud Run's IAM wants one, not an access token). User credentials (`gcloud auth
    application-default login`) hold one since their refresh; for a service account google-auth fetches
    one whose audience is the URL."""
    if public:
        return {}
    token = getattr(creds, "id_token", None)
    if not token:
        from google.auth import exceptions as auth
        from google.auth.transport.requests import Request
        from google.oauth2 import id_token

        try:
            token = id_token.fetch_id_token(Request(), url)
        except auth.GoogleAuthError as error:
            raise GcpError(f"no identity token to call {url} (shipshape:gcp.public is false): "
                           f"{_first_line(error)}: run `{LOGIN}`, or use a service account key") from None
    return {"Authorization": f"Bearer {token}"}


def explain(what: str, error) -> GcpError:
    """One line for a failed call (a google.api_core GoogleAPICallError): what to run or check."""
    from google.api_core import exceptions as api

    message = _first_line(error.message or error)
    if isinstance(error, api.Unauthorized):  # HTTP 401 (Unauthenticated over gRPC is its subclass)
        return GcpError(f"{what}: Google refused the credentials ({message}): run `{LOGIN}`")
    if isinstance(error, api.PermissionDenied):
        return GcpError(f"{what}: permission denied ({message}): the account needs roles/run.developer "
                        "and roles/iam.serviceAccountUser on the project")
    # AIP-154: a stale etag fails with ABORTED, HTTP 409 (which the REST transport raises as Conflict).
    if isinstance(error, api.Aborted) or (isinstance(error, (api.Conflict, api.FailedPrecondition))
                                          and "etag" in message.lower()):
        return ConcurrentChange(f"{what}: the resource changed since this run read it ({message})")
    if isinstance(error, api.NotFound):
        return GcpError(f"{what}: not found ({message}): has `pulumi up` created it?")
    return GcpError(f"{what}: {type(error).__name__}: {message}")


def _first_line(error) -> str:
    text = str(error).strip()
    return text.splitlines()[0][:300] if text else type(error).__name__
