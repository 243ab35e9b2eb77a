"""Review policies: rules over what a stack declares (the engine's view), each finding naming the
resource and the rule. Any finding fails the review; the rules are the guard rails of BRIEF.md."""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Callable, Iterator

from infra.mocks import ProgramRun, Registered
from shipshape.gcp import INVOKER_ROLE, PUBLIC_MEMBERS

DEV_BUDGET = 500.0  # USD/month, for any stack that is not production
PRIMITIVE_ROLES = {"roles/owner", "roles/editor", "roles/viewer"}
WORLD = {"0.0.0.0/0", "::/0"}
SECRET_NAME = re.compile(r"PASSWORD|PASSWD|SECRET|TOKEN|KEY|CREDENTIAL|PRIVATE|AUTH")
URL_WITH_CREDENTIALS = re.compile(r"^[a-z][a-z0-9+.-]*://[^/@\s]*:[^/@\s]+@", re.I)

SQL = "gcp:sql/databaseInstance:DatabaseInstance"
REDIS = "gcp:redis/instance:Instance"
RUN_SERVICE = "gcp:cloudrunv2/service:Service"
RUN_JOB = "gcp:cloudrunv2/job:Job"
FIREWALL = "gcp:compute/firewall:Firewall"
INVOKER_TYPES = ("gcp:cloudrunv2/serviceIamMember:ServiceIamMember", "gcp:cloudrunv2/serviceIamBinding:ServiceIamBinding")


@dataclass(frozen=True)
class Context:
    production: bool
    public: bool
    monthly_cost: float = 0.0


@dataclass(frozen=True)
class Finding:
    rule: str
    resource: str
    message: str

    def __str__(self) -> str:
        return f"[{self.rule}] {self.resource}: {self.message}"


Rule = Callable[[ProgramRun, Context], Iterator[Finding]]
RULES: dict[str, Rule] = {}


def rule(rule_id: str):
    def register(fn: Rule) -> Rule:
        RULES[rule_id] = fn
        return fn
    return register


@rule("db-public-ip")
def _db_public_ip(run, ctx):
    for db in run.of_type(SQL):
        if db.state.get("settings", {}).get("ipConfiguration", {}).get("ipv4Enabled", True):
            yield Finding("db-public-ip", db.name, "Cloud SQL has a public IPv4 address; expected private IP only")


@rule("prod-deletion-protection")
def _deletion_protection(run, ctx):
    for db in run.of_type(SQL) if ctx.production else ():
        settings = db.state.get("settings", {})
        if not (db.state.get("deletionProtection") and settings.get("deletionProtectionEnabled")):
            yield Finding("prod-deletion-protection", db.name, "production database without deletion protection")


@rule("prod-backups")
def _backups(run, ctx):
    for db in run.of_type(SQL) if ctx.production else ():
        backup = db.state.get("settings", {}).get("backupConfiguration", {})
        if not (backup.get("enabled") and backup.get("pointInTimeRecoveryEnabled")):
            yield Finding("prod-backups", db.name,
                          "production database without automated backups and point-in-time recovery")


def _envs(resource: Registered) -> list[dict]:
    template = resource.state.get("template", {})
    if resource.type == RUN_JOB:
        template = template.get("template", {})
    return [env for c in template.get("containers", []) for env in c.get("envs", [])]


@rule("plaintext-secret-env")
def _plaintext_env(run, ctx):
    for resource in run.of_type(RUN_SERVICE) + run.of_type(RUN_JOB):
        for env in _envs(resource):
            name, value = env.get("name", ""), env.get("value")
            if value and (SECRET_NAME.search(name) or URL_WITH_CREDENTIALS.match(str(value))):
                yield Finding("plaintext-secret-env", resource.name,
                              f"env {name} holds a literal secret-looking value; expected a Secret Manager reference")


@rule("primitive-role")
def _primitive_role(run, ctx):
    for resource in run.resources:
        if resource.state.get("role") in PRIMITIVE_ROLES:
            yield Finding("primitive-role", resource.name,
                          f"{resource.state.get('member') or resource.state.get('members')} granted "
                          f"{resource.state['role']}; expected predefined least-privilege roles")


@rule("public-invoker")
def _public_invoker(run, ctx):
    for resource in (r for t in INVOKER_TYPES for r in run.of_type(t)) if not ctx.public else ():
        members = set(resource.state.get("members") or [resource.state.get("member")])
        if resource.state.get("role") == INVOKER_ROLE and members & PUBLIC_MEMBERS:
            yield Finding("public-invoker", resource.name, "allUsers may invoke a service the config says is not public")


def _opens_ssh(allow: dict) -> bool:
    if allow.get("protocol") not in ("tcp", "all"):
        return False
    ports = allow.get("ports") or []
    return not ports or any(p == "22" or (("-" in p) and int(p.split("-")[0]) <= 22 <= int(p.split("-")[1]))
                            for p in ports)


@rule("ssh-open-world")
def _ssh_world(run, ctx):
    for fw in run.of_type(FIREWALL):
        if fw.state.get("direction", "INGRESS") == "INGRESS" and set(fw.state.get("sourceRanges", [])) & WORLD \
                and any(_opens_ssh(a) for a in fw.state.get("allows", [])):
            yield Finding("ssh-open-world", fw.name, "SSH open to the whole internet; expected an allow-list")


@rule("redis-no-auth")
def _redis_auth(run, ctx):
    for redis in run.of_type(REDIS):
        if not redis.state.get("authEnabled"):
            yield Finding("redis-no-auth", redis.name, "Redis without AUTH")


@rule("dev-budget")
def _budget(run, ctx):
    if not ctx.production and ctx.monthly_cost > DEV_BUDGET:
        yield Finding("dev-budget", "stack",
                      f"estimated ${ctx.monthly_cost:,.2f}/month exceeds the ${DEV_BUDGET:,.0f} budget of a non-production stack")


def check(run: ProgramRun, ctx: Context) -> list[Finding]:
    """Every finding of every rule, in rule order."""
    return [finding for check_rule in RULES.values() for finding in check_rule(run, ctx)]
