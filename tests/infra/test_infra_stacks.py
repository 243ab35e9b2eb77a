"""Per stack, what the program declares: private database, HA/deletion protection in prod only, probes,
least-privilege service account, secrets by reference, release fields ignored by default, VPS hosts."""
from __future__ import annotations

import pytest

from infra.service import BASE_ROLES, RELEASE_FIELDS
from tests.infra.conftest import SCRIPT, run_stack, shipped, variant

SQL = "gcp:sql/databaseInstance:DatabaseInstance"
REDIS = "gcp:redis/instance:Instance"
SERVICE = "gcp:cloudrunv2/service:Service"
JOB = "gcp:cloudrunv2/job:Job"
PROD_ONLY = {"dev": False, "prod": True}


def container(run):
    return run.one(SERVICE).state["template"]["containers"][0]


def test_database_has_a_private_ip_only_with_backups_and_pitr(cloud_stack):
    _, run = cloud_stack
    settings = run.one(SQL).state["settings"]
    assert settings["ipConfiguration"]["ipv4Enabled"] is False
    assert settings["ipConfiguration"]["privateNetwork"] == "net-vpc-id"
    assert settings["backupConfiguration"]["enabled"] is True
    assert settings["backupConfiguration"]["pointInTimeRecoveryEnabled"] is True
    assert settings["backupConfiguration"]["startTime"] == "03:00"
    assert run.one(SQL).state["databaseVersion"] == "POSTGRES_17"


def test_ha_and_deletion_protection_in_prod_only(cloud_stack):
    name, run = cloud_stack
    db = run.one(SQL).state
    assert (db["settings"]["availabilityType"] == "REGIONAL") is PROD_ONLY[name]
    assert db["deletionProtection"] is PROD_ONLY[name]
    assert db["settings"]["deletionProtectionEnabled"] is PROD_ONLY[name]
    assert run.one(SERVICE).state["deletionProtection"] is PROD_ONLY[name]


@pytest.mark.parametrize("stack, tier, transit", [("dev", "BASIC", "DISABLED"),
                                                  ("prod", "STANDARD_HA", "SERVER_AUTHENTICATION")])
def test_redis_has_auth_and_prod_tier(stack, tier, transit):
    redis = shipped(stack).one(REDIS).state
    assert (redis["authEnabled"], redis["tier"], redis["transitEncryptionMode"]) == (True, tier, transit)
    assert redis["connectMode"] == "PRIVATE_SERVICE_ACCESS"


@pytest.mark.parametrize("stack, scaling", [("dev", (0, 2)), ("prod", (1, 10))])
def test_instances_come_from_config(stack, scaling):
    got = shipped(stack).one(SERVICE).state["template"]["scaling"]
    assert (got["minInstanceCount"], got["maxInstanceCount"]) == scaling


def test_probes_hit_the_app_health_paths(cloud_stack):
    c = container(cloud_stack[1])
    assert c["startupProbe"]["httpGet"] == {"path": "/healthz", "port": 8080}  # readiness: fab, via the tag URL
    assert c["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": 8080}


def test_direct_vpc_egress_to_private_ranges_only(cloud_stack):
    access = cloud_stack[1].one(SERVICE).state["template"]["vpcAccess"]
    assert access["egress"] == "PRIVATE_RANGES_ONLY"
    assert access["networkInterfaces"] == [{"network": "net-vpc-id", "subnetwork": "net-subnet-id"}]


def test_secrets_are_references_never_values(cloud_stack):
    _, run = cloud_stack
    for resource in (run.one(SERVICE), run.one(JOB)):
        template = resource.state["template"]
        envs = (template.get("template", template))["containers"][0]["envs"]
        release = {e["name"]: e["value"] for e in envs[:2]}  # not secrets: what each release sets
        assert release == {"RELEASE_ID": "pulumi-up", "GIT_SHA": "unknown"}
        assert {e["name"]: e["valueSource"]["secretKeyRef"]["secret"] for e in envs[2:]} == {
            "DATABASE_URL": "database-url", "REDIS_URL": "redis-url", "SECRET_KEY": "sample-secret-key"}
        assert all("value" not in e for e in envs[2:])


READ_SECRETS = {"dev": {"database-url", "redis-url", "sample-secret-key"},
                "prod": {"database-url", "redis-url", "sample-secret-key", "redis-ca"}}


