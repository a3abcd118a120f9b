"""CPU cost of one flow turn (caller input → next prompt text), without LLM.

Runs the example booking conversation through the main menu again and again: intent
classification with the `keyword` classifier, slot parsing (numbers, dates), templates,
conditions, sub-flow call and return. Prints microseconds of CPU per turn (CPU time, so a
busy machine does not inflate it).

    python benchmarks/flow_step.py [--calls 2000] [--flows flows]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from pathlib import Path

from voicebot.dialogue import DialogueContext, UserInput
from voicebot.flows import FlowDialogue, load_flows
from voicebot_plugins.intent_keyword import KeywordIntent

SCRIPT = [
    UserInput("speech", "I'd like to book a table please"),
    UserInput("speech", "we are four people"),
    UserInput("speech", "tomorrow at seven pm"),
    UserInput("speech", "Maria"),
    UserInput("speech", "yes that's right"),
    UserInput("speech", "yes"),
    UserInput("dtmf", digits="2"),
    UserInput("speech", "where is my order"),
    UserInput("dtmf", digits="123456#"),
    UserInput("speech", "no thanks"),
]


async def run(calls: int, flows_dir: Path) -> None:
    flows = load_flows(flows_dir)
    intent = KeywordIntent()
    per_turn: list[float] = []
    cpu_start = time.process_time()
    turns = 0
    for n in range(calls):
        ctx = DialogueContext(call_id=f"bench-{n}", variables={}, intent=intent)
        d = FlowDialogue(flows, ctx, "main")
        async for _ in d.start():
            pass
        for event in SCRIPT:
            t0 = time.thread_time()
            async for _ in d.handle(event):
                pass
            per_turn.append(time.thread_time() - t0)
            turns += 1
        assert d.phase == "ended", f"the scripted call did not finish (at {d.flow}.{d.node})"
    cpu = time.process_time() - cpu_start
    per_turn.sort()
    us = 1e6
    print(f"{turns} turns in {calls} calls (flows: {flows_dir})")
    print(f"CPU per turn: {cpu / turns * us:.0f} µs (process time, includes call setup)")
    print(
        f"CPU per turn alone: median {statistics.median(per_turn) * us:.0f} µs, "
        f"p99 {per_turn[int(0.99 * len(per_turn))] * us:.0f} µs, "
        f"max {per_turn[-1] * us:.0f} µs"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--flows", type=Path, default=Path(__file__).parent.parent / "flows")
    args = parser.parse_args()
    asyncio.run(run(args.calls, args.flows))


if __name__ == "__main__":
    main()
