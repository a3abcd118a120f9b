"""Transfer and hang-up through Plivo's Call API, with the official `plivo` SDK.

- hang up: `client.calls.hangup(uuid)` → `DELETE /v1/Account/{auth_id}/Call/{call_uuid}/`;
- transfer: `client.calls.transfer(uuid, legs="aleg", aleg_url=…, aleg_method="POST")` →
  `POST /v1/Account/{auth_id}/Call/{call_uuid}/`, where `aleg_url` is our `/plivo/transfer?to=…`,
  which answers `<Dial>`.

The SDK is synchronous (`requests`), so every call runs on a small executor of our own: a few
threads (a slow Plivo never takes the default executor's threads from the rest of the process),
a bound on requests in flight (refused beyond it, not queued without limit), and a deadline on
each await. Each thread has its own `RestClient`, because a client is not thread-safe: it
rewrites its `base_uri` and a retry counter on every voice request.

The SDK always talks to `https://api.plivo.com` (its voice requests reset `base_uri` to that
constant, `plivo/rest/client.py`), so what an operator can configure is how it gets there: its
public `proxies` argument (a `requests` proxies dict; the SDK passes it to every send and does
not read `HTTPS_PROXY` itself) and, for a TLS-inspecting proxy, the CA bundle its `requests`
session verifies with (`Session.verify`). The tests use exactly these to reach a loopback fake:
an HTTP CONNECT proxy in front of an HTTPS server with a test CA's certificate for
api.plivo.com.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from urllib.parse import urlencode

from voicebot.telephony.carrier import Start, TelephonyError

from .._carrier_kit import check_target

log = logging.getLogger(__name__)

WORKERS = 4
MAX_IN_FLIGHT = 32


class PlivoControl:
    def __init__(
        self,
        auth_id: str,
        auth_token: str,
        transfer_url: str,
        caller_id: str = "",
        proxy: str = "",
        ca_bundle: str = "",
        timeout_s: float = 10.0,
    ) -> None:
        self.auth_id = auth_id
        self._auth_token = auth_token
        self.transfer_url = transfer_url
        self.caller_id = caller_id
        self._proxies = {"http": proxy, "https": proxy} if proxy else None
        self._ca_bundle = ca_bundle
        self.timeout_s = timeout_s
        self._executor = ThreadPoolExecutor(WORKERS, thread_name_prefix="plivo-api")
        self._local = threading.local()
        self._clients: list[Any] = []
        self._in_flight = 0

    def _client(self) -> Any:
        """This worker thread's own client (runs in the thread)."""
        client = getattr(self._local, "client", None)
        if client is None:
            import plivo

            client = plivo.RestClient(
                self.auth_id, self._auth_token, proxies=self._proxies, timeout=self.timeout_s
            )
            if self._ca_bundle:
                client.session.verify = self._ca_bundle
            self._local.client = client
            self._clients.append(client)
        return client

    async def _run(self, what: str, start: Start, op: Callable[[Any, str], Any]) -> None:
        from plivo import exceptions as px
        from requests import RequestException

        if not start.call_id:
            raise TelephonyError(f"cannot {what}: the Plivo stream did not say which call it is")
        if self._in_flight >= MAX_IN_FLIGHT:
            raise TelephonyError(
                f"cannot {what} Plivo call {start.call_id}: {MAX_IN_FLIGHT} Call API requests "
                "are already in flight"
            )
        self._in_flight += 1
        future = asyncio.get_running_loop().run_in_executor(
            self._executor, lambda: op(self._client(), start.call_id)
        )
        future.add_done_callback(self._done)  # counted until the thread is free, not the await
        try:
            # the SDK retries a 5xx twice, each try bounded by `timeout_s`
            await asyncio.wait_for(asyncio.shield(future), 3 * self.timeout_s + 1)
        except TimeoutError:
            raise TelephonyError(
                f"Plivo's Call API did not answer within {3 * self.timeout_s + 1:g} s "
                f"({what} call {start.call_id})"
            ) from None
        except px.AuthenticationError as exc:
            raise TelephonyError(
                f"Plivo refused the credentials (telephony.plivo.auth_id/auth_token): {exc}"
            ) from exc
        except px.ResourceNotFoundError as exc:
            raise _NotFound(f"Plivo has no live call {start.call_id}: {exc}") from exc
        except px.PlivoRestError as exc:  # validation, forbidden, server errors
            raise TelephonyError(f"Plivo refused to {what} call {start.call_id}: {exc}") from exc
        except (RequestException, OSError) as exc:  # connection, proxy, TLS, a bad ca_bundle
            raise TelephonyError(f"Plivo's Call API unreachable: {exc}") from exc

    def _done(self, _future: Any) -> None:
        self._in_flight -= 1

    async def transfer(self, start: Start, target: str) -> None:
        check_target(target, "Plivo")
        if not self.transfer_url:
            raise TelephonyError("telephony.plivo.transfer_url is empty")
        query = {"to": target, **({"from": self.caller_id} if self.caller_id else {})}
        url = f"{self.transfer_url}?{urlencode(query)}"
        await self._run(
            "transfer",
            start,
            lambda client, uuid: client.calls.transfer(
                uuid, legs="aleg", aleg_url=url, aleg_method="POST"
            ),
        )
        log.info("Plivo call %s transferred to %s", start.call_id, target)

    async def hangup(self, start: Start) -> None:
        try:
            await self._run("hang up", start, lambda client, uuid: client.calls.hangup(uuid))
        except _NotFound:
            log.info("Plivo call %s had already ended", start.call_id)

    async def aclose(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)
        for client in self._clients:
            client.session.close()
        self._clients.clear()


class _NotFound(TelephonyError):
    """The call is not live at Plivo (it ended): for a hang-up, nothing to do."""
