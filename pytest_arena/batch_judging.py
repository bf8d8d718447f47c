"""The judge's calls in provider batches (``reviewer.args.batch``, ``--arena-batch``): about half the price,
answered within the Batch API's 24 h window instead of at once (``judging/batch_api.py`` talks to the API).

Once every answer exists and before any live call (``ArenaRunner.prepare``), the calls the review cache
cannot answer are sent as one batch (a call asked by several battles once; one a pending batch holds
already, not again). Replies and failures read back are merged into the review file as live replies are:
``MatchJudge`` takes them instead of asking (``judging/batch_answers.py``), through the same parsing and records, with
``batch_id`` added. What a batch did not answer (failed, expired, cancelled) is asked live
(``batch_fallback``, the default) or left failed with the reason. A key a pending batch holds is a claim:
no run asks it live meanwhile (``BatchAnswers.pending``).

The modes (``JudgeSpec.batch``):

- ``blocking`` (``batch: true``, ``--arena-batch``): submit, poll with a progress line until every batch
  has ended or ``batch_timeout`` passed, merge, rate. At the timeout: with fallback, cancel, merge what
  came and ask the rest live; without, fail naming the batches (a later ``collect`` reads them).
- ``submit``: merge what has ended, submit the rest, and stop the run as pending (``BatchPending``: exit
  ``PENDING_EXIT``, no item passes or fails, no report).
- ``collect``: one poll; still pending: the same stop; else merge, fall back, rate.

Under pytest-xdist one process does all of it (``file_names.batch_run_lock``); the others wait on that
lock, then find the replies in the review file.

Paid at submit: the batch's calls count towards ``max_calls``, and their worst case at the batch price
towards ``max_cost``, before anything is uploaded (``spend.CallLimit.take_batch``); settled at the usage
read back. A submit run's spend is that run's: the collect run counts only the calls it asks live.
"""

from __future__ import annotations

import dataclasses
from concurrent.futures import Future
from typing import Callable

from .budget import BudgetExceeded, batch_prices
from .errors import ArenaConfigError
from .file_names import batch_run_lock
from .judging.batch_api import (BatchApiError, BatchRequest, Collected, cancel, collect, forget, pending_batches,
                                read_state, state_file, submit, wait)
from .record_files import file_lock
from .spend import worst_case

PENDING_EXIT = 75  # EX_TEMPFAIL (sysexits.h): not a pass, not a gate's failure; run again to collect
CANCEL_WAIT_S = 60.0  # after cancelling at batch_timeout: how long the provider may take to stop the batch
UPLOAD_TIMEOUT_S = 600.0  # a large input file's upload needs a longer attempt than a chat call


class BatchPending(Exception):
    """The run's judge calls wait in a provider batch: the run stops here, neither green nor a gate verdict."""


def with_batch_mode(config, mode: str):
    """The config with ``--arena-batch``'s mode; a judge that cannot batch is an ArenaConfigError."""
    from .config.judge import batch_refusal

    judge = config.review.judge
    if config.review.panel:
        raise ArenaConfigError(config.path, "reviews_gen.reviewer", "--arena-batch: a panel's judges are asked live; "
                               "batch needs a single judge")
    if not judge.is_openai or judge.verdict == "likelihood":
        raise ArenaConfigError(config.path, "reviews_gen.reviewer",
                               f"--arena-batch: {batch_refusal(judge.ref, judge.verdict)}")
    review = dataclasses.replace(config.review, judge=dataclasses.replace(judge, batch=mode))
    return dataclasses.replace(config, review=review)


def pending_keys(review_file) -> dict[str, str]:
    """Call key -> the pending batch that holds it (any endpoint's): calls no run may ask live meanwhile."""
    return {key: batch.id for batch in read_state(state_file(review_file)) for key in batch.custom_ids}


