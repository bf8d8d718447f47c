"""The typed result of reading a cfg_arena.yaml: one frozen dataclass per section, and the names each
section may take. Plain data: no reading, no checks (those are in the sibling modules; a candidate's
generation settings are typed in ``generation``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

from .generation import GenerationSettings

# EvalScope's reviewer class maps to this project's OpenAI-compatible judge.
OPENAI_JUDGE_REFS = frozenset(
    {
        "evalscope.evaluator.reviewer.auto_reviewer:AutoReviewerGpt4",
        "pytest_arena.judging.openai_judge:OpenAIJudge",
        "openai",
    }
)
LOCAL_JUDGE_REFS = frozenset({"pytest_arena.judging.local_judge:LocalJudge", "local"})
MODES = ("pairwise", "pairwise_baseline", "single")
SWAP_RULES = ("consistent", "independent")
LOCAL_VERDICTS = ("text", "probability", "text_or_probability", "likelihood")
POSITION_BIAS = (None, "swap_position", "randomize_order")
PARSERS = ("lmsys_parser", "ranking_parser", "arena_hard_parser")
# arena-hard weighs a strong verdict ([[A>>B]]) as three games: the default with its parser.
ARENA_HARD_STRONG_WEIGHT = 3.0
# An API judge's max_tokens unless the config says (FastChat's 2048; arena-hard asks 4096).
DEFAULT_JUDGE_MAX_TOKENS = 2048
METRICS = ("elo", "bt", "pairwise", "score")
# rating_gen.style_control and a gate's control (issue 24): what the ratings hold fixed. none: raw
# Bradley-Terry; length: the answers' length ratio as a covariate; style: length and markdown.
STYLE_CONTROLS = ("none", "length", "style")
# reviews_gen.judge_turns: a multi-turn battle judged once on the whole conversation, or once per turn
# as FastChat's MT-bench does (turn 2 with its multi-turn template).
JUDGE_TURNS = ("whole", "each")
# Written forms of `precision` -> the torch dtype name. Parsed from this table, never evaluated.
PRECISIONS = {
    "torch.float16": "float16", "float16": "float16", "fp16": "float16", "half": "float16",
    "torch.bfloat16": "bfloat16", "bfloat16": "bfloat16", "bf16": "bfloat16",
    "torch.float32": "float32", "float32": "float32", "fp32": "float32", "float": "float32",
    "auto": "auto",
}
# template_type values that mean "no chat template: the question is the prompt".
PLAIN_TEMPLATE_TYPES = ("default-generation", "plain", "base")
DEFAULT_TEMPLATES = Path(__file__).parent.parent / "templates" / "prompt_templates.jsonl"
RESULTS_DIR = "results"
# How a candidate with a checkpoint generates: in this process with transformers, or with vLLM.
BACKENDS = ("transformers", "vllm")


@dataclass(frozen=True)
class ApiEndpoint:
    """``answers_gen.<name>.api``: a candidate served over an OpenAI-compatible chat-completions API
    (a vLLM, SGLang, TGI or Ollama server, or a hosted API) instead of a local checkpoint."""

    base_url: str
    model: str  # the name the server serves the model under
    api_key_env: str | None = None  # None: a server without auth (sent a placeholder key)
    max_concurrency: int = 8
    timeout: float = 120.0
    max_retries: int = 5
    extra_body: dict = field(default_factory=dict)  # sent as is with every request
    # ``base_url`` given as a list: replicas of one model (pytest_arena/replicas.py); base_url is the
    # first, which alone names the server in the answers' cache key (adding replicas keeps the cache).
    base_urls: tuple[str, ...] = ()

    @property
    def urls(self) -> tuple[str, ...]:
        return self.base_urls or (self.base_url,)


@dataclass(frozen=True)
class ModelSpec:
    """One candidate of ``answers_gen``: where its weights are (or which server answers for it) and
    how it answers."""

    name: str
    path: str  # an absolute local folder, or a hub id when no such folder exists
    output_file: Path
    revision: str | None = None
    precision: str = "auto"
    enable: bool = True
    use_chat_template: bool = True
    generation_config: dict = field(default_factory=dict)
    batch_size: int = 8
    device: str | None = None
    gguf_file: str | None = None
    trust_remote_code: bool = False
    backend: str = "transformers"
    vllm_args: dict = field(default_factory=dict)  # passed to vllm.LLM (backend vllm)
    api: ApiEndpoint | None = None  # set: the server answers; path, backend and the rest are unused

    @cached_property
    def generation(self) -> GenerationSettings:
        """``generation_config`` as every backend takes it, with the defaults applied (config/generation.py)."""
        return GenerationSettings(self.generation_config)


@dataclass(frozen=True)
class JudgeSpec:
    """``reviews_gen.reviewer``: which judge, how it is asked and how its reply is read."""

    ref: str
    model: str = "gpt-4"
    mode: str = "pairwise"
    position_bias_mitigation: str | None = None
    fn_completion_parser: str = "lmsys_parser"
    max_tokens: int = DEFAULT_JUDGE_MAX_TOKENS
    temperature: float = 0.0
    random_seed: int = 123
    base_url: str | None = None  # None: the client reads OPENAI_BASE_URL, else api.openai.com
    base_urls: tuple[str, ...] = ()  # base_url given as a list: replicas of one judge model (replicas.py)
    api_key_env: str = "OPENAI_API_KEY"
    max_concurrency: int = 8
    max_retries: int = 5
    timeout: float = 120.0
    # swap_position: how the two orders' verdicts count. consistent (FastChat): a disagreement is a
    # tie; independent (arena-hard): two games.
    swap_rule: str = "consistent"
    # arena-hard's strong verdicts ([[A>>B]]) count as this many games (read: 3 with arena_hard_parser).
    strong_verdict_weight: float = 1.0
    # Ask once more when a reply cannot be parsed (a sampled judge may answer properly next time).
    reask_unparseable: bool = False
    prompt_cost_per_1m: float | None = None
    completion_cost_per_1m: float | None = None
    # Judging through the provider's Batch API (batch_judging.py): None (live calls), "blocking", "submit" or
    # "collect" (reviewer.args.batch, --arena-batch); what a batch did not answer is asked live (batch_fallback)
    # or left failed. Batch prices of None: half the live ones (budget.batch_prices).
    batch: str | None = None
    batch_fallback: bool = True
    batch_timeout: float | None = None  # a blocking run's wait, in seconds (None: the 24 h window)
    batch_poll_s: float = 30.0
    batch_prompt_cost_per_1m: float | None = None
    batch_completion_cost_per_1m: float | None = None
    # The local judge: its checkpoint, and whether its verdict is parsed text, the probabilities of
    # the verdict labels, text with probabilities as the fallback, or which answer the judge model
    # finds more probable (likelihood: pairwise only).
    checkpoint: ModelSpec | None = None
    verdict: str = "text_or_probability"

    @property
    def is_openai(self) -> bool:
        return self.ref in OPENAI_JUDGE_REFS

    @property
    def is_local(self) -> bool:
        return self.ref in LOCAL_JUDGE_REFS

    @property
    def urls(self) -> tuple[str | None, ...]:
        """The URL of each replica of the judge; (None,) lets the client read OPENAI_BASE_URL."""
        return self.base_urls or (self.base_url,)


@dataclass(frozen=True)
class ReviewSpec:
    enable: bool
    judge: JudgeSpec
    prompt_file: Path
    review_file: Path
    target_answers: tuple[Path, ...] | None = None
    baseline_file: Path | None = None
    reference_file: Path | None = None
    judge_turns: str = "whole"  # JUDGE_TURNS
    max_calls: int | None = None  # the judge budget (budget.py)
    max_cost: float | None = None
    audit: Path | None = None  # labelled pairs the judge is audited on (judge_audit.py; --arena-judge-audit)
    audit_annotators: tuple[str, ...] = ()  # the annotators (name prefixes) whose labels count; (): all
    # reviews_gen.reviewer as a list: the panel's judges (``judge`` is the first); () for one judge (panel.py)
    panel: tuple[JudgeSpec, ...] = ()
    panel_rule: str = "majority"  # PANEL_RULES: the majority of verdicts (pairwise) or the mean of scores (single)


@dataclass(frozen=True)
class RatingSpec:
    enable: bool = True
    metrics: tuple[str, ...] = ("elo",)
    report_file: Path | None = None
    baseline_model: str | None = None
    elo_k: float = 32.0
    bootstrap_rounds: int = 1000
    # Resample whole questions: verdicts on one question correlate, and resampling single battles
    # then gives intervals that cover the truth far less often than 95% (bench/ratings_study.py).
    bootstrap_by: str = "question"
    seed: int = 0
    style_control: str = "none"  # STYLE_CONTROLS; the config reader's default is DEFAULT_STYLE_CONTROL
    stop_when_decided: bool = False  # judge in rounds until every gate is decided (early_stop.py)
    # The power an early default decision may cost at the design alternative (the sequential test's futility
    # budget); None: rating.SequentialDesign's own (0.05), the one bench/ratings_study.py measured.
    stop_power_cost: float | None = None


@dataclass(frozen=True)
class GateSpec:
    """One entry of ``gates:``; exactly one threshold is set."""

    model: str
    min_elo: float | None = None
    beats: str | None = None
    margin: float = 0.0
    max_drop: float | None = None
    min_win_rate: float | None = None
    min_score: float | None = None
    control: str | None = None  # STYLE_CONTROLS; None: rating_gen.style_control

    def __repr__(self) -> str:  # as its item ID (``matches.gate_id``), for reports (allure) that show parameters
        return f"beats-{self.model}--vs--{self.beats}" if self.beats is not None else f"{self.kind}-{self.model}"

    @property
    def kind(self) -> str:
        """The gate's short name, used in its item ID (``elo-Qwen2-3B``)."""
        for kind, value in GATE_KINDS.items():
            if getattr(self, value) is not None:
                return kind
        raise ValueError("a gate without a threshold")


