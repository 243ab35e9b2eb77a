"""App on the host: processes, ports, nginx (testinfra over SSH; facts from one round trip)."""
from __future__ import annotations

from shipshape.facts import is_loopback, slot_ports

ORDER = 3
AREA = "App processes and nginx"


def _serving(facts) -> dict[str, dict]:
    serving = facts.serving_slots()
    assert serving, f"no serving slot in slots.json ({facts['slots_error'] or facts.slots})"
    return serving


def test_app_processes_online(facts, stack, check):
    """App processes of the serving slots are online"""
    serving = _serving(facts)
    names = [f"{stack.app.name}-{slot}" for slot in serving]
    check.target(f"{stack.runtime.value}: {', '.join(names)}")
    if stack.runtime.value == "docker":
        states = {c["Names"]: c["State"] for c in facts.containers()}
        down = [n for n in names if states.get(n) != "running"]
    else:
        processes = facts.pm2_processes()
        assert processes, f"no PM2 process list: {facts['processes']['output'][-300:]}"
        down = [n for n in names if (processes.get(n) or {}).get("status") != "online"]
        states = {n: (processes.get(n) or {}).get("status", "absent") for n in names}
    assert not down, f"not online: {', '.join(f'{n} ({states.get(n)})' for n in down)}"
    check.detail(", ".join(f"{n} online" for n in names))


def test_serving_port_loopback_only(facts, check):
    """Serving slots' ports listen, and only on loopback"""
    ports = {slot: state["port"] for slot, state in _serving(facts).items()}
    check.target(", ".join(f"slot {s} :{p}" for s, p in ports.items()))
    for slot, port in ports.items():
        addresses = facts.listening(port)
        assert addresses, f"nothing listens on port {port} (slot {slot})"
        public = [a for a in addresses if not is_loopback(a)]
        assert not public, f"port {port} (slot {slot}) listens on {', '.join(public)}"
    check.detail("; ".join(f":{p} on {', '.join(facts.listening(p))}" for p in ports.values()))


def test_nginx_config_valid(facts, layout, check):
    """nginx -t accepts the live configuration"""
    check.target(f"nginx -t -c {layout.nginx_conf}")
    result = facts["nginx_test"]
    assert result["rc"] == 0, result["output"][-400:]
    check.detail("syntax ok, test successful")


def test_nginx_weights_match_state(facts, stack, layout, check):
    """nginx upstream weights are those state/slots.json (and `fab status`) report"""
    check.target(layout.nginx_conf)
    live = facts.nginx_weights(slot_ports(stack))
    assert live is not None, f"no nginx config at {layout.nginx_conf}"
    state = facts.state_weights
    assert state, f"no weights in slots.json ({facts['slots_error'] or facts.slots})"
    assert live == state, f"nginx serves {live}, slots.json says {state}"
    check.detail(" ".join(f"{slot}={weight}" for slot, weight in sorted(live.items())))
