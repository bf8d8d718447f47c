"""A judge budget: what a run may spend on the judge, checked before the first call and held during the run.

``reviews_gen.max_calls`` bounds the judge calls a run makes; ``reviews_gen.max_cost`` its cost, from the
judge's prices (``reviewer.args.prompt_cost_per_1m`` and ``completion_cost_per_1m``). ``ARENA_MAX_COST``
in the environment may tighten ``max_cost`` (the smaller of the two wins), never loosen it, so CI can hold
a run to less than the config allows.

- Before the first judge call (once the answers exist), the runner counts the calls it still has to
  make: a reply in the review cache is free, and a prompt asked by several battles is paid once.
  Their cost is estimated from the prompt tokens (counted by the local judge's tokenizer; for an API
  judge, whose tokenizer is not known here, as characters / 4) and ``max_tokens`` per call as the
  bound on the completion. Over ``max_calls`` or ``max_cost``: ``BudgetExceeded``, a usage error, and
  no call is made (``check``). The estimate can be low (re-asks, CJK prompts): it only spares a run that
  cannot fit from starting.
- During the run, both bounds are hard (``spend.CallLimit``): a call past ``max_calls``, or whose worst
  case would pass ``max_cost`` once added to the spend the replies reported, is not made, and its battle
  fails with the reason (nothing is cached, so a later run asks again). Under pytest-xdist the workers
  share one record (``spend.SharedCallLimit``, in ``file_names.spend_file`` beside the review file, under the id
  the controller gave its workers), so N workers make at most ``max_calls`` and spend at most ``max_cost``
  together; a previous run's record never counts in this one, and the controller removes its run's entry
  at the end (``end_shared_count``). A run alone counts in memory and writes no such file.
- ``--collect-only`` prints the same estimate (``plan_line``).
"""

from __future__ import annotations

import math
import os
import dataclasses
from dataclasses import dataclass
from pathlib import Path

from .errors import ArenaConfigError
from .spend import CallLimit, SharedCallLimit, end_shared_count

ENV = "ARENA_MAX_COST"
CHARS_PER_TOKEN = 4
# What the Batch API charges against live calls when the config gives no batch price: half (OpenAI's
# batch discount, which Anthropic's and others' match).
BATCH_DISCOUNT = 0.5


@dataclass(frozen=True)
class Budget:
    """The bounds in force: None where there is none."""

    max_calls: int | None = None
    max_cost: float | None = None
    cost_key: str = "reviews_gen.max_cost"  # where the max_cost in force was set (or ARENA_MAX_COST)

    @property
    def active(self) -> bool:
        return self.max_calls is not None or self.max_cost is not None


def read_budget(config, environ=os.environ) -> Budget:
    """The run's budget: the config's, tightened by ``ARENA_MAX_COST``. A malformed value, or one given
    for a judge without prices, is an ArenaConfigError (a usage error, before anything runs)."""
    review = config.review
    budget = Budget(getattr(review, "max_calls", None), getattr(review, "max_cost", None))
    raw = environ.get(ENV, "").strip()
    if not raw:
        return budget
    try:
        env_cost = float(raw)
    except ValueError:
        env_cost = math.nan
    if not math.isfinite(env_cost) or env_cost < 0:
        raise ArenaConfigError(ENV, "", f"expected a number >= 0 (the most a run may spend on the judge), got {raw[:40]!r}")
    judge = review.judge
    if judge.prompt_cost_per_1m is None or judge.completion_cost_per_1m is None:
        raise ArenaConfigError(config.path, "reviews_gen.reviewer.args",
                               f"{ENV} is set, so the judge's prices are needed to estimate a cost: set "
                               "prompt_cost_per_1m and completion_cost_per_1m")
    if budget.max_cost is not None and budget.max_cost <= env_cost:
        return budget  # the config is tighter already: the environment may only tighten
    return Budget(budget.max_calls, env_cost, ENV)


# -------------------------------------------------------------------------------------------------
# The estimate


@dataclass(frozen=True)
class Estimate:
    calls: int  # judge calls still to make
    cached: int  # calls the review cache answers (free)
    prompt_tokens: int
    completion_tokens: int  # the bound: max_tokens per call
    cost: float | None  # None: the judge has no prices
    counted_by: str  # how the prompt tokens were counted
    priced_as: str = ""  # at the batch price: how it was set (``batch_prices``)

    def describe(self) -> str:
        cost = "" if self.cost is None else f", estimated cost {self.cost:.4f}{self.priced_as}"
        return (f"{self.calls} judge calls to make ({self.cached} cached, free); {self.prompt_tokens} prompt tokens "
                f"({self.counted_by}) + at most {self.completion_tokens} completion tokens (max_tokens per call){cost}")


