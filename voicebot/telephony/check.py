"""`voicebot check`'s telephony warnings: a carrier configured to receive calls whose requests
would not be verified, because no webhook secret is set; and a TCP door (AudioSocket, which has
no authentication) listening beyond this machine.

Each `telephony.<name>` section is a carrier expected to receive calls. Its phone door is then
*auth* (a `security.auth` credential on every webhook: workable, but the carrier's own
signature is the stronger check), *open* (anyone can place calls) or *closed* (no calls at all);
each is worth a warning naming the key to set. No I/O, no aiohttp: the CLI prints what this says.
"""

from __future__ import annotations

from typing import Any

from .peers import is_loopback


def secret_warnings(cfg: Any, transports: dict[str, Any]) -> list[str]:
    """One `file:line: warning: …` per configured carrier with no webhook secret."""
    warnings = []
    auth_on = cfg.security.auth.mode != "none"
    for name, options in sorted((cfg.telephony or {}).items()):
        cls = transports.get(name)
        if cls is None or cls.authenticate(options, "", {}) is not None:
            continue  # unknown (an error already), or signed
        empty = [k for k in getattr(cls, "secret_keys", ()) if not getattr(options, k, "")]
        keys = [f"telephony.{name}.{k}" for k in empty]
        if keys:
            unset = f"{' and '.join(keys)} {'is' if len(keys) == 1 else 'are'} not set"
        else:
            unset = "its signature check is off (validate_signature: false)"
        if auth_on:
            effect = "each webhook must carry a security.auth credential instead"
        elif getattr(options, "allow_unsigned", False):
            effect = "allow_unsigned is true, so ANYONE can place calls through it"
        else:
            effect = "its phone routes refuse every call until one is set"
        line = cfg.line_of(f"telephony.{name}")
        where = f"{cfg.source}:{line}" if line else cfg.source
        warnings.append(
            f"{where}: warning: telephony.{name} receives calls but {unset}: its webhooks "
            f"are not verified, and {effect}"
        )
    return warnings


def tcp_door_warnings(cfg: Any, tcp_carriers: dict[str, Any]) -> list[str]:
    """One warning per enabled TCP door on a non-loopback host: it has no authentication, so
    the network (and `allow_from`) is all that keeps strangers from placing calls."""
    warnings = []
    for name in sorted(tcp_carriers):
        options = (cfg.telephony or {}).get(name)
        if not getattr(options, "enabled", False) or is_loopback(options.host):
            continue
        allow = getattr(options, "allow_from", None) or []
        if allow:
            listed = ", ".join(allow[:3]) + (", …" if len(allow) > 3 else "")
            who = f"only peers in allow_from ({listed}) are admitted"
        else:
            who = (
                f"ANYONE who reaches port {options.port} can place calls: set allow_from to "
                "your PBX's addresses"
            )
        line = cfg.line_of(f"telephony.{name}.host") or cfg.line_of(f"telephony.{name}")
        where = f"{cfg.source}:{line}" if line else cfg.source
        warnings.append(
            f"{where}: warning: telephony.{name} listens on {options.host}, beyond this machine, "
            f"and has no authentication; {who}, and keep the port behind a firewall"
        )
    return warnings
