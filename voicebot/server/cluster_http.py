"""The fleet's HTTP face: `/calls?scope=cluster`, hang-up and transfer of a call wherever it runs,
the readiness probe and the pre-stop drain an orchestrator uses (docs/deployment.md)."""

from __future__ import annotations

import ipaddress
from typing import Any

from aiohttp import web

from ..cluster.state import ClusterUnavailable
from .appkeys import CLUSTER, RUNTIME, SUBJECT
from .rest import RestError, bounded_str, json_object

FORWARDED = ("X-Forwarded-For", "Forwarded", "X-Real-IP")


def add_routes(app: web.Application) -> None:
    app.router.add_delete("/api/v1/calls/{call_id}", hang_up)
    app.router.add_post("/api/v1/calls/{call_id}/transfer", transfer)
    app.router.add_get("/ready", ready)
    app.router.add_post("/drain", drain)


async def fleet_calls(request: web.Request) -> web.Response:
    runtime = request.app[RUNTIME]
    calls = await runtime.cluster.fleet_calls()
    health = runtime.cluster.health()
    return web.json_response(
        {
            "scope": "cluster" if health.get("redis", "up") == "up" else "instance",
            "instance": runtime.cluster.instance_id,
            "active_calls": len(calls),
            "calls": calls,
        }
    )


async def _command(request: web.Request, op: str, **args: Any) -> web.Response:
    runtime = request.app[RUNTIME]
    call_id = request.match_info["call_id"]
    subject = request.get(SUBJECT)
    if subject is not None:
        args["subject"] = subject  # another subject's call is as unknown as none
    try:
        result = await runtime.cluster.command(call_id, op, **args)
    except TimeoutError:
        raise RestError(504, "instance_timeout", "the call's instance did not answer") from None
    except ClusterUnavailable:  # Redis lost: the caller may retry
        raise RestError(503, "cluster_unavailable", "the fleet cannot be reached") from None
    if result is None:
        raise RestError(404, "not_found", "no such call")
    if not result.get("ok"):
        raise RestError(409, f"{op}_failed", result.get("error") or f"the call could not {op}")
    body = {"call_id": call_id, "instance": result.get("instance")}
    return web.json_response({**body, op: "requested" if op == "hangup" else "done"})


async def hang_up(request: web.Request) -> web.Response:
    """End a call, on whichever instance runs it (through pub/sub when it is not this one)."""
    return await _command(request, "hangup")


async def transfer(request: web.Request) -> web.Response:
    """Transfer a phone call to `target` (e.g. `+15550100`), wherever it runs."""
    body = await json_object(request, max_bytes=4096)
    target = bounded_str(body, "target", 256)
    if not target:
        raise RestError(400, "invalid_target", "`target` must be a non-empty string")
    return await _command(request, "transfer", target=target)


async def ready(request: web.Request) -> web.Response:
    """Readiness: 503 while draining, so a load balancer sends new calls elsewhere. Under
    `run --workers N` it is the whole server's: ready while any worker takes calls and none was
    told to drain (a worker restarting leaves the others taking calls)."""
    health = request.app[RUNTIME].health()
    cluster = request.app.get(CLUSTER)
    if cluster is not None:
        health = await cluster.health(health)
    taking = [p for p in health.get("processes", [health]) if p.get("status") == "healthy"]
    ok = health["status"] != "draining" and bool(taking)
    return web.json_response(health, status=200 if ok else 503)


def _from_this_host(request: web.Request) -> bool:
    if any(h in request.headers for h in FORWARDED):
        return False  # relayed by a proxy: someone else's request
    try:
        return ipaddress.ip_address(request.remote or "").is_loopback
    except ValueError:
        return False


async def drain(request: web.Request) -> web.Response:
    """Stop taking calls (the pre-stop hook's first step); calls in progress go on. Accepted
    from this host only: any process that can reach loopback here could stop it anyway."""
    if not _from_this_host(request):
        raise RestError(403, "forbidden", "drain is accepted from this host only")
    cluster = request.app.get(CLUSTER)  # `run --workers N`: every worker stops
    if cluster is not None:
        return web.json_response(await cluster.drain())
    runtime = request.app[RUNTIME]
    runtime.accepting = False
    return web.json_response({"status": "draining", "active_calls": len(runtime.calls)})
