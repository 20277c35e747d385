"""Verification (``api.verify``, on by default): ``deleted`` only once the task is gone.

After a pass, accepted DELETEs are confirmed by the cheaper of a listing and a GET per
task. A task still there after an accepted DELETE is tried once more, then ``failed``;
a stop before verification records ``deleted`` with ``verified: false``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .errors import ApiError, BadResponseError
from .model import Outcome, Task

if TYPE_CHECKING:
    from .deleter import Executor


async def verify_deletes(ex: Executor, accepted: list[Task], *, second: bool = False) -> None:
    """With ``api.verify``: ``deleted`` only once a listing or GET shows it gone."""
    if not accepted:
        return
    ids = [t.task_id for t in accepted]
    listing = ex.verify_pages is not None and ex.verify_pages < len(ids)
    if ex.stopping.requested:
        gone, present = None, {}
    elif listing:
        tasks = await ex.guarded(ex.source.list_tasks())
        gone = None if tasks is None else {i for i in ids if i not in tasks}
        present = {} if tasks is None else {i: tasks[i] for i in ids if i in tasks}
    else:
        lookup = await ex.guarded(ex.source.get_each(ids))
        gone = None if lookup is None else lookup.absent
        present = {} if lookup is None else lookup.found
    again: list[Task] = []
    with ex.recorder.batch():  # nothing is sent in this loop: fewer writes
        for task in accepted:
            if gone is None and ex.stopping.requested:
                # A stop before verification: the DELETE was accepted, not yet confirmed.
                ex.recorder.finish(Outcome.DELETED, task, verified=False)
            elif gone is None or (task.task_id not in gone and task.task_id not in present):
                unconfirmed = BadResponseError(
                    "the DELETE was accepted but verification could not read the task; "
                    "a rerun settles it"
                )
                ex.failed(task, unconfirmed)
            elif task.task_id in gone:
                how = "listing" if listing else "GET 404"
                ex.recorder.finish(Outcome.DELETED, task, verified=True, evidence=how)
                ex.count_end(task, failed=False)
            elif second:
                error = BadResponseError(
                    "the DELETE was accepted twice but the task is still there"
                )
                ex.failed(present[task.task_id], error)
            else:
                again.append(present[task.task_id])
    if again:
        await _again(ex, again)


async def _again(ex: Executor, tasks: list[Task]) -> None:
    """Tasks still there after an accepted DELETE are tried once more."""
    accepted: list[Task] = []
    for task in tasks:
        ex.recorder.event("retrying", task, error="still listed after an accepted DELETE")
        result = await ex.delete_one(task)
        if isinstance(result, ApiError):
            ex.failed(task, result, evidence="refused after an accepted DELETE")
        elif result is not None:
            accepted.append(result)
    await verify_deletes(ex, accepted, second=True)