def estimate(judge, pending: list[tuple], spec) -> Estimate:
    """The calls the matches still need and what they would cost. ``judge``: a MatchJudge (its review
    cache and prompts); ``pending``: (match, answers) pairs judged by this process; ``spec``: JudgeSpec."""
    to_make, cached = {}, 0
    for match, answers in pending:
        uncached = judge.uncached_calls(match, answers)
        cached += judge.cached_calls(match, answers)
        for call in uncached:
            if call.key not in judge.batch.pending:  # (held by a pending provider batch: paid at its submit)
                to_make.setdefault(call.key, call)  # one prompt, one call (shared while in flight)
    count, counted_by = token_counter(spec) if to_make else (None, "none to count")
    prompt_tokens = sum(count(call.template.system_prompt, call.prompt) for call in to_make.values()) if count else 0
    completion_tokens = len(to_make) * spec.max_tokens
    cost, priced_as = None, ""
    if spec.prompt_cost_per_1m is not None or spec.completion_cost_per_1m is not None:
        prices = (spec.prompt_cost_per_1m or 0, spec.completion_cost_per_1m or 0)
        if spec.batch:  # every call goes in a batch (a fallback asked live costs more: the run's bound holds it)
            *prices, how = batch_prices(spec)
            priced_as = f" at the batch price ({how})"
        cost = (prompt_tokens * prices[0] + completion_tokens * prices[1]) / 1e6
    return Estimate(len(to_make), cached, prompt_tokens, completion_tokens, cost, counted_by, priced_as)


def priced_spec(review):
    """The judge spec the budget prices the run's calls at: the judge's own, or for a panel one whose prices
    and ``max_tokens`` bound every judge's (the worst case, so neither the estimate nor the bound is low)."""
    judges = review.panel or (review.judge,)
    if len(judges) == 1:
        return judges[0]
    return dataclasses.replace(judges[0], max_tokens=max(j.max_tokens for j in judges),
                               prompt_cost_per_1m=max(j.prompt_cost_per_1m or 0.0 for j in judges),
                               completion_cost_per_1m=max(j.completion_cost_per_1m or 0.0 for j in judges))


def batch_prices(spec) -> tuple[float, float, str]:
    """The judge's prices per million prompt and completion tokens in a provider batch, and where they come
    from: ``batch_prompt_cost_per_1m`` / ``batch_completion_cost_per_1m``, or half the live price."""
    given = (spec.batch_prompt_cost_per_1m, spec.batch_completion_cost_per_1m)
    live = (spec.prompt_cost_per_1m or 0.0, spec.completion_cost_per_1m or 0.0)
    prompt, completion = (g if g is not None else price * BATCH_DISCOUNT for g, price in zip(given, live))
    if None not in given:
        how = "batch_prompt_cost_per_1m, batch_completion_cost_per_1m"
    elif given == (None, None):
        how = "half the live price, by default"
    else:
        how = "the batch price given, half the live price for the other"
    return prompt, completion, how


def token_counter(spec):
    """``(count(system_prompt, prompt), how)``: the local judge's tokenizer, else characters / 4."""
    if spec.is_local and spec.checkpoint is not None:
        tokenizer = _local_tokenizer(spec.checkpoint)
        if tokenizer is not None:
            return (lambda system, prompt: len(tokenizer(_joined(system, prompt))["input_ids"]),
                    "counted by the local judge's tokenizer")
        return _by_characters, "characters/4: the local judge's tokenizer could not be loaded from a local folder"
    return _by_characters, "characters/4: an API judge's tokenizer is not known here"


def _joined(system: str | None, prompt: str) -> str:
    return f"{system}\n\n{prompt}" if system else prompt


