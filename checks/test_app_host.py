"""App on the host: processes, ports, nginx (testinfra over SSH; facts from one round trip)."""
from __future__ import annotations

from shipshape.facts import is_loopback

ORDER = 3
AREA = "App processes and nginx"


def _serving(facts) -> dict[str, dict]:
    serving = facts.serving_slots()
    assert serving, f"no serving slot in slots.json ({facts['slots_error'] or facts.slots})"
    return serving


def test_app_processes_online(facts, stack, layout, check):
    """App processes of the serving slots are online"""
    serving = _serving(facts)
    check.target(f"{stack.runtime.value}: " + ", ".join(f"{stack.app.name}-{slot}" for slot in serving))
    states = facts.processes(stack, layout)
    assert states, f"no process list from {stack.runtime.value}: {facts.command('processes')['output'][-300:]}"
    down = [slot for slot in serving if not (states.get(slot) and states[slot].online)]
    assert not down, "not online: " + ", ".join(f"slot {s} ({'stopped' if s in states else 'absent'})" for s in down)
    check.detail(", ".join(f"{states[s].name} online (pid {states[s].pid}, {states[s].restarts} restarts)"
                           for s in serving))


def test_app_not_crash_looping(facts, stack, layout, check):
    """Serving processes restarted at most shipshape:checks.max_restarts times since they were started"""
    serving = _serving(facts)
    limit = stack.checks.max_restarts
    check.target(f"{stack.runtime.value} restart counts, limit {limit}")
    states = facts.processes(stack, layout)
    counts = {slot: states[slot].restarts for slot in serving if slot in states}
    looping = {slot: n for slot, n in counts.items() if n > limit}
    assert not looping, "restarting: " + ", ".join(f"{states[s].name} {n} times" for s, n in looping.items())
    check.detail(", ".join(f"{states[s].name}: {n}" for s, n in counts.items()) or "no serving process")


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
    live = facts.nginx_weights(stack)
    assert live, f"nginx is not running: {facts.command('weights')['output'][-200:]}"
    state = facts.state_weights
    assert state, f"no weights in slots.json ({facts['slots_error'] or facts.slots})"
    assert live == state, f"nginx serves {live}, slots.json says {state}"
    check.detail(" ".join(f"{slot}={weight}" for slot, weight in sorted(live.items())))