def judge_in_batches(runner, judge) -> dict[str, Future]:
    """The batch flow of ``runner``'s selection with ``judge`` (a MatchJudge), before any live call, when the
    judge batches (nothing otherwise): the judgments of the matches it merged, by match id (the runner's own:
    it asks them no more). Raised: ``judge`` is closed, and the runner's next ``prepare`` starts again.

    Raises BatchPending (split modes, batches still running), BudgetExceeded (the batch would pass the
    budget: nothing is sent), BatchApiError (the API refused a step, or a blocking run without fallback
    timed out)."""
    from .openai_chat import make_client

    spec = runner.config.review.judge
    if not spec.batch:
        return {}
    review_file = runner.config.review.review_file
    matches = [(m, a) for m in runner.judged if (a := runner.answers_of(m)) is not None]
    client = None
    try:
        client = make_client(spec.api_key_env, spec.urls[0], spec.max_retries, max(spec.timeout, UPLOAD_TIMEOUT_S))
        with file_lock(batch_run_lock(review_file)):  # (xdist: the other workers wait, then find it merged)
            judge.refresh()  # what another process merged while we waited
            flow = BatchRun(runner.config, judge, client, matches, runner.log)
            flow.run()
            return flow.judgments
    except BaseException:
        judge.close(wait=False)
        judge.judge.close()
        raise
    finally:
        if client is not None:
            client.close()


