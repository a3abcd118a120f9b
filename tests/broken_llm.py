"""A test-only LLM plugin that always fails, loaded through `plugins:`: the first member of a
fallback chain, to show who builds the chain."""

from voicebot.hookspecs import hookimpl
from voicebot.providers import LLM, ProviderError


class BrokenLLM(LLM):
    name = "broken"

    async def stream(self, messages, tools=()):
        raise ProviderError("always down", provider=self.name, retryable=True)
        yield ""  # an async generator, like every LLM


@hookimpl
def register_llm(register):
    register(BrokenLLM)
