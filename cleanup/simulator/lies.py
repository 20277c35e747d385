"""Lying bodies: answers that say 200 but mean something else.

``Lies`` is consulted by ``SimApi`` for GET /tasks/{id} (``wrong_get_body``,
``get_body_swap``: another task's body) and for the DELETE of a deletable task
(``delete_wrong_body``, ``delete_html_2xx``, ``delete_error_2xx``, ``delete_lies``:
a 2xx that deleted nothing; ``delete_empty_2xx``: a 204 that did delete). Each lie told
is counted in ``SimState.faults`` under the knob's name; probabilities are drawn only
when above zero, so an unchanged run stays reproducible.
"""

from __future__ import annotations

import json
import random
from collections import Counter

from aiohttp import web

from cleanup.simulator.answers import REFUSAL_MESSAGE
from cleanup.simulator.config import SimConfig
from cleanup.simulator.records import SimTask
from cleanup.simulator.state import SimState

HTML_200 = (
    "<!DOCTYPE html>\r\n<html><head><title>NAVER Cloud Platform</title></head>\r\n"
    "<body><p>Your request has been processed.</p></body></html>\r\n"
)
"""A portal page a misrouted DELETE might get back with status 200."""


class Lies:
    """The lying-body knobs of one simulator."""

    def __init__(self, config: SimConfig, rng: random.Random, faults: Counter[str]) -> None:
        """Share the simulator's live config, fault generator and fault counters."""
        self.config = config
        self.rng = rng
        self.faults = faults

    def _draw(self, probability: float) -> bool:
        return probability > 0 and self.rng.random() < probability

    def _other_task(self, state: SimState, asked: str) -> SimTask | None:
        """A random existing task other than ``asked`` (None if there is none)."""
        count = len(state.tasks)
        if count == 0 or (count == 1 and asked in state.tasks):
            return None
        position = self.rng.randrange(count)
        for candidate in state.task_page(position, 1) + state.task_page(0, 2):
            if candidate.task_id != asked:
                return candidate
        return None

    def get_body_of(self, state: SimState, asked: str) -> SimTask | None:
        """The task whose body GET /tasks/{asked} answers with, None to answer honestly."""
        swap = self.config.get_body_swap.get(asked)
        if swap is not None and swap in state.tasks:
            self.faults["get_body_swap"] += 1
            return state.tasks[swap]
        if asked in state.tasks and self._draw(self.config.wrong_get_body):
            other = self._other_task(state, asked)
            if other is not None:
                self.faults["wrong_get_body"] += 1
            return other
        return None

    def delete_answer(self, state: SimState, task_id: str) -> tuple[web.Response, bool] | None:
        """A lying answer to the DELETE of a deletable task, and whether it deleted.

        None: no lie this time, the endpoint answers honestly.
        """
        config = self.config
        if self._draw(config.delete_wrong_body):
            self.faults["delete_wrong_body"] += 1
            other = self._other_task(state, task_id)
            named = other.task_id if other is not None else task_id + "-other"
            return web.json_response({"task_id": named}), False
        if self._draw(config.delete_html_2xx):
            self.faults["delete_html_2xx"] += 1
            return web.Response(status=200, text=HTML_200, content_type="text/html"), False
        if self._draw(config.delete_error_2xx):
            self.faults["delete_error_2xx"] += 1
            error = {"errorCode": "10107", "message": REFUSAL_MESSAGE, "details": None}
            body = json.dumps({"error": error})
            return web.Response(status=200, body=body, content_type="application/json"), False
        if self._draw(config.delete_lies):
            self.faults["delete_lies"] += 1
            return web.json_response({"task_id": task_id}), False
        if self._draw(config.delete_empty_2xx):
            self.faults["delete_empty_2xx"] += 1
            return web.Response(status=204), True
        return None
