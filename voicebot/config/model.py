"""The shape of config.yaml: one dataclass per section, with its defaults.

`options.build` validates user YAML against these classes; `loader` reads the file, interpolates
`${ENV}` and reports every problem at once with its file and line.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from ..cluster.config import ClusterConfig
from ..providers import ROLES
from ..providers.deadlines import DeadlinesConfig
from .browser import BrowserConfig

#: `providers:` keys, each with the registry role its providers come from. `partials` is a second,
#: fast streaming STT that runs beside a whole-utterance one (Whisper) for live transcripts and
#: word-confirmed barge-in.
CONFIG_ROLES: dict[str, str] = {**{role: role for role in ROLES}, "partials": "stt"}

# ------------------------------------------------------------------------------------- sections


@dataclass
class ServerConfig:
    host: str = "127.0.0.1"
    port: int = field(default=8080, metadata={"min": 0, "max": 65535})
    public_url: str = ""
    drain_grace_s: float = field(default=10.0, metadata={"min": 0})
    malloc_trim_s: float = field(default=60.0, metadata={"min": 0})
    otel_traces: bool = False


BACKCHANNELS = (
    "mm-hm", "mm-hmm", "mhm", "mm", "hmm", "uh-huh", "uh huh", "um-hum", "ah", "oh", "uh", "um",
    "yeah", "yes", "yep", "yup", "okay", "ok", "right", "sure", "alright", "all right", "i see",
    "got it", "cool", "great", "fine",
)  # fmt: skip


UNFINISHED_WORDS = (  # words a sentence hardly ends with; "in", "on", "that" often do
    "and", "or", "nor", "but", "because", "if", "unless", "although", "whereas", "until", "when",
    "than", "whether", "to", "for", "of", "with", "at", "from", "by", "about", "into", "onto",
    "upon", "between", "among", "during", "towards", "toward", "via", "such as",
    "the", "a", "an", "every", "my", "your", "our", "their", "his", "its",
    "um", "umm", "uhm", "uh", "uhh", "er", "erm", "hm", "very", "just",
    "gonna", "wanna", "gotta",
    "i", "he", "she", "we", "they", "i'd", "i'm", "i'll", "i've", "it's", "that's", "there's",
    "what's", "he's", "she's", "we're", "we'd", "we've", "we'll", "they're", "they'd", "they've",
    "they'll", "you're", "you'd", "you've", "you'll",
    "i'd like", "i want", "i need", "can you", "could you", "let me", "feels like", "looks like",
    "sounds like", "something like", "my name is", "name is", "number is", "address is",
    "email is", "code is",
)  # fmt: skip

#: First words of a clause that announces another ("unless…", "although…"): a transcript made of
#: one (4 words or more, no comma) is waited on for its main clause.
UNFINISHED_OPENERS = ("if", "unless", "although", "though", "whereas", "whenever", "while")


@dataclass
class EndOfTurnConfig:
    """The semantic end of a turn: a pause after an unfinished phrase is not the end."""

    #: After a transcript that ends mid-phrase ("…for", "um", "I'd like"), wait this long for the
    #: caller to go on before answering; what they add joins the same turn. 0: answer at once.
    unfinished_wait_ms: int = field(default=1500, metadata={"min": 0, "max": 10000})
    unfinished_words: list[str] = field(default_factory=lambda: list(UNFINISHED_WORDS))
    #: After a transcript that may go on but is often said whole (a lone "unless…" clause, a list
    #: of numbered items with no "and" yet), wait this long (at most `unfinished_wait_ms`).
    unsure_wait_ms: int = field(default=700, metadata={"min": 0, "max": 10000})
    unfinished_openers: list[str] = field(default_factory=lambda: list(UNFINISHED_OPENERS))


@dataclass
class BargeInConfig:
    enabled: bool = True
    min_speech_ms: int = field(default=200, metadata={"min": 0, "max": 5000})
    #: Interrupt only once the `partials` recogniser has heard a word (needs providers.partials).
    needs_words: bool = False
    #: Speech over the bot shorter than this does not cut it off at once: it is transcribed,
    #: and a backchannel or no words leaves the bot talking. 0: interrupt at `min_speech_ms`.
    backchannel_ms: int = field(default=600, metadata={"min": 0, "max": 5000})
    #: What counts as a backchannel (whole phrases; at most 4 words of them in a row).
    backchannels: list[str] = field(default_factory=lambda: list(BACKCHANNELS))
    #: A stop caused by sound that turned out to hold no words (or only a backchannel): the bot
    #: says the cut-off sentence again and goes on, if the transcript came within this. 0: off.
    resume_timeout_ms: int = field(default=3000, metadata={"min": 0, "max": 60000})


@dataclass
class FallbackConfig:
    """How provider chains (`stt: [deepgram, whisper]`) hand over."""

    first_result_ms: int = field(default=3000, metadata={"min": 0})  # 0: the role's deadline
    cooldown_s: float = field(default=30.0, metadata={"min": 0})


@dataclass
class PipelineConfig:
    sample_rate: int = field(default=16000, metadata={"min": 8000, "max": 48000})
    frame_ms: Literal[10, 20, 30] = 20
    vad_hangover_ms: int = field(default=300, metadata={"min": 0, "max": 5000})
    min_speech_ms: int = field(default=120, metadata={"min": 0, "max": 5000})
    max_utterance_ms: int = field(default=30000, metadata={"min": 500})
    preroll_ms: int = field(default=200, metadata={"min": 0, "max": 2000})
    playback_lead_ms: int = field(default=120, metadata={"min": 20, "max": 2000})
    #: Bot audio per message on a line that echoes marks (phone media streams): fewer, larger
    #: messages cost less CPU; marks and `clear` keep "heard" and barge-in exact.
    phone_message_ms: int = field(default=100, metadata={"min": 10, "max": 1000})
    #: answering-machine detection (call.answered_by, call.beep): outbound calls, all, or none
    amd: Literal["outbound", "always", "off"] = "outbound"
    #: Audio of fixed prompts (say with no variables) kept per process; 0 turns the cache off.
    tts_cache_mb: int = field(default=32, metadata={"min": 0, "max": 4096})
    barge_in: BargeInConfig = field(default_factory=BargeInConfig)
    end_of_turn: EndOfTurnConfig = field(default_factory=EndOfTurnConfig)
    fallback: FallbackConfig = field(default_factory=FallbackConfig)
    deadlines: DeadlinesConfig = field(default_factory=DeadlinesConfig)
    apology: str = "Sorry, I'm having trouble right now. Please try again in a moment."
    #: Said before hanging up when a flow's `transfer` cannot be made (always, on /ws/voice).
    transfer_failed: str = (
        "Sorry, I can't connect you to a person right now. Please call back later."
    )


@dataclass
class DialogueConfig:
    """Which dialogue drives calls: YAML `flows`, a free `llm` conversation, or `echo` (tests)."""

    mode: Literal["flows", "llm", "echo"] = "flows"
    greeting: str = "Hello! How can I help you?"
    system_prompt: str = "You are a helpful voice assistant. Answer in one or two short sentences."
    noinput_timeout_ms: int = field(default=8000, metadata={"min": 0})
    #: The conversation sent to the LLM (`mode: llm`) is trimmed to about this many tokens.
    context_tokens: int = field(default=3000, metadata={"min": 100})


@dataclass
class FlowsConfig:
    dir: str = "flows"
    start: str = "main"
    timezone: str = "UTC"


@dataclass
class LimitsConfig:
    max_calls: int = field(default=500, metadata={"min": 1})
    max_frame_bytes: int = field(default=256 * 1024, metadata={"min": 1024})
    max_text_chars: int = field(default=2000, metadata={"min": 1})
    idle_timeout_s: float = field(default=60.0, metadata={"min": 1})
    max_call_s: float = field(default=3600.0, metadata={"min": 1})
    max_calls_per_subject: int = field(default=5, metadata={"min": 1})
    max_messages_per_s: float = field(default=200.0, metadata={"min": 1})
    message_burst: int = field(default=400, metadata={"min": 1})
    audio_realtime_factor: float = field(default=1.5, metadata={"min": 1})
    audio_burst_s: float = field(default=5.0, metadata={"min": 0.1})
    max_message_audio_s: float = field(default=2.0, metadata={"min": 0.1})
    heartbeat_s: float = field(default=20.0, metadata={"min": 0.5})
    max_call_warning_s: float = field(default=60.0, metadata={"min": 0})
    max_call_warning: str = "We'll have to end this call in a minute."
    header_timeout_s: float = field(default=5.0, metadata={"min": 0.5, "max": 300})
    max_connections_per_client: int = field(default=256, metadata={"min": 0})


@dataclass
class JWTConfig:
    secret: str = ""
    public_key_file: str = ""
    jwks_file: str = ""
    algorithms: list[str] = field(default_factory=lambda: ["HS256"])
    audience: str = ""
    issuer: str = ""
    leeway_s: float = field(default=30.0, metadata={"min": 0, "max": 600})


@dataclass
class AuthConfig:
    """Who may connect; see docs/security.md. Secrets come from `${ENV}` interpolation."""

    mode: Literal["none", "jwt", "api_key"] = "none"
    jwt: JWTConfig = field(default_factory=JWTConfig)
    api_keys: list[str] = field(default_factory=list)
    first_message_timeout_s: float = field(default=5.0, metadata={"min": 0.1, "max": 60})


@dataclass
class SessionsConfig:
    """Sessions from `POST /api/v1/sessions`: how long they live, and reconnects."""

    ttl_s: float = field(default=900.0, metadata={"min": 1})
    single_use: bool = False
    resume_grace_s: float = field(default=120.0, metadata={"min": 0})
    #: Bounds on what anonymous clients can make the server hold (docs/security.md).
    max_sessions: int = field(default=10_000, metadata={"min": 1})
    max_total_bytes: int = field(default=8 * 1024 * 1024, metadata={"min": 64 * 1024})
    max_field_bytes: int = field(default=2048, metadata={"min": 64, "max": 1024 * 1024})
    create_per_minute: float = field(default=60.0, metadata={"min": 0.1})
    create_burst: int = field(default=20, metadata={"min": 1})


@dataclass
class SecurityConfig:
    auth: AuthConfig = field(default_factory=AuthConfig)
    limits: LimitsConfig = field(default_factory=LimitsConfig)
    sessions: SessionsConfig = field(default_factory=SessionsConfig)
    cors_origins: list[str] = field(default_factory=list)


@dataclass
class StorageConfig:
    url: str = ""
    encrypt_key: str = ""
    retention_days: float = field(default=30.0, metadata={"min": 0})


@dataclass
class ProviderSpec:
    """One configured provider: the registered name and its validated options."""

    use: str
    options: Any = None
    raw: dict[str, Any] = field(default_factory=dict)
    path: str = ""


@dataclass
class Config:
    server: ServerConfig = field(default_factory=ServerConfig)
    pipeline: PipelineConfig = field(default_factory=PipelineConfig)
    providers: dict[str, Any] = field(default_factory=dict)
    dialogue: DialogueConfig = field(default_factory=DialogueConfig)
    flows: FlowsConfig = field(default_factory=FlowsConfig)
    # provider name (`twilio`, or one a plugin registers) → its options, validated against the
    # provider's serializer `Options` once the plugins are loaded (see `validate_providers`)
    telephony: dict[str, Any] = field(default_factory=dict)
    security: SecurityConfig = field(default_factory=SecurityConfig)
    browser: BrowserConfig = field(default_factory=BrowserConfig)
    storage: StorageConfig = field(default_factory=StorageConfig)
    cluster: ClusterConfig = field(default_factory=ClusterConfig)
    plugins: list[str] = field(default_factory=list)

    # filled by the loader, not by users
    source: str = field(default="<defaults>", metadata={"internal": True})
    base_dir: Path = field(default_factory=Path.cwd, metadata={"internal": True})
    chains: dict[str, list[ProviderSpec]] = field(default_factory=dict, metadata={"internal": True})
    lines: dict[str, int] = field(default_factory=dict, metadata={"internal": True})
    #: key path → the environment variable it reads that was unset (so it took its default)
    unset_env: dict[str, str] = field(default_factory=dict, metadata={"internal": True})

    def line_of(self, path: str) -> int | None:
        return line_of_key(self.lines, path)

    def resolve(self, relative: str) -> Path:
        p = Path(relative)
        return p if p.is_absolute() else self.base_dir / p


USER_SECTIONS = (
    "server",
    "pipeline",
    "providers",
    "dialogue",
    "flows",
    "telephony",
    "security",
    "browser",
    "storage",
    "cluster",
    "plugins",
)


def line_of_key(lines: dict[str, int], path: str) -> int | None:
    while path:
        if path in lines:
            return lines[path]
        cut = max(path.rfind("."), path.rfind("["))
        path = path[:cut] if cut > 0 else ""
    return None