def test_service_account_holds_only_the_roles_it_needs(cloud_stack):
    name, run = cloud_stack
    account = run.one(SERVICE).state["template"]["serviceAccount"]
    project_roles = {r.state["role"] for r in run.of_type("gcp:projects/iAMMember:IAMMember")}
    assert project_roles == set(BASE_ROLES) == {"roles/cloudsql.client"}
    readers = run.of_type("gcp:secretmanager/secretIamMember:SecretIamMember")
    assert {(r.state["secretId"], r.state["role"], r.state["member"]) for r in readers} == {
        (secret, "roles/secretmanager.secretAccessor", f"serviceAccount:{account}")
        for secret in READ_SECRETS[name]}
    assert account.startswith("sample-run@")


@pytest.mark.parametrize("stack, url_start, mounts", [
    ("dev", "redis://:", []),
    ("prod", "rediss://:", [{"name": "redis-ca", "mountPath": "/secrets/redis-ca"}])])
def test_redis_tls_in_prod_verifies_against_the_mounted_server_ca(stack, url_start, mounts):
    run = shipped(stack)
    redis = run.one("gcp:redis/instance:Instance")
    versions = {r.name: r.state["secretData"] for r in run.of_type("gcp:secretmanager/secretVersion:SecretVersion")}
    assert versions["cache-url-v"].startswith(url_start)
    assert versions["cache-url-v"].endswith("?ssl_ca_certs=/secrets/redis-ca/ca.pem") is bool(mounts)
    assert container(run).get("volumeMounts", []) == mounts
    assert redis.state["authEnabled"] is True


def test_release_fields_are_ignored_by_default(cloud_stack):
    ignored = cloud_stack[1].one(SERVICE).ignore_changes
    assert "template.containers[0].image" in ignored and "traffics" in ignored
    assert set(ignored) == set(RELEASE_FIELDS)


def test_app_env_and_secret_env_are_the_same_keys_as_on_a_host():
    run = run_stack(variant("dev", app={"name": "sample", "env": {"MODE": "cloud"},
                                        "secret_env": {"STRIPE_KEY": "gcp:stripe-key"}},
                            gcp={"project": "shipshape-dev", "env": {"MODE": "old", "OTHER": "1"}}))
    envs = {e["name"]: e for e in container(run)["envs"]}
    assert envs["MODE"]["value"] == "cloud" and envs["OTHER"]["value"] == "1"
    assert envs["STRIPE_KEY"]["valueSource"]["secretKeyRef"]["secret"] == "stripe-key"
    assert "value" not in envs["STRIPE_KEY"]


def test_pulumi_can_own_the_release_instead():
    run = run_stack(variant("dev", gcp={"pulumi_owns_release": True}))
    assert run.one(SERVICE).ignore_changes == ()
    assert run.one(JOB).ignore_changes == ()


@pytest.mark.parametrize("public, invokers", [(True, {"allUsers"}), (False, set())])
def test_public_invoker_only_when_config_says_public(public, invokers):
    run = run_stack(variant("dev", gcp={"public": public}))
    members = {r.state["member"] for r in run.of_type("gcp:cloudrunv2/serviceIamMember:ServiceIamMember")}
    assert members == invokers


def test_image_built_from_the_app_dir_and_migrations_run_as_a_job(cloud_stack):
    _, run = cloud_stack
    image = run.one("docker:index/image:Image").state
    assert image["build"]["context"].endswith("examples/app") and image["skipPush"] is True
    assert image["imageName"].startswith("europe-west1-docker.pkg.dev/")
    job = run.one(JOB).state["template"]["template"]
    assert job["containers"][0]["commands"] == ["alembic", "upgrade", "head"]
    assert job["vpcAccess"]["egress"] == "PRIVATE_RANGES_ONLY"


def test_alerts_carry_the_brief_thresholds(cloud_stack):
    _, run = cloud_stack
    policies = {r.name: r.state["conditions"][0] for r in run.of_type("gcp:monitoring/alertPolicy:AlertPolicy")}
    errors = policies["monitoring-errors"]["conditionPrometheusQueryLanguage"]
    assert errors["duration"] == "300s" and errors["query"].endswith("> 0.05") and '5xx' in errors["query"]
    assert policies["monitoring-database"]["conditionThreshold"]["duration"] == "0s"
    memory = policies["monitoring-memory"]["conditionThreshold"]
    assert (memory["thresholdValue"], memory["duration"]) == (0.85, "600s")
    channel = run.one("gcp:monitoring/notificationChannel:NotificationChannel").state
    assert channel["type"] == "webhook_tokenauth"
    assert all(r.state["notificationChannels"] == [channel["name"]]
               for r in run.of_type("gcp:monitoring/alertPolicy:AlertPolicy"))
    uptime = run.one("gcp:monitoring/uptimeCheckConfig:UptimeCheckConfig").state
    assert uptime["httpCheck"]["path"] == "/healthz" and uptime["httpCheck"]["useSsl"] is True
    assert uptime["monitoredResource"]["labels"]["host"] == "sample-mock-ew.a.run.app"


