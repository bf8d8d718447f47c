"""Tiny real transformers checkpoints, built offline in a fraction of a second (DESIGN §9).

They are saved with ``save_pretrained`` and loaded back through the same code path as any
real checkpoint, so tests exercise real tokenizers, chat templates and ``generate`` without
a hub or a GPU. Their weights are random: the text they write is noise, but it is
deterministic for a fixed seed.
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Iterator

BOS, EOS, PAD, UNK = "<s>", "</s>", "<pad>", "<unk>"

CHAT_TEMPLATE = (
    "{% for m in messages %}<s>{{ m['role'] }}: {{ m['content'] }}\n{% endfor %}"
    "{% if add_generation_prompt %}assistant:{% endif %}"
)

ARCHITECTURES = ("llama", "qwen2")

# The tokenizer's model_max_length matches the model's positions, so truncation logic sees real limits.
MAX_POSITIONS = 512

# Varied English (questions, numbers, punctuation, code-ish words) so the BPE merges look like
# a real tokenizer's rather than a single sentence's.
_TRAINING_TEXT = """\
The quick brown fox jumps over the lazy dog while the farmer counts 42 sheep before noon.
What is the capital of France? Paris is the capital, and it sits on the river Seine.
Please write a short poem about autumn leaves, rain on the window, and a cup of warm tea.
def add(a, b): return a + b  # a tiny function that adds two numbers together
In 1969, astronauts landed on the Moon; millions of people watched it on television.
Explain why the sky is blue: sunlight scatters off molecules, and blue light scatters most.
She said, "Thank you!" and he replied, "You're welcome." They both laughed at the joke.
Assistant: Sure, here is a list of three fruits: apples, bananas, and cherries.
User: Can you summarize the article in two sentences? The economy grew by 3.5% last year.
Machine learning models learn patterns from data; larger models often need more compute.
"""

# Training takes longer than building a model, so it happens once per process and per size.
_trained_tokenizer_json: dict[int, str] = {}


@contextlib.contextmanager
def _quiet_transformers() -> Iterator[None]:
    """Silence transformers' warnings and progress bars, restoring the caller's settings after."""
    from transformers.utils import logging as hf_logging

    previous_verbosity = hf_logging.get_verbosity()
    progress_bar_was_on = hf_logging.is_progress_bar_enabled()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        hf_logging.set_verbosity(previous_verbosity)
        if progress_bar_was_on:
            hf_logging.enable_progress_bar()


def _train_tokenizer_json(vocab_size: int) -> str:
    if vocab_size not in _trained_tokenizer_json:
        from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

        tokenizer = Tokenizer(models.BPE())
        tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        tokenizer.decoder = decoders.ByteLevel()
        trainer = trainers.BpeTrainer(
            vocab_size=vocab_size,
            special_tokens=[BOS, EOS, PAD, UNK],
            # The full byte alphabet means any text (emoji, accents) encodes without <unk>.
            initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
            show_progress=False,
        )
        tokenizer.train_from_iterator([_TRAINING_TEXT] * 20, trainer=trainer)
        _trained_tokenizer_json[vocab_size] = tokenizer.to_str()
    return _trained_tokenizer_json[vocab_size]


def _make_tokenizer(vocab_size: int, chat_template: bool):
    from tokenizers import Tokenizer
    from transformers import PreTrainedTokenizerFast

    # A fresh Tokenizer per model: the wrapper owns and may mutate it.
    backend = Tokenizer.from_str(_train_tokenizer_json(vocab_size))
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend,
        bos_token=BOS,
        eos_token=EOS,
        pad_token=PAD,
        unk_token=UNK,
        model_max_length=MAX_POSITIONS,
    )
    tokenizer.chat_template = CHAT_TEMPLATE if chat_template else None
    return tokenizer


def _make_model(arch: str, tokenizer, seed: int):
    import torch
    from transformers import GenerationConfig, LlamaConfig, LlamaForCausalLM, Qwen2Config, Qwen2ForCausalLM

    config_class, model_class = {
        "llama": (LlamaConfig, LlamaForCausalLM),
        "qwen2": (Qwen2Config, Qwen2ForCausalLM),
    }[arch]
    special_ids = dict(
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    config = config_class(
        vocab_size=len(tokenizer),
        hidden_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=4,
        intermediate_size=128,
        max_position_embeddings=MAX_POSITIONS,
        # Tied random embeddings make greedy decoding repeat the last prompt token (often a space).
        tie_word_embeddings=False,
        **special_ids,
    )
    torch.manual_seed(seed)
    model = model_class(config)
    model.generation_config = GenerationConfig(**special_ids)
    return model.eval()


def build_tiny_model(
    path: str | Path,
    *,
    seed: int = 0,
    chat_template: bool = True,
    vocab_size: int = 400,
    arch: str = "llama",
) -> Path:
    """Save a random-weight causal LM with a trained BPE tokenizer to ``path``; return it.

    Different ``seed`` values give different weights (and so different answers). With
    ``chat_template=False`` the saved tokenizer has no chat template at all, for testing the
    plain-prompt fallback.
    """
    if arch not in ARCHITECTURES:
        raise ValueError(f"unknown arch {arch!r}; expected one of {ARCHITECTURES}")
    path = Path(path)
    with _quiet_transformers():
        tokenizer = _make_tokenizer(vocab_size, chat_template)
        model = _make_model(arch, tokenizer, seed)
        model.save_pretrained(path)
        tokenizer.save_pretrained(path)
    return path
