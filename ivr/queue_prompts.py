"""What a caller hears while waiting in a queue: prompt ids and announcement sequences.

The server plays these, not a menu node, so the checker counts them as used and the prompt
builder records them with the rest.
"""

from __future__ import annotations

import math

from ivr.speech import say_number

POSITION = "queue_position"
POSITION_UNIT = "queue_position_unit"
WAIT = "queue_wait"
WAIT_UNIT = "queue_wait_unit"
CALLBACK_OFFER = "queue_callback_offer"
BUSY = "queue_busy"
OVERFLOW_CALLBACK = "queue_overflow_callback"
CALLBACK_CONFIRM = "callback_keep_place_confirm"
GOODBYE = "goodbye"

QUEUE_PROMPTS = (POSITION, POSITION_UNIT, WAIT, WAIT_UNIT, CALLBACK_OFFER, BUSY, OVERFLOW_CALLBACK)


def position_announcement(
    ahead: int, estimated_wait: float | None, language: str, *, callback_key: str | None = None
) -> tuple[str, ...]:
    """Prompt ids for "N callers ahead of you, about M minutes" (and the callback offer)."""
    prompts: list[str] = [POSITION, *say_number(max(0, ahead), language), POSITION_UNIT]
    if estimated_wait is not None and estimated_wait > 0:
        minutes = max(1, math.ceil(estimated_wait / 60))
        prompts += [WAIT, *say_number(minutes, language), WAIT_UNIT]
    if callback_key:
        prompts.append(CALLBACK_OFFER)
    return tuple(prompts)
