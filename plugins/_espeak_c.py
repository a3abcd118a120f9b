"""A ctypes binding to the libespeak-ng that the `espeakng-loader` wheel ships with its data.

espeak-ng keeps all its state in globals and is not thread-safe, so there is one `Engine` per
process and every synthesis holds its lock. Synthesis is synchronous: `espeak_Synth` returns once
the callback has received all the audio. ctypes releases the GIL during the call, so the event
loop runs on while a worker thread synthesises.
"""

from __future__ import annotations

import ctypes
import threading
from typing import Any

AUDIO_OUTPUT_SYNCHRONOUS = 2
POS_CHARACTER = 1
CHARS_UTF8 = 1
ENDPAUSE = 0x1000
PARAM_RATE, PARAM_PITCH = 1, 3
EE_OK, EE_NOT_FOUND = 0, 2
BUFFER_MS = 100  # how much audio espeak hands to the callback at a time

_Callback = ctypes.CFUNCTYPE(
    ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.c_void_p
)

_SIGNATURES: dict[str, tuple[list[Any], Any]] = {
    "espeak_Initialize": (
        [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int],
        ctypes.c_int,
    ),
    "espeak_SetSynthCallback": ([_Callback], None),
    "espeak_SetVoiceByName": ([ctypes.c_char_p], ctypes.c_int),
    "espeak_SetParameter": ([ctypes.c_int, ctypes.c_int, ctypes.c_int], ctypes.c_int),
    "espeak_Synth": (
        [
            ctypes.c_char_p,
            ctypes.c_size_t,
            ctypes.c_uint,
            ctypes.c_int,
            ctypes.c_uint,
            ctypes.c_uint,
            ctypes.c_void_p,
            ctypes.c_void_p,
        ],
        ctypes.c_int,
    ),
}


class EspeakError(RuntimeError):
    pass


class Engine:
    """The process's espeak-ng instance: voice settings are applied per synthesis under the lock."""

    def __init__(self) -> None:
        import espeakng_loader

        self._lib = lib = ctypes.CDLL(espeakng_loader.get_library_path())
        for name, (argtypes, restype) in _SIGNATURES.items():
            fn = getattr(lib, name)
            fn.argtypes, fn.restype = argtypes, restype
        self.lock = threading.Lock()
        data = espeakng_loader.get_data_path().encode()
        self.sample_rate = lib.espeak_Initialize(AUDIO_OUTPUT_SYNCHRONOUS, BUFFER_MS, data, 0)
        if self.sample_rate <= 0:
            raise EspeakError(f"espeak-ng failed to initialise with its data at {data.decode()}")
        self._sink: list[bytes] = []
        self._callback = _Callback(self._on_audio)  # kept referenced: C holds the pointer
        lib.espeak_SetSynthCallback(self._callback)
        self._settings: tuple[str, int, int] | None = None

    def _on_audio(self, wav: Any, n_samples: int, events: Any) -> int:
        if n_samples > 0 and wav:
            self._sink.append(ctypes.string_at(wav, 2 * n_samples))
        return 0  # go on

    def check_voice(self, voice: str) -> None:
        with self.lock:
            self._settings = None
            if self._lib.espeak_SetVoiceByName(voice.encode()) != EE_OK:
                raise EspeakError(
                    f"espeak-ng has no voice '{voice}' "
                    "(names look like 'en-us', 'en-gb', 'de', 'fr')"
                )

    def synth(self, text: str, voice: str, rate: int, pitch: int) -> bytes:
        """PCM16 at `sample_rate` for `text`."""
        data = text.encode() + b"\0"
        with self.lock:
            if self._settings != (voice, rate, pitch):
                self._settings = None
                if self._lib.espeak_SetVoiceByName(voice.encode()) != EE_OK:
                    raise EspeakError(f"espeak-ng has no voice '{voice}'")
                self._lib.espeak_SetParameter(PARAM_RATE, rate, 0)
                self._lib.espeak_SetParameter(PARAM_PITCH, pitch, 0)
                self._settings = (voice, rate, pitch)
            self._sink = []
            err = self._lib.espeak_Synth(
                data, len(data), 0, POS_CHARACTER, 0, CHARS_UTF8 | ENDPAUSE, None, None
            )
            pcm, self._sink = b"".join(self._sink), []
        if err != EE_OK:
            raise EspeakError(f"espeak-ng failed to synthesise (error {err})")
        return pcm


_engine: Engine | None = None
_engine_lock = threading.Lock()


def engine() -> Engine:
    global _engine
    with _engine_lock:
        if _engine is None:
            _engine = Engine()
        return _engine