def _by_characters(system: str | None, prompt: str) -> int:
    return -(-len(_joined(system, prompt)) // CHARS_PER_TOKEN)


def _local_tokenizer(checkpoint):
    if not Path(checkpoint.path).is_dir():  # a hub id: an estimate never goes to the network
        return None
    try:
        from transformers import AutoTokenizer

        extra = {"gguf_file": checkpoint.gguf_file} if checkpoint.gguf_file else {}
        return AutoTokenizer.from_pretrained(checkpoint.path, revision=checkpoint.revision,
                                             trust_remote_code=checkpoint.trust_remote_code, **extra)
    except Exception:  # noqa: BLE001 - an estimate falls back to characters, it never stops the run
        return None


# -------------------------------------------------------------------------------------------------
# Before the first call, and during the run


class BudgetExceeded(ArenaConfigError):
    """The run would spend more than its budget: a usage error, raised before any judge call."""


def check(budget: Budget, found: Estimate, config_path) -> None:
    if budget.max_calls is not None and found.calls > budget.max_calls:
        raise BudgetExceeded(config_path, "reviews_gen.max_calls",
                             f"the run needs {found.calls} judge calls, more than max_calls {budget.max_calls}: "
                             f"{found.describe()}; no judge call was made")
    if budget.max_cost is not None and found.cost is not None and found.cost > budget.max_cost:
        where = config_path if budget.cost_key != ENV else ENV
        key = budget.cost_key if budget.cost_key != ENV else ""
        raise BudgetExceeded(where, key, f"the run's estimated judge cost {found.cost:.4f} is more than "
                                         f"max_cost {budget.max_cost:g}: {found.describe()}; no judge call was made")


def plan_line(budget: Budget, found: Estimate | None) -> str:
    """What ``--collect-only`` says about the budget."""
    if found is None:
        return "judge budget: the estimate needs every answer (generated on the run, before the first judge call)"
    bounds = [f"max_calls {budget.max_calls}"] if budget.max_calls is not None else []
    if budget.max_cost is not None:
        bounds.append(f"max_cost {budget.max_cost:g}" + (f" ({ENV})" if budget.cost_key == ENV else ""))
    within = ""
    if bounds:
        try:
            check(budget, found, "")
            within = f"; within {', '.join(bounds)}"
        except BudgetExceeded:
            within = f"; over the budget ({', '.join(bounds)}): the run would stop before its first judge call"
    return f"judge budget: {found.describe()}{within}"


# -------------------------------------------------------------------------------------------------
# The runner's side (arena_runner.ArenaRunner)


def call_limit(budget: Budget, spec, review_file, run_id: str | None,
               log=lambda message: None) -> CallLimit | None:
    """The run's hard bounds on judge calls (``max_calls``, ``max_cost`` at ``spec``'s prices with
    ``spec.max_tokens`` as the completion bound): shared by the processes of a run when they have a run id
    (xdist workers), this process's own otherwise; None without a budget."""
    if not budget.active:
        return None
    bounds = dict(max_cost=budget.max_cost, max_tokens=spec.max_tokens, cost_key=budget.cost_key, log=log,
                  prices=(spec.prompt_cost_per_1m or 0.0, spec.completion_cost_per_1m or 0.0))
    if run_id is not None:
        return SharedCallLimit(review_file, run_id, budget.max_calls, **bounds)
    return CallLimit(budget.max_calls, **bounds)


def run_ended(runner) -> None:
    """The xdist controller's run is over: the record its workers shared goes (``end_shared_count``)."""
    if runner.budget.active and runner.role.run_id is not None:
        end_shared_count(runner.config.review.review_file, runner.role.run_id)


def before_first_call(runner) -> None:
    """Once the answers exist and before the judge is made: count the calls this process will make
    and stop (BudgetExceeded) when they are over the budget; say the estimate either way."""
    if not runner.budget.active:
        return
    pending = [(m, a) for m in runner.judged if runner.role.judges(m) and (a := runner.answers_of(m)) is not None]
    found = _estimate_with(runner, pending)
    check(runner.budget, found, runner.config.path)
    runner.log(plan_line(runner.budget, found))


def collect_only_line(runner) -> str | None:
    """The estimate ``--collect-only`` prints: with a budget, or with the judge's prices (a cost to show)."""
    review = runner.config.review
    priced = review.judge.prompt_cost_per_1m is not None or review.judge.completion_cost_per_1m is not None
    if not review.enable or not (runner.budget.active or priced):
        return None
    if any(runner.plan.participants[name].load_cached(runner.plan.questions) for name in runner.needed_models()):
        return plan_line(runner.budget, None)  # some answers are still to be generated
    pending = [(m, a) for m in runner.judged if (a := runner.answers_of(m)) is not None]
    return plan_line(runner.budget, _estimate_with(runner, pending))


def _estimate_with(runner, pending: list[tuple]) -> Estimate:
    probe = runner.probe_judge()
    try:
        return estimate(probe, pending, priced_spec(runner.config.review))
    finally:
        probe.close()
