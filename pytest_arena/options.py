"""The plugin's command-line options and ini keys, as data (``plugin.pytest_addoption`` registers them
in this order, in one ``arena`` group). Values stay plain strings and paths: pytest-xdist passes them
to its workers."""

OPTIONS = [
    ("--arena-config", dict(
        dest="arena_config", metavar="PATH", default=None,
        help="run the LLM arena described by this cfg_arena.yaml (EvalScope format). "
        "Without it pytest-arena does nothing.")),
    ("--arena-baseline", dict(
        dest="arena_baseline", metavar="PATH", default=None,
        help="a previous rating CSV: the table shows the change against it and max_drop gates judge by it.")),
    ("--arena-baseline-update", dict(
        dest="arena_baseline_update", action="store_true", default=False,
        help="write this run's ratings to the --arena-baseline file (not from a -k/-m subset run).")),
    ("--arena-judge-audit", dict(
        dest="arena_judge_audit", metavar="LABELS", default=None,
        help="audit the judge against these labelled pairs (FastChat's human judgments, or JSON lines of "
        "question_id, model_a, model_b, winner): its agreement, kappa and biases; overrides reviews_gen.audit.")),
    ("--arena-limit", dict(
        dest="arena_limit", metavar="N", default=None,
        help="only the first N questions of each question set take part (a limited run; its report is "
        "written beside the full one, not over it).")),
    ("--arena-model", dict(
        dest="arena_model", metavar="NAME=PATH", action="append", default=[],
        help="add a candidate, or replace a configured one's checkpoint (repeatable); the other settings "
        "are the config's (a new name takes the first model's). E.g. --arena-model sft=/ckpt/step-4000")),
    ("--arena-questions", dict(
        dest="arena_questions", metavar="FILE", nargs="+", action="extend", default=[],
        help="question sets to use instead of question_file; each set's file stem prefixes its item IDs "
        "and the report adds a per-set breakdown. Put it after the test paths, or repeat it.")),
    ("--arena-results", dict(
        dest="arena_results", metavar="DIR", default=None,
        help="where outputs the config does not name go (answers, reviews, report); default ./results")),
    ("--arena-batch", dict(
        dest="arena_batch", nargs="?", const="blocking", default=None, choices=("blocking", "submit", "collect"),
        help="judge through the provider's Batch API (about half the price): alone, wait for the batch and rate; "
        "=submit sends the batch and exits pending (exit 75); =collect (a later run) merges it and rates.")),
    ("--arena-stop-when-decided", dict(
        dest="arena_stop_when_decided", action="store_true", default=False,
        help="judge in rounds over a seeded random order of questions and stop calling the judge once every "
        "gate is decided (a group-sequential test); the rest are skipped, and no baseline is written.")),
    ("--arena-power", dict(
        dest="arena_power", metavar="DROP", nargs="?", const="", default=None,
        help="judge nothing: print, from the --arena-baseline run's verdicts, the smallest drop each gate "
        "detects with 80%% power at this question count, and (=DROP) the questions a drop of DROP needs.")),
    ("--arena-worker-gpus", dict(
        dest="arena_worker_gpus", metavar="DEVICES", default=None,
        help="with pytest-xdist (-n N): the CUDA devices of each worker, e.g. 0,1,2,3 (one each) or 0+1,2+3 "
        "(two each); each worker gets its own CUDA_VISIBLE_DEVICES.")),
]

INI_KEYS = [  # name, help, and addini's keywords
    ("arena_config", "default for --arena-config (relative to the ini file's folder)", dict(default="")),
    ("arena_limit", "default for --arena-limit", dict(default="")),
    ("arena_model", "default for --arena-model: NAME=PATH lines", dict(type="linelist", default=[])),
    ("arena_questions", "default for --arena-questions: one file a line (relative to the ini file)",
     dict(type="linelist", default=[])),
    ("arena_results", "default for --arena-results (relative to the ini file's folder)", dict(default="")),
    ("arena_baseline", "default for --arena-baseline (relative to the ini file's folder)", dict(default="")),
    ("arena_worker_gpus", "default for --arena-worker-gpus", dict(default="")),
    ("arena_stop_when_decided", "default for --arena-stop-when-decided: true or false", dict(default="")),
]
