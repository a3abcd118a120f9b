"""A minimal ctypes binding to the C API inside the `pocketsphinx` wheel.

Why not `pocketsphinx.Decoder`: its Cython methods hold the GIL while decoding (measured: a 3 s
`process_raw` stalled a ticking thread for the whole 3 s), so decoding in a worker thread would
still freeze the event loop and serialise all calls on one core. The wheel's extension module
exports the C API (`ps_init`, `ps_process_raw`, ...); ctypes releases the GIL around every foreign
call, so decoding here runs truly in parallel with the loop. Only the handful of functions an
utterance needs are bound. Requires pocketsphinx 5.x (the `ps_config_t` API).
"""

from __future__ import annotations

import ctypes
import os
import threading
from typing import Any

_P = ctypes.c_void_p
_lib: ctypes.CDLL | None = None
_lib_lock = threading.Lock()

#: argument types and result type of each C function used, as in pocketsphinx.h (5.x)
_SIGNATURES: dict[str, tuple[list[Any], Any]] = {
    "ps_config_init": ([_P], _P),
    "ps_config_free": ([_P], ctypes.c_int),
    "ps_config_set_str": ([_P, ctypes.c_char_p, ctypes.c_char_p], _P),
    "ps_init": ([_P], _P),
    "ps_free": ([_P], ctypes.c_int),
    "ps_start_utt": ([_P], ctypes.c_int),
    "ps_process_raw": (
        [_P, ctypes.c_char_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int],
        ctypes.c_int,
    ),
    "ps_end_utt": ([_P], ctypes.c_int),
    "ps_get_hyp": ([_P, ctypes.POINTER(ctypes.c_int32)], ctypes.c_char_p),
    "ps_get_prob": ([_P], ctypes.c_int32),
    "ps_get_logmath": ([_P], _P),
    "logmath_exp": ([_P, ctypes.c_int], ctypes.c_double),
    "ps_get_cmn": ([_P, ctypes.c_int], ctypes.c_char_p),
    "ps_set_cmn": ([_P, ctypes.c_char_p], ctypes.c_int),
}


class BindingError(RuntimeError):
    pass


def library() -> ctypes.CDLL:
    """The C library of the installed pocketsphinx wheel, with signatures declared (once)."""
    global _lib
    with _lib_lock:
        if _lib is None:
            import pocketsphinx._pocketsphinx as ext

            lib = ctypes.CDLL(ext.__file__)
            for name, (argtypes, restype) in _SIGNATURES.items():
                try:
                    fn = getattr(lib, name)
                except AttributeError as exc:
                    raise BindingError(
                        f"the installed pocketsphinx does not export {name}(); "
                        "voicebot needs pocketsphinx 5.x: pip install 'pocketsphinx>=5,<6'"
                    ) from exc
                fn.argtypes, fn.restype = argtypes, restype
            _lib = lib
        return _lib


def default_model_paths() -> dict[str, str]:
    """hmm/lm/dict of the en-US model shipped inside the pocketsphinx wheel."""
    import pocketsphinx

    base = os.path.join(pocketsphinx.get_model_path(), "en-us")
    return {
        "hmm": os.path.join(base, "en-us"),
        "lm": os.path.join(base, "en-us.lm.bin"),
        "dict": os.path.join(base, "cmudict-en-us.dict"),
    }


def _config_value(value: Any) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value)


class Decoder:
    """One loaded recogniser (acoustic model + LM + dictionary, ~90 MB) and its utterance state.

    Not thread-safe by itself: every method takes `lock`, so a job left running by a cancelled
    utterance finishes before the next user of this decoder starts.
    """

    def __init__(self, params: dict[str, Any]) -> None:
        self._lib = lib = library()
        self.lock = threading.Lock()
        config = lib.ps_config_init(None)
        if not config:
            raise BindingError("pocketsphinx could not allocate a configuration")
        try:
            for key, value in {"loglevel": "ERROR", **params}.items():
                if (
                    lib.ps_config_set_str(config, key.encode(), _config_value(value).encode())
                    is None
                ):
                    raise BindingError(f"pocketsphinx rejected option {key}={value!r}")
            self._ps = lib.ps_init(config)
        finally:
            lib.ps_config_free(config)
        if not self._ps:
            raise BindingError(
                "pocketsphinx could not load its model (check the hmm/lm/dict paths): "
                + ", ".join(f"{k}={params.get(k)}" for k in ("hmm", "lm", "dict"))
            )
        self.initial_cmn = self._lib.ps_get_cmn(self._ps, 0).decode()
        self._in_utt = False

    def begin(self, cmn: str | None) -> None:
        """Start an utterance with the caller's channel estimate (or the model's initial one)."""
        with self.lock:
            if self._in_utt:  # an utterance abandoned by a cancelled stream
                self._lib.ps_end_utt(self._ps)
            self._lib.ps_set_cmn(self._ps, (cmn or self.initial_cmn).encode())
            if self._lib.ps_start_utt(self._ps) < 0:
                raise BindingError("pocketsphinx could not start an utterance")
            self._in_utt = True

    def feed(self, pcm: bytes) -> str:
        """Decode more audio of the current utterance; returns the partial hypothesis."""
        with self.lock:
            if self._lib.ps_process_raw(self._ps, pcm, len(pcm) // 2, 0, 0) < 0:
                raise BindingError("pocketsphinx failed to decode audio")
            return self._hyp()

    def finish(self) -> tuple[str, float, str]:
        """End the utterance: final text, its posterior probability and the updated CMN."""
        with self.lock:
            self._in_utt = False
            if self._lib.ps_end_utt(self._ps) < 0:
                raise BindingError("pocketsphinx failed to finish the utterance")
            text = self._hyp()
            prob = self._lib.logmath_exp(
                self._lib.ps_get_logmath(self._ps), self._lib.ps_get_prob(self._ps)
            )
            cmn = self._lib.ps_get_cmn(self._ps, 0).decode()
            return text, prob, cmn

    def _hyp(self) -> str:
        score = ctypes.c_int32()
        hyp = self._lib.ps_get_hyp(self._ps, ctypes.byref(score))
        return hyp.decode() if hyp else ""

    def free(self) -> None:
        with self.lock:
            if self._ps:
                self._lib.ps_free(self._ps)
                self._ps = None
