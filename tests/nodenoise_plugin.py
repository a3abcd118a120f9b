"""A test-only denoiser plugin whose engine is not installed (the `requires` route)."""

from voicebot.hookspecs import hookimpl
from voicebot.providers import Denoiser, DenoiserStream


class AbsentDenoiser(Denoiser):
    name = "absent"
    requires = ("no_such_denoiser_engine",)

    def stream(self, sample_rate: int) -> DenoiserStream:
        raise AssertionError("never started")


@hookimpl
def register_denoise(register):
    register(AbsentDenoiser)