@pytest.mark.parametrize("monitoring, channel_type", [
    ({"channel": "email", "email": "ops@example.com"}, "email"),
    ({"channel": "slack", "slack_channel": "#ops", "slack_token": "env:SLACK_TOKEN"}, "slack")])
def test_notification_channel_kind_from_config(monitoring, channel_type):
    run = run_stack(variant("dev", monitoring=monitoring))
    assert run.one("gcp:monitoring/notificationChannel:NotificationChannel").state["type"] == channel_type


def test_every_resource_is_parented_to_a_component(cloud_stack):
    _, run = cloud_stack
    components = {r.urn for r in run.resources if not r.custom}
    top_level = {r.name for r in run.resources if r.parent not in components}
    assert top_level <= {"gcp", "net", "db", "cache", "app-key", "app", "monitoring", "app-secret-key"}


def test_stack_outputs_are_what_fab_reads(cloud_stack):
    outputs = cloud_stack[1].outputs
    assert outputs["service_url"] == "https://sample-mock-ew.a.run.app"
    assert outputs["database_connection_name"] == f"{outputs['project']}:europe-west1:db-instance"
    assert outputs["redis_host"] == "10.30.0.4" and outputs["target"] == "cloudrun"


def test_local_stack_provisions_this_machine_over_ssh_with_the_given_script():
    run = shipped("local")
    command = run.one("command:remote:Command").state
    assert command["stdin"] == SCRIPT and command["create"] == "bash -s"
    assert (command["connection"]["host"], command["connection"]["port"]) == ("127.0.0.1", 2222)
    assert not [r for r in run.resources if r.type.startswith("gcp:")]
    assert run.outputs["host_address"] == "127.0.0.1"


def test_changed_script_reprovisions_an_existing_host():
    first, second = (run_stack(variant("local"), script=s).one("command:remote:Command") for s in ("a", "b"))
    assert first.state["triggers"] != second.state["triggers"]


def test_vps_stack_can_create_a_debian_vm_running_the_same_script():
    stack = variant("local", target="vps", gcp={"create_vm": True, "project": "shipshape-vps",
                                                "ssh_allow": ["203.0.113.4/32"]})
    run = run_stack(stack)
    vm = run.one("gcp:compute/instance:Instance").state
    assert vm["metadata"]["startup-script"] == SCRIPT
    assert vm["bootDisk"]["initializeParams"]["image"].startswith("debian-cloud/debian-")
    firewalls = {r.name: r.state for r in run.of_type("gcp:compute/firewall:Firewall")}
    assert firewalls["host-ssh"]["sourceRanges"] == ["203.0.113.4/32"]
    assert firewalls["host-ssh"]["allows"] == [{"protocol": "tcp", "ports": ["22"]}]
    assert firewalls["host-web"]["allows"] == [{"protocol": "tcp", "ports": ["80", "443"]}]
    assert vm["networkInterfaces"][0]["accessConfigs"][0]["natIp"] == "203.0.113.10"
    assert run.outputs["host_address"] == "203.0.113.10"
    assert not run.of_type("command:remote:Command")


def test_vps_without_allow_list_opens_no_ssh():
    run = run_stack(variant("local", target="vps", gcp={"create_vm": True}))
    assert [r.name for r in run.of_type("gcp:compute/firewall:Firewall")] == ["host-web"]


def test_pulumi_up_after_a_fab_release_leaves_it_alone(cloud_stack):
    """Every service field a Cloud Run release writes is one Pulumi ignores: `pulumi up` keeps the release."""
    from shipshape.targets.cloudrun_state import PULUMI_FIELDS_FAB_WRITES

    ignored = set(cloud_stack[1].one(SERVICE).ignore_changes)
    assert set(PULUMI_FIELDS_FAB_WRITES) <= ignored, set(PULUMI_FIELDS_FAB_WRITES) - ignored
    assert "template.template.containers[0].image" in cloud_stack[1].one(JOB).ignore_changes  # fab migrate's image
