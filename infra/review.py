"""Offline review of a stack: `python -m infra.review --stack prod`.

Runs the Pulumi program under mocks (no CLI, no cloud) and prints the resource tree with key settings,
policy findings, and an estimated monthly cost from the dated price table. Exit status: 0 clean,
1 policy violations, 2 invalid stack config (reported before any resource is declared).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pulumi
from rich.console import Console
from rich.table import Table
from rich.tree import Tree

from infra import cost, policies
from infra.mocks import ProgramRun, Registered, run_program
from infra.stack import ProgramInputs, declare, is_production
from shipshape.config import Stack, Target
from shipshape.stackfile import ConfigError, find_root, load_stack

class ProvisionError(Exception):
    """The shared provisioning script could not be built for this stack."""


PLACEHOLDER_SCRIPT = "#!/bin/bash\n# shipshape.provision is not available: placeholder for the review\n"


def offline_inputs(stack: Stack, root: Path) -> ProgramInputs:
    """Inputs for a run with no CLI: secret references stay references, images are built, not pushed."""
    script = None
    if stack.target is not Target.cloudrun:
        try:
            from shipshape.provision import provision_script
        except ImportError:
            script = PLACEHOLDER_SCRIPT
        else:
            try:
                script = provision_script(stack)
            except Exception as error:  # someone else's module: report it, do not hide it
                raise ProvisionError(f"shipshape.provision.provision_script({stack.name}) failed: "
                                     f"{type(error).__name__}: {error}") from error
    return ProgramInputs(root=root, resolve=lambda ref: pulumi.Output.secret(f"<{ref}>"),
                         provision_script=script, private_key="<ssh key>" if stack.host.key else None,
                         skip_push=True)


def run_stack(stack: Stack, root: Path) -> ProgramRun:
    inputs = offline_inputs(stack, root)
    return run_program(lambda: declare(stack, inputs), stack.name, gcp_project=stack.gcp.project)


def review(stack: Stack, root: Path) -> tuple[ProgramRun, list[policies.Finding], cost.CostReport]:
    run = run_stack(stack, root)
    report = cost.estimate(run)
    ctx = policies.Context(production=is_production(stack), public=stack.gcp.public,
                           monthly_cost=report.total)
    return run, policies.check(run, ctx), report


def _flag(value) -> str:
    return "yes" if value else "no"


def settings_of(r: Registered) -> str:
    """One line of the settings that matter for a resource type (empty when none do)."""
    s = r.state
    if r.type == policies.SQL:
        st = s.get("settings", {})
        backup = st.get("backupConfiguration", {})
        return (f"{s.get('databaseVersion')} {st.get('tier')} {st.get('availabilityType')} "
                f"public-ip={_flag(st.get('ipConfiguration', {}).get('ipv4Enabled'))} "
                f"backups={_flag(backup.get('enabled'))} pitr={_flag(backup.get('pointInTimeRecoveryEnabled'))} "
                f"deletion-protection={_flag(s.get('deletionProtection'))}")
    if r.type == policies.REDIS:
        return (f"{s.get('tier')} {s.get('memorySizeGb'):g} GB auth={_flag(s.get('authEnabled'))} "
                f"transit={s.get('transitEncryptionMode')}")
    if r.type in (policies.RUN_SERVICE, policies.RUN_JOB):
        template = s.get("template", {})
        scaling = template.get("scaling", {})
        envs = ", ".join(e["name"] + ("<-secret" if "valueSource" in e else "=literal") for e in policies._envs(r))
        text = f"env: {envs or '-'}"
        if r.type == policies.RUN_SERVICE:
            text = (f"instances {scaling.get('minInstanceCount', 0):g}-{scaling.get('maxInstanceCount', 0):g} "
                    f"egress={template.get('vpcAccess', {}).get('egress')} {text}")
        return text + (f"; ignores {', '.join(r.ignore_changes)}" if r.ignore_changes else "")
    if "role" in s:
        return f"{s.get('role')} -> {s.get('member') or s.get('members')}"
    if r.type == policies.FIREWALL:
        ports = [p for a in s.get("allows", []) for p in a.get("ports", [])]
        return f"tcp {','.join(ports)} from {','.join(s.get('sourceRanges', []))}"
    if r.type == "command:remote:Command":
        c = s.get("connection", {})
        return f"ssh {c.get('user')}@{c.get('host')}:{c.get('port', 22):g} runs the provisioning script " \
               f"(sha {str((s.get('triggers') or [''])[0])[:12]})"
    if r.type == "gcp:compute/instance:Instance":
        image = s.get("bootDisk", {}).get("initializeParams", {}).get("image")
        return f"{s.get('machineType')} {image} startup-script={_flag(s.get('metadata', {}).get('startup-script'))}"
    if r.type == "gcp:monitoring/alertPolicy:AlertPolicy":
        return s.get("displayName", "")
    return ""


def tree_of(run: ProgramRun, title: str) -> Tree:
    """Components with their children, each level sorted by name (registration order varies)."""
    children: dict[str, list[Registered]] = {}
    known = {r.urn for r in run.resources}
    for r in run.resources:
        children.setdefault(r.parent if r.parent in known else "", []).append(r)

    def grow(node: Tree, urn: str) -> None:
        for r in sorted(children.get(urn, []), key=lambda r: r.name):
            extra = settings_of(r)
            grow(node.add(f"[bold]{r.name}[/] [dim]{r.type}[/]" + (f"  {extra}" if extra else "")), r.urn)

    tree = Tree(title)
    grow(tree, "")
    return tree


def print_report(console: Console, stack: Stack, run: ProgramRun, findings, report: cost.CostReport) -> None:
    console.print(tree_of(run, f"stack [bold]{stack.name}[/] ({stack.target.value}, {len(run.resources)} resources)"))
    table = Table(title=f"Estimated monthly cost (prices {cost.describe_prices()['date']}, "
                        f"{cost.describe_prices()['basis']})")
    for column in ("resource", "type", "USD/month", "basis"):
        table.add_column(column, justify="right" if column == "USD/month" else "left")
    for line in sorted(report.lines, key=lambda line: (-line.monthly, line.resource)):
        table.add_row(line.resource, line.type.split(":")[-1], f"{line.monthly:,.2f}", line.basis)
    table.add_row("[bold]total[/]", "", f"[bold]{report.total:,.2f}[/]", "")
    console.print(table)
    if findings:
        console.print(f"[red]{len(findings)} policy violation(s):[/]")
        for finding in findings:
            console.print(f"  [red]✗[/] {finding}", markup=False, highlight=False)
    else:
        console.print(f"[green]policies: all {len(policies.RULES)} rules pass[/]")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m infra.review", description=__doc__.splitlines()[0])
    parser.add_argument("--stack", default="local", help="stack name: reads Pulumi.<stack>.yaml")
    parser.add_argument("--root", type=Path, default=None, help="project root (default: nearest Pulumi.yaml)")
    args = parser.parse_args(argv)
    root = (args.root or find_root()).resolve()
    console = Console(width=160)
    try:
        stack = load_stack(args.stack, root)
    except ConfigError as error:
        print(f"config error (no resource declared):\n{error}", file=sys.stderr)
        return 2
    try:
        run, findings, report = review(stack, root)
    except ProvisionError as error:
        print(f"review error (no resource declared): {error}", file=sys.stderr)
        return 2
    print_report(console, stack, run, findings, report)
    return 1 if findings else 0


if __name__ == "__main__":
    sys.exit(main())