class BatchRun:
    """One run's batch flow over ``matches`` ((match, answers) pairs)."""

    def __init__(self, config, judge, client, matches: list[tuple], log: Callable[[str], None]):
        self.config, self.judge, self.client, self.matches, self.log = config, judge, client, matches, log
        self.spec = config.review.judge
        self.review_file = config.review.review_file
        self.state = state_file(self.review_file)
        self._worst = 0.0  # the submitted calls' worst-case cost, settled once their replies are read
        self.judgments: dict[str, Future] = {}  # match id -> its judgment, for the matches merged

    def run(self) -> None:
        mode = self.spec.batch
        if pending_batches(self.state, self.client):  # batches of an earlier run: take back what has ended
            self.merge(collect(self.client, self.state, wait(self.client, self.state, timeout_s=0)))
        if mode == "collect":
            self.stop_if_pending()
            unsent = {c.key for m, a in self.matches for c in self.judge.uncached_calls(m, a)}
            unsent -= set(self.judge.batch.failures)
            if unsent:  # (a submit that never ran, or calls the config gained since): live, at the live price
                self.log(f"judge batch: {len(unsent)} calls to make are in no batch: asked live")
            return
        self.send()
        if mode == "submit":
            self.stop_if_pending()
            return
        self.block()

    # -- sending -------------------------------------------------------------------------------------

    def send(self) -> None:
        calls = {}
        for match, answers in self.matches:
            for call in self.judge.uncached_calls(match, answers):
                if call.key not in self.judge.batch.failures:  # (left failed this run: batch_fallback false)
                    calls.setdefault(call.key, call)
        held = {key for batch in pending_batches(self.state, self.client) for key in batch.custom_ids}
        fresh = [call for key, call in calls.items() if key not in held]
        if not fresh:
            if calls:
                self.log(f"judge batch: all {len(calls)} calls to make are pending in a batch already (not paid again)")
            return
        self._charge(fresh)
        requests = [BatchRequest.for_judge(c.key, self.spec.model, c.template.system_prompt, c.prompt,
                                           self.spec.temperature, self.spec.max_tokens) for c in fresh]
        sent = submit(self.client, self.state, requests, metadata={"review_file": self.review_file.name[-500:]})
        self.judge.batch.pending = pending_keys(self.review_file)
        self.log(f"judge batch: {sent.sent} requests sent in {', '.join(sent.created) or 'no new batch'}"
                 + (f" ({sent.already_pending} pending in a batch already)" if sent.already_pending else ""))

    def _charge(self, calls: list) -> None:
        """The budget, before anything is uploaded: the calls at the batch price, paid at submit."""
        limit = self.judge.call_limit
        if limit is None:
            return
        prompt_price, completion_price, _ = batch_prices(self.spec)
        worst = sum(worst_case(call, self.spec.max_tokens).cost((prompt_price, completion_price)) for call in calls)
        refused = limit.take_batch(len(calls), worst)
        if refused:
            key = "reviews_gen.max_calls" if "max_calls" in refused else limit.cost_key
            raise BudgetExceeded(self.config.path, key, f"{refused}; no batch was sent")
        self._worst += worst

    # -- waiting ---------------------------------------------------------------------------------------

    def block(self) -> None:
        if not pending_batches(self.state, self.client):
            return
        said = [None]

        def progress(p) -> None:
            if (p.done, p.statuses) != said[0]:  # a line when something moved, not one per poll
                said[0] = (p.done, p.statuses)
                self.log(p.line())

        statuses = wait(self.client, self.state, progress, poll_s=self.spec.batch_poll_s,
                        timeout_s=self.spec.batch_timeout)
        late = [s.batch.id for s in statuses if not s.finished]
        if not late:
            self.merge(collect(self.client, self.state, statuses))
            return
        if not self.spec.batch_fallback:
            self.merge(collect(self.client, self.state, statuses))  # what has ended is merged all the same
            raise BatchApiError(f"judge batch {', '.join(late)} not finished after batch_timeout "
                                f"{self.spec.batch_timeout:g}s (batch_fallback false): its calls are not asked live; "
                                "run again with --arena-batch=collect to read it")
        self.log(f"judge batch {', '.join(late)} not finished after batch_timeout {self.spec.batch_timeout:g}s: "
                 "cancelled; what it answered is merged, the rest asked live")
        cancel(self.client, self.state)
        statuses = wait(self.client, self.state, poll_s=min(self.spec.batch_poll_s, 5.0), timeout_s=CANCEL_WAIT_S)
        self.merge(collect(self.client, self.state, statuses), also_forget=[s.batch.id for s in statuses])

    def stop_if_pending(self) -> None:
        pending = pending_batches(self.state, self.client)
        if pending:
            requests = sum(len(batch.custom_ids) for batch in pending)
            line = (f"judge batch {', '.join(b.id for b in pending)} pending: {requests} requests; "
                    "run again with --arena-batch=collect (the run is neither passed nor failed)")
            self.log(line)
            raise BatchPending(line)

    # -- merging ---------------------------------------------------------------------------------------

    def merge(self, collected: Collected, also_forget: list[str] = ()) -> None:
        """Replies and failures into the review file, as live replies are; then the batches are forgotten."""
        done = set(collected.finished) | set(also_forget)
        judge = self.judge
        judge.batch.replies.update(collected.replies)
        if not self.spec.batch_fallback:
            judge.batch.failures.update(collected.failures)
        # The keys of ended batches are claims no more: a failed call may now be asked live (fallback).
        judge.batch.pending = {k: b for k, b in pending_keys(self.review_file).items() if b not in done}
        touched = set(collected.replies) | set(collected.failures)
        asked = set()
        futures = []
        for match, answers in self.matches:
            keys = {call.key for call in judge.uncached_calls(match, answers)}
            if keys & touched:  # (with the fallback, its failed calls are asked live now, once)
                asked |= keys
                futures.append(judge.submit(match, answers))
                self.judgments[match.id] = futures[-1]
        for future in futures:
            future.exception()  # waits: the records are written before the batch is forgotten
        self._settle(collected)
        if judge.unwritable:  # not in the review file: the state file keeps the batches, a later run reads them again
            raise BatchApiError(f"the batch replies were not merged: {judge.unwritable}")
        if done:
            forget(self.state, sorted(done))
        failed = len(collected.failures)
        unused = len(set(collected.replies) - asked)
        if collected.replies or failed:
            what = "asked live" if self.spec.batch_fallback else "left failed (batch_fallback false)"
            self.log(f"judge batch: {len(collected.replies)} replies merged into {self.review_file}"
                     + (f"; {failed} requests failed or expired: {what}" if failed else "")
                     + (f"; {unused} replies no current battle asks for (dropped)" if unused else ""))

    def _settle(self, collected: Collected) -> None:
        limit = self.judge.call_limit
        if limit is None or not self._worst:
            return
        prompt_price, completion_price, _ = batch_prices(self.spec)
        cost = sum(r.reply.prompt_tokens * prompt_price + r.reply.completion_tokens * completion_price
                   for r in collected.replies.values()) / 1e6
        limit.settle_batch(self._worst, cost)
        self._worst = 0.0