JUDGE_AGREEMENT = "judge_agreement"
PANEL_RULES = ("majority", "mean")  # reviews_gen.panel


@dataclass(frozen=True)
class JudgeGateSpec:
    """``gates: - judge_agreement: {min: 0.6, ties: false}``: a gate on the judge, not on a model. Its
    agreement with the audit's labels (with ties or without, FastChat's two figures) must reach ``min`` by
    its interval's lower end (judge_audit.py evaluates it)."""

    min: float
    ties: bool = True
    # What the gate machinery asks of every gate: it names no model, and its item ID is its kind.
    model = None
    beats = None
    control = None
    kind = JUDGE_AGREEMENT

    def __repr__(self) -> str:
        return self.kind


# Item-ID label -> the gate's threshold key.
GATE_KINDS = {"elo": "min_elo", "beats": "beats", "drop": "max_drop", "winrate": "min_win_rate", "score": "min_score"}
# Threshold keys a config may write for another: min_rating names what min_elo judges (the rating the
# table leads with, Bradley-Terry); min_elo, EvalScope-era, stays accepted. Both fill GateSpec.min_elo.
GATE_ALIASES = {"min_rating": "min_elo"}


@dataclass(frozen=True)
class ArenaConfig:
    path: Path
    question_file: Path | None
    models: dict[str, ModelSpec]
    review: ReviewSpec
    rating: RatingSpec
    gates: tuple[GateSpec, ...] = ()
