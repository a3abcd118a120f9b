"""The process-wide runtime: config, plugins, one started instance of each provider, the
inference pool, and the registry of live calls. Everything per call lives in `Call`."""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections import deque
from collections.abc import Callable, Collection
from typing import Any

from . import __version__
from .audio import webm
from .audio.types import AudioFormat
from .call import Call, CallIO
from .cluster import make_cluster
from .config import CONFIG_ROLES, Config, validate_providers
from .dialogue import Dialogue, DialogueContext
from .metrics import Metrics
from .plugins import PluginManager, make_plugin_manager
from .protocol import events
from .providers import Provider, ProviderError
from .providers.deadlines import BoundedLLM, Deadline
from .providers.tts_cache import CachedTTS
from .providers.workers import WorkerPool
from .stats import percentile

log = logging.getLogger("voicebot")

DEFAULT_PROVIDERS = {"vad": "webrtc", "stt": "pocketsphinx", "tts": "espeak"}
KEYWORD_INTENT = "keyword"  # the registered name of the model-free intent classifier


class CapacityError(Exception):
    """The process is at `security.limits.max_calls`."""


class LoopLagMonitor:
    """Measures how late the event loop wakes up: the figure that shows a stalled loop."""

    def __init__(
        self, interval: float = 0.05, observe: Callable[[float], None] | None = None
    ) -> None:
        self.interval = interval
        self.samples: deque[float] = deque(maxlen=1200)
        self._observe = observe  # each lag in seconds, for the /metrics histogram
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.ensure_future(self._run())

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            before = loop.time()
            await asyncio.sleep(self.interval)
            lag = max(0.0, loop.time() - before - self.interval)
            self.samples.append(lag * 1000)
            if self._observe is not None:
                self._observe(lag)

    def percentile(self, p: float) -> float:
        return round(percentile(self.samples, p), 2)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)


class Runtime:
    def __init__(self, config: Config, pm: PluginManager | None = None) -> None:
        self.config = config
        self.pm = pm or make_plugin_manager()
        self.pm.load_modules(config.plugins)
        self.registry = self.pm.registry
        validate_providers(config, self.registry)
        self.metrics = Metrics(self._tracer())
        self.pm.register(self.metrics, "voicebot.metrics")
        self.workers = WorkerPool(observe_wait=self.metrics.queue_wait.observe)
        self.providers: dict[str, Any] = {}
        #: per `providers` role: how long one step through it may take (see
        #: voicebot.providers.deadlines)
        self.deadlines: dict[str, Deadline] = {}
        self.calls: dict[str, Call] = {}
        self.no_calls = asyncio.Event()  # set whenever the last call has ended
        self.no_calls.set()
        self.started_at = time.time()
        self.lag = LoopLagMonitor(observe=self._tick)
        self.accepting = True
        self.calls_total = 0
        self._dialogue_factory: Any = None
        self.flow_library: Any = None  # the FlowLibrary, in dialogue.mode flows
        #: the intent classifier dialogues get when none is configured (see start_providers)
        self.fallback_intent: Provider | None = None
        #: what the fleet shares (`cluster:`); in-process when no Redis is configured
        self.cluster = make_cluster(self)
        self.pm.register(self.cluster, "voicebot.cluster")
        self.metrics.add_source(self.cluster.metric_families)
        self._slots: dict[str, str] = {}  # call id → its fleet slot

    @property
    def hook(self) -> Any:
        return self.pm.hook

    def _tracer(self) -> Any:
        if not self.config.server.otel_traces:
            return None
        from .tracing import make_tracer

        return make_tracer()

    def _tick(self, lag_s: float) -> None:
        """Every lag sample (50 ms) also refreshes the queue gauge: no bookkeeping per job."""
        self.metrics.loop_lag.observe(lag_s)
        self.metrics.inference_queued.set(self.workers.queued)

    # ----------------------------------------------------------------------------- lifecycle

    async def start(self) -> None:
        await self.cluster.start()  # first: no Redis, no minutes of model loading
        await self.start_providers()
        self._dialogue_factory = self._make_dialogue_factory()
        await asyncio.to_thread(webm.preload)
        self.lag.start()

    async def start_providers(self, roles: Collection[str] | None = None) -> None:
        """Start the configured providers of `roles` (all, with the defaults, when None).

        The one way providers are built, for `voicebot run` and the flows CLI alike: fallback
        chains, the shared worker pool, per-role deadlines and the TTS cache. Without a configured
        `intent`, the `keyword` classifier (looked up by its registered name) stands in, so flows
        with intents work with no model at all.
        """
        from .config import ProviderSpec

        if roles is None:
            for role, name in DEFAULT_PROVIDERS.items():
                if role not in self.config.chains:
                    cls = self.registry.provider(role, name)
                    self.config.chains[role] = [ProviderSpec(use=name, options=cls.Options())]
        for role, chain in self.config.chains.items():
            if roles is not None and role not in roles:
                continue
            kind = CONFIG_ROLES[role]
            started = [await self._start_provider(kind, spec) for spec in chain]
            self.providers[role] = started[0] if len(started) == 1 else self._chain(kind, started)
            limits = getattr(self.config.pipeline.deadlines, kind, None)
            if limits is not None:
                self.deadlines[role] = Deadline.of(limits, members=len(started))
        if "tts" in self.providers and self.config.pipeline.tts_cache_mb > 0:
            self.providers["tts"] = CachedTTS(
                self.providers["tts"], self.config.pipeline.tts_cache_mb * 1024 * 1024
            )
        if "intent" not in self.providers and (roles is None or "intent" in roles):
            cls = self.registry.provider("intent", KEYWORD_INTENT)
            spec = ProviderSpec(use=KEYWORD_INTENT, options=cls.Options())
            self.fallback_intent = await self._start_provider("intent", spec)

    async def _start_provider(self, kind: str, spec: Any) -> Provider:
        cls = self.registry.provider(kind, spec.use)
        provider: Provider = cls(spec.options, workers=self.workers)
        try:
            await provider.start()
        except ImportError as exc:  # a plugin that did not declare `requires`
            raise ProviderError(
                f"{spec.use}: cannot start, module {exc.name or exc} is not installed: "
                f"run {cls.install or f'pip install {exc.name}'}",
                provider=spec.use,
            ) from exc
        return provider

    async def stop(self) -> None:
        await self.lag.stop()
        await self.cluster.stop()
        extra = [self.fallback_intent] if self.fallback_intent is not None else []
        for provider in [*self.providers.values(), *extra]:
            try:
                await provider.aclose()
            except Exception:  # shutting down: log and go on closing the rest
                log.exception("closing provider %s failed", getattr(provider, "name", provider))
        self.workers.shutdown()

    async def drain(self, grace_s: float) -> None:
        """Stop accepting calls, let active ones finish for `grace_s`, then end them."""
        self.accepting = False
        try:
            await asyncio.wait_for(self.no_calls.wait(), grace_s)
        except TimeoutError:
            pass
        for call in list(self.calls.values()):
            await call.io.send_event(events.Status("ended", call.id, reason="server shutdown"))
            await call.io.close(1001, "server shutting down")
            call.hangup("server shutdown")

    # --------------------------------------------------------------------------------- calls

    def new_call(
        self,
        *,
        transport: str,
        io: CallIO,
        audio_format: AudioFormat,
        variables: dict[str, Any] | None = None,
        session_id: str | None = None,
        flow: str | None = None,
        resume: dict[str, Any] | None = None,
        call_id: str | None = None,
    ) -> Call:
        if not self.accepting:
            raise self._refused(transport, "server is shutting down")
        if len(self.calls) >= self.config.security.limits.max_calls:
            raise self._refused(transport, f"at capacity ({len(self.calls)} calls)")
        call = Call(
            self,
            io,
            transport=transport,
            audio_format=audio_format,
            variables=variables,
            session_id=session_id,
            flow=flow,
            resume=resume,
            call_id=call_id,
        )
        self.calls[call.id] = call
        self.no_calls.clear()
        self.calls_total += 1
        self.metrics.active_calls.set(len(self.calls))
        return call

    def _refused(self, transport: str, why: str) -> CapacityError:
        self.metrics.rejected(transport)
        return CapacityError(why)

    async def open_call(self, *, slot: str | None = None, **kwargs: Any) -> Call:
        """`new_call` once the fleet admits it (`cluster:`); its slot is held until `run_call`
        ends. `slot` names a slot taken earlier (a phone call's, by the webhook that answered)."""
        if not self.accepting:
            raise self._refused(kwargs["transport"], "server is shutting down")
        if len(self.calls) >= self.config.security.limits.max_calls:
            raise self._refused(kwargs["transport"], f"at capacity ({len(self.calls)} calls)")
        slot = slot or uuid.uuid4().hex
        why = await self.cluster.admit(slot, (kwargs.get("variables") or {}).get("subject"))
        if why is not None:
            raise self._refused(kwargs["transport"], why)
        try:
            call = self.new_call(**kwargs)
        except BaseException:
            await self.cluster.release(slot)
            raise
        self._slots[call.id] = slot
        return call

    async def run_call(self, call: Call) -> None:
        try:
            await call.run()
        finally:
            self.calls.pop(call.id, None)
            self.metrics.active_calls.set(len(self.calls))
            if not self.calls:
                self.no_calls.set()
            slot = self._slots.pop(call.id, None)
            if slot is not None:
                await self.cluster.release(slot)

    def _chain(self, role: str, providers: list[Provider]) -> Any:
        from .providers.fallback import build_chain

        fb = self.config.pipeline.fallback
        # each member gets at most its role's first-result deadline before the next one
        budget_ms = getattr(self.config.pipeline.deadlines, role).first_result_ms
        if fb.first_result_ms:
            budget_ms = min(budget_ms, fb.first_result_ms)
        chain = build_chain(role, providers, budget=budget_ms / 1000, cooldown=fb.cooldown_s)
        chain.on_fallback = self.metrics.fell_back
        return chain

    def new_dialogue(
        self,
        call_id: str,
        variables: dict[str, Any],
        report_usage: Any = None,
        *,
        flow: str | None = None,
        snapshot: dict[str, Any] | None = None,
    ) -> Dialogue:
        """A dialogue for one conversation with the process's shared providers: fresh, starting
        in `flow`, or resumed from a `Dialogue.snapshot()`."""
        ctx = self.dialogue_context(call_id, variables, report_usage)
        return self._dialogue_factory(ctx, flow, snapshot)

    def dialogue_context(
        self, call_id: str, variables: dict[str, Any], report_usage: Any = None
    ) -> DialogueContext:
        """What a dialogue may use of the process: the started providers (the LLM held to its
        deadlines), plugin actions and slot types. The flows CLI builds its dialogues on it too."""
        llm = self.providers.get("llm")
        intent = self.providers.get("intent")
        ctx = DialogueContext(
            call_id=call_id,
            variables=variables,
            intent=intent if intent is not None else self.fallback_intent,
            llm=BoundedLLM(llm, self.deadlines["llm"]) if llm is not None else None,
            actions=self.registry.actions,
            slot_types=self.registry.slot_types,
        )
        if report_usage is not None:
            ctx.report_usage = report_usage
        return ctx

    def _make_dialogue_factory(self) -> Any:
        mode = self.config.dialogue.mode
        if mode == "flows":
            from .flows import FlowLibrary

            lib = FlowLibrary(
                self.config.resolve(self.config.flows.dir),
                start=self.config.flows.start,
                timezone=self.config.flows.timezone,
                registry=self.registry,
            )
            self.flow_library = lib

            def flows(ctx: DialogueContext, flow: str | None, snapshot: dict | None) -> Dialogue:
                if snapshot:
                    return lib.restore_dialogue(ctx, snapshot)
                return lib.new_dialogue(ctx, flow=flow)

            return flows
        from .dialogue.simple import SimpleDialogue

        def simple(ctx: DialogueContext, flow: str | None, snapshot: dict | None) -> Dialogue:
            return SimpleDialogue(ctx, self.config.dialogue, mode, snapshot)

        return simple

    def knows_flow(self, name: str) -> bool:
        """Whether a call could start in flow `name` now (never, outside dialogue.mode flows)."""
        return self.flow_library is not None and name in self.flow_library.current().flows

    def record_error(self, code: str) -> None:
        self.metrics.provider_error(code)

    # -------------------------------------------------------------------------------- status

    def health(self) -> dict[str, Any]:
        return {
            "status": "healthy" if self.accepting else "draining",
            "version": __version__,
            "active_calls": len(self.calls),
            "uptime_seconds": round(time.time() - self.started_at, 1),
            "providers": {role: p.health() for role, p in self.providers.items()},
            "event_loop_lag_ms": {
                "p50": self.lag.percentile(0.5),
                "p99": self.lag.percentile(0.99),
            },
            "workers": self.workers.stats(),
            "cluster": self.cluster.health(),
        }
